//! Policies: purposes, data categories, fields, roles and segment limits, loaded from
//! `policies/*.toml` and evaluated without any I/O.
//!
//! Only [`load_dir`] touches the filesystem (it reads the files and hands their text to the
//! pure [`Policy::from_sources`]); everything else in this module is a pure function of the
//! loaded [`Policy`].

mod ids;
mod load;

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

pub use ids::{CategoryId, FieldName, PurposeId, RoleId};
pub use load::{load_dir, PolicyError, PolicyErrors, PolicySource};

/// The legal basis of a purpose (GDPR Art. 6(1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// Art. 6(1)(a): the person agreed.
    Consent,
    /// Art. 6(1)(b): needed to perform a contract with the person.
    Contract,
    /// Art. 6(1)(c): required by law.
    LegalObligation,
    /// Art. 6(1)(d): protects someone's life.
    VitalInterests,
    /// Art. 6(1)(e): a task in the public interest.
    PublicTask,
    /// Art. 6(1)(f): the controller's legitimate interest, unless the person objects.
    LegitimateInterest,
}

/// Every action a role may be granted. The list is closed: a policy naming any other action is
/// rejected when it is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
pub enum Action {
    /// Record interactions, profile traits and identifiers.
    #[serde(rename = "interactions.write")]
    InteractionsWrite,
    /// Record consent choices and objections.
    #[serde(rename = "consents.write")]
    ConsentsWrite,
    /// Read one person's interactions for a purpose.
    #[serde(rename = "interactions.read")]
    InteractionsRead,
    /// Count segments.
    #[serde(rename = "segments.query")]
    SegmentsQuery,
    /// List the members of a segment.
    #[serde(rename = "segments.export")]
    SegmentsExport,
    /// Export everything held about a person (Art. 15/20).
    #[serde(rename = "subjects.export")]
    SubjectsExport,
    /// Erase a person (Art. 17).
    #[serde(rename = "subjects.erase")]
    SubjectsErase,
    /// Track data-subject requests.
    #[serde(rename = "requests.manage")]
    RequestsManage,
    /// Read and verify the audit log.
    #[serde(rename = "audit.read")]
    AuditRead,
    /// Create, list and revoke API keys.
    #[serde(rename = "keys.manage")]
    KeysManage,
    /// Read the loaded policy and the record of processing.
    #[serde(rename = "policy.read")]
    PolicyRead,
}

impl Action {
    /// Every action, in a stable order.
    pub const ALL: [Action; 11] = [
        Action::InteractionsWrite,
        Action::ConsentsWrite,
        Action::InteractionsRead,
        Action::SegmentsQuery,
        Action::SegmentsExport,
        Action::SubjectsExport,
        Action::SubjectsErase,
        Action::RequestsManage,
        Action::AuditRead,
        Action::KeysManage,
        Action::PolicyRead,
    ];

    /// The action's name as written in policies, e.g. `segments.query`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::InteractionsWrite => "interactions.write",
            Action::ConsentsWrite => "consents.write",
            Action::InteractionsRead => "interactions.read",
            Action::SegmentsQuery => "segments.query",
            Action::SegmentsExport => "segments.export",
            Action::SubjectsExport => "subjects.export",
            Action::SubjectsErase => "subjects.erase",
            Action::RequestsManage => "requests.manage",
            Action::AuditRead => "audit.read",
            Action::KeysManage => "keys.manage",
            Action::PolicyRead => "policy.read",
        }
    }

    /// Parses an action name; `None` when it is not one of [`Action::ALL`].
    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
    }

    /// Whether the action is performed for a purpose, which the role must also hold.
    pub fn is_purpose_bound(self) -> bool {
        matches!(
            self,
            Action::InteractionsWrite
                | Action::InteractionsRead
                | Action::SegmentsQuery
                | Action::SegmentsExport
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A purpose of processing, with its effective (inherited where absent) data categories.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Purpose {
    /// Dotted id; `marketing.email` descends from `marketing`.
    #[schema(value_type = String)]
    pub id: PurposeId,
    /// The legal basis the controller relies on for this purpose.
    pub legal_basis: LegalBasis,
    /// What the purpose is, in words a data subject understands.
    pub description: String,
    /// How long interactions collected for this purpose may be kept.
    pub retention_days: u32,
    /// Whether a Global Privacy Control signal opts the person out of this purpose.
    pub gpc: bool,
    /// The data categories this purpose may use (its own list, or its parent's).
    #[schema(value_type = Vec<String>)]
    pub categories: Vec<CategoryId>,
    /// Whether `categories` was inherited from the parent purpose.
    pub categories_inherited: bool,
}

/// A field an app may send in `data` or `traits`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Field {
    /// The key apps use.
    #[schema(value_type = String)]
    pub name: FieldName,
    /// The data category the field belongs to.
    #[schema(value_type = String)]
    pub category: CategoryId,
    /// Whether the value is stored in a form the database can filter on (not encrypted).
    pub segmentable: bool,
}

/// A role: the actions it may take and the purposes it may act for.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Role {
    /// The role's id, carried by API keys and tokens.
    #[schema(value_type = String)]
    pub id: RoleId,
    /// The actions this role may take.
    pub actions: Vec<Action>,
    /// The purposes this role may act for (each covers its descendants).
    #[schema(value_type = Vec<String>)]
    pub purposes: Vec<PurposeId>,
}

/// Limits on segment queries.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct SegmentLimits {
    /// The smallest segment size (`k`) that may be reported.
    pub min_size: u32,
}

/// A validated policy, with the SHA-256 of the files it was loaded from.
#[derive(Debug, Clone)]
pub struct Policy {
    purposes: BTreeMap<PurposeId, Purpose>,
    fields: BTreeMap<FieldName, Field>,
    roles: BTreeMap<RoleId, Role>,
    segments: SegmentLimits,
    sha256: String,
    files: Vec<String>,
}

/// Why the policy engine denied a request; each has a stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The caller's role is not defined in the loaded policy.
    UnknownRole,
    /// The caller's role does not include the action.
    ActionNotPermitted,
}

impl Denial {
    /// The stable reason code reported to callers and written to the audit log.
    pub fn code(self) -> &'static str {
        match self {
            Denial::UnknownRole => "unknown_role",
            Denial::ActionNotPermitted => "action_not_permitted",
        }
    }
}

impl Policy {
    /// The hex SHA-256 over the loaded files (see `docs/policies.md` for the exact encoding).
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The names (without directory) of the files the policy was loaded from, sorted.
    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// All purposes, ordered by id.
    pub fn purposes(&self) -> impl Iterator<Item = &Purpose> {
        self.purposes.values()
    }

    /// All fields, ordered by name.
    pub fn fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.values()
    }

    /// All roles, ordered by id.
    pub fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The role with this id, if the policy defines it.
    pub fn role(&self, id: &str) -> Option<&Role> {
        self.roles.get(id)
    }

    /// The purpose with this id, if the policy defines it.
    pub fn purpose(&self, id: &str) -> Option<&Purpose> {
        self.purposes.get(id)
    }

    /// The field with this name, if the policy declares it.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.get(name)
    }

    /// Segment limits.
    pub fn segment_limits(&self) -> SegmentLimits {
        self.segments
    }

    /// Rule 1, without a purpose: may a holder of `role` take `action` at all?
    pub fn authorize_action(&self, role: &str, action: Action) -> Result<&Role, Denial> {
        let role = self.roles.get(role).ok_or(Denial::UnknownRole)?;
        if role.actions.contains(&action) {
            Ok(role)
        } else {
            Err(Denial::ActionNotPermitted)
        }
    }
}
