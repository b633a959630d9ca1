//! The record of processing activities (GDPR Art. 30(1)), generated from the loaded policy: one
//! activity per purpose with its legal basis, the categories of data it may use and the declared
//! fields in them, how long its data is kept, and who may receive it (the roles that may act
//! for it). Generated, never written by hand, so it cannot drift from what the engine enforces.

use serde::Serialize;

use super::{Action, CategoryId, FieldName, LegalBasis, Policy, PurposeId, Role, RoleId};

/// The record of processing activities.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RecordOfProcessing {
    /// SHA-256 of the policy files it was generated from (as in the audit log).
    pub policy_sha256: String,
    /// Art. 30(1)(c): the categories of data subjects.
    pub data_subjects: &'static str,
    /// One activity per purpose, in purpose order.
    pub activities: Vec<Activity>,
    /// Roles that act on whole persons rather than for a purpose (exports, erasure, requests).
    pub data_subject_rights: Vec<Recipient>,
    /// Art. 30(1)(e): transfers to third countries.
    pub transfers: &'static str,
    /// Art. 30(1)(g): a general description of the technical and organisational measures.
    pub security_measures: Vec<&'static str>,
}

/// One processing activity: a purpose.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Activity {
    /// The purpose's id.
    #[schema(value_type = String)]
    pub purpose: PurposeId,
    /// What it is for.
    pub description: String,
    /// Its legal basis (Art. 6(1)).
    pub legal_basis: LegalBasis,
    /// The data categories it may use (inherited from its parent when the policy gives none).
    #[schema(value_type = Vec<String>)]
    pub data_categories: Vec<CategoryId>,
    /// The declared fields within those categories.
    #[schema(value_type = Vec<String>)]
    pub fields: Vec<FieldName>,
    /// Art. 30(1)(f): interactions are kept while one of their purposes still allows it.
    pub retention_days: u32,
    /// Whether a Global Privacy Control signal opts the person out.
    pub gpc_opt_out: bool,
    /// Art. 30(1)(d): who may receive the data: the roles that may act for this purpose (a role
    /// holding an ancestor purpose counts), with their purpose-bound actions.
    pub recipients: Vec<Recipient>,
}

/// A role and what it may do.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Recipient {
    /// The role's id.
    #[schema(value_type = String)]
    pub role: RoleId,
    /// The actions concerned.
    pub actions: Vec<Action>,
}

impl Recipient {
    /// The role with those of its actions that `concerned` keeps; `None` when none is kept.
    fn of(role: &Role, concerned: impl Fn(Action) -> bool) -> Option<Recipient> {
        let actions: Vec<Action> = role
            .actions
            .iter()
            .copied()
            .filter(|action| concerned(*action))
            .collect();
        (!actions.is_empty()).then(|| Recipient {
            role: role.id.clone(),
            actions,
        })
    }
}

/// Actions about whole persons, whatever the purpose.
const RIGHTS_ACTIONS: [Action; 4] = [
    Action::SubjectsExport,
    Action::SubjectsErase,
    Action::SubjectsRectify,
    Action::RequestsManage,
];

impl Policy {
    /// The record of processing activities for this policy.
    pub(crate) fn record_of_processing(&self) -> RecordOfProcessing {
        let activities = self
            .purposes()
            .map(|purpose| {
                let fields = self
                    .fields()
                    .filter(|field| self.purpose_may_use(purpose, &field.category))
                    .map(|field| field.name.clone())
                    .collect();
                let recipients = self
                    .roles()
                    .filter(|role| role.purposes.iter().any(|held| purpose.id.is_within(held)))
                    .filter_map(|role| Recipient::of(role, Action::is_purpose_bound))
                    .collect();
                Activity {
                    purpose: purpose.id.clone(),
                    description: purpose.description.clone(),
                    legal_basis: purpose.legal_basis,
                    data_categories: purpose.categories.clone(),
                    fields,
                    retention_days: purpose.retention_days,
                    gpc_opt_out: purpose.gpc,
                    recipients,
                }
            })
            .collect();
        let data_subject_rights = self
            .roles()
            .filter_map(|role| Recipient::of(role, |action| RIGHTS_ACTIONS.contains(&action)))
            .collect();
        RecordOfProcessing {
            policy_sha256: self.sha256().to_owned(),
            data_subjects: "Customers and prospects of the controller, as identified by the \
                            controller's applications (by an application-chosen subject_id, \
                            e-mail address or phone number)",
            activities,
            data_subject_rights,
            transfers: "None by this service: all data is stored in the controller's own \
                        database. Activation lists exported by segments.export leave the \
                        service and must be recorded where they are sent.",
            security_measures: vec![
                "Every value that is not a declared segmentable trait is encrypted with \
                 AES-256-GCM under a per-person key, itself stored only wrapped by a master key",
                "Identifiers are stored only as keyed blind indexes (HMAC-SHA-256), never in clear",
                "Erasure destroys the person's key first, then every row (crypto-shredding)",
                "Deny-by-default authorization per role, action and purpose; every read of \
                 personal data declares a purpose",
                "A hash-chained, append-only audit log naming people only by pseudonym, with \
                 signed checkpoints",
                "Segment counts below the minimum size are suppressed and differencing is refused",
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::policy::load_dir;

    #[test]
    fn recipients_of_a_child_purpose_include_roles_holding_its_parent() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        let policy = load_dir(&dir).expect("the sample policy loads");
        let ropa = policy.record_of_processing();
        let email = ropa
            .activities
            .iter()
            .find(|activity| activity.purpose.as_str() == "marketing.email")
            .expect("an activity per purpose");
        let roles: Vec<&str> = email.recipients.iter().map(|r| r.role.as_str()).collect();
        assert_eq!(roles, ["collector", "marketer"]);
        // `support` is not within `marketing`: its role is not a recipient.
        assert!(!roles.contains(&"support"));
        // Only fields whose category the purpose may use.
        let fields: Vec<&str> = email.fields.iter().map(|f| f.as_str()).collect();
        assert!(fields.contains(&"email"), "{fields:?}");
        assert!(!fields.contains(&"phone"), "{fields:?}");
        let rights: Vec<&str> = ropa
            .data_subject_rights
            .iter()
            .map(|r| r.role.as_str())
            .collect();
        assert_eq!(rights, ["compliance", "opendsr_controller"]);
    }
}
