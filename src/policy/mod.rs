//! Policies: purposes, data categories, fields, roles and segment limits, loaded from
//! `policies/*.toml` and evaluated without any I/O.
//!
//! Only [`load_dir`] touches the filesystem (it reads the files and hands their text to the
//! pure [`Policy::from_sources`]); everything else in this module is a pure function of the
//! loaded [`Policy`].

mod ids;
mod load;
pub mod ropa;
pub mod standards;
pub mod vocabulary;

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

pub use ids::{CategoryId, FieldName, PurposeId, RoleId};
pub use load::load_dir;
#[cfg(feature = "test-support")]
pub use load::PolicySource;

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

impl LegalBasis {
    /// The name used in policies and the audit log (`consent`, `legitimate_interest` …).
    pub fn as_str(self) -> &'static str {
        match self {
            LegalBasis::Consent => "consent",
            LegalBasis::Contract => "contract",
            LegalBasis::LegalObligation => "legal_obligation",
            LegalBasis::VitalInterests => "vital_interests",
            LegalBasis::PublicTask => "public_task",
            LegalBasis::LegitimateInterest => "legitimate_interest",
        }
    }
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
    /// Ask differentially private aggregates over time (`docs/insights.md`).
    #[serde(rename = "insights.query")]
    InsightsQuery,
    /// Export everything held about a person (Art. 15/20).
    #[serde(rename = "subjects.export")]
    SubjectsExport,
    /// Erase a person (Art. 17).
    #[serde(rename = "subjects.erase")]
    SubjectsErase,
    /// Correct a person's identifiers and traits (Art. 16), by executing a rectification
    /// request.
    #[serde(rename = "subjects.rectify")]
    SubjectsRectify,
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
    pub const ALL: [Action; 13] = [
        Action::InteractionsWrite,
        Action::ConsentsWrite,
        Action::InteractionsRead,
        Action::SegmentsQuery,
        Action::SegmentsExport,
        Action::InsightsQuery,
        Action::SubjectsExport,
        Action::SubjectsErase,
        Action::SubjectsRectify,
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
            Action::InsightsQuery => "insights.query",
            Action::SubjectsExport => "subjects.export",
            Action::SubjectsErase => "subjects.erase",
            Action::SubjectsRectify => "subjects.rectify",
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
    pub(crate) fn is_purpose_bound(self) -> bool {
        matches!(
            self,
            Action::InteractionsWrite
                | Action::ConsentsWrite
                | Action::InteractionsRead
                | Action::SegmentsQuery
                | Action::SegmentsExport
                | Action::InsightsQuery
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
    /// Whether an erasure keeps the interactions held for this purpose until their retention
    /// ends (GDPR Art. 17(3)(b) and (e)), restricted to it: by default exactly the purposes
    /// whose legal basis is `legal_obligation` (docs/data-protection.md, "Legal holds").
    pub legal_hold: bool,
    /// The data categories this purpose may use (its own list, or its parent's).
    #[schema(value_type = Vec<String>)]
    pub categories: Vec<CategoryId>,
    /// Whether `categories` was inherited from the parent purpose.
    pub categories_inherited: bool,
    /// The privacy budget of insights for this purpose (`docs/insights.md`); absent: no
    /// insights are answered for it unless an ancestor declares one.
    pub insights: Option<InsightBudget>,
}

/// Privacy loss is kept in whole units, so that budgets and spending add exactly: ε in
/// millionths, δ in 10⁻¹². This many units make an ε of 1.
pub const EPSILON_UNITS: f64 = 1e6;
/// This many units make a δ of 1.
pub const DELTA_UNITS: f64 = 1e12;

/// A purpose's privacy budget for insights: how much privacy loss all the insights answered for
/// it may spend per day (UTC), across every key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct InsightBudget {
    /// ε per day, in millionths (the budget is kept in whole millionths, so that spending adds
    /// exactly).
    pub epsilon_per_day_micros: u64,
    /// δ per day, in units of 10⁻¹² (spent only by questions grouped by values that come from
    /// the data: see `docs/insights.md`).
    pub delta_per_day_picos: u64,
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
    /// Keys of this role see and act on only the data-subject requests they filed themselves
    /// (an OpenDSR controller's role), and may not restrict anyone directly.
    pub own_requests_only: bool,
}

/// A consent notice: the exact text people are shown when asked for consent, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Notice {
    /// Its id (`newsletter`).
    pub id: String,
    /// Its version (`3`): a changed text is a new version.
    pub version: String,
    /// The language of this text (`en`, `pt-BR`).
    pub language: String,
    /// Where the text is published (https).
    pub url: String,
    /// SHA-256 of the text shown (64 lowercase hex digits).
    pub sha256: String,
    /// The consent-based purposes it asks for (each covers its descendants).
    #[schema(value_type = Vec<String>)]
    pub purposes: Vec<PurposeId>,
}

/// Why a statement's notice is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeError {
    /// No notice with this id and version (in this language) is declared.
    Undeclared,
    /// Declared in several languages: the statement must say which one was shown.
    LanguageNeeded(Vec<String>),
}

/// Limits on segment queries.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct SegmentLimits {
    /// The smallest segment size (`k`) that may be reported.
    pub min_size: u32,
    /// How many sizes one API key may be denied (suppressed or refused by the differencing
    /// guard, alike) within the guard's window before its further counts are refused with 429.
    pub max_withheld: u32,
    /// How many differencing refusals of one key within the window raise a
    /// `segments.probe_alert` audit entry (and every this many more).
    pub alert_refusals: u32,
    /// How sizes are answered: exactly under `min_size` and the differencing guard, or with
    /// noise drawn from the purpose's insights budget (`docs/segments.md`, "Noisy counts").
    pub counts: SegmentCounts,
    /// ε a noisy size spends, in millionths.
    pub epsilon_micros: u64,
}

/// How segment sizes are answered: `[segments] counts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SegmentCounts {
    /// The exact size, withheld below `min_size` and by the differencing guard.
    Exact,
    /// The size plus discrete Laplace noise, charged to the purpose's insights budget.
    Noisy,
}

/// How messages of the tracking protocol (`docs/tracking.md`) get their purposes: the
/// `[tracking]` table. Absent, the tracking routes collect nothing.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct Tracking {
    /// Purposes of an event whose name has no entry in `events`.
    #[schema(value_type = Vec<String>)]
    pub default_purposes: Vec<PurposeId>,
    /// Purposes by event name (a track call's `event`; `page` and `screen` for those calls).
    #[schema(value_type = Object)]
    pub events: BTreeMap<String, Vec<PurposeId>>,
    /// Purposes by consent category, as consent managers name them in a message's context
    /// (Segment's `categoryPreferences` keys, RudderStack's allowed and denied ids).
    #[schema(value_type = Object)]
    pub consent_categories: BTreeMap<String, Vec<PurposeId>>,
    /// How the current consent of two people merged by identity resolution is decided.
    pub merge_consent: MergeConsent,
    /// The track events that carry a consent manager's answer (Segment's `Segment Consent
    /// Preference Updated` by default): recorded as consent statements, not as interactions.
    pub consent_events: Vec<String>,
    /// The notice the consent banner shows (a declared `[[notice]]`): what a grant from a
    /// consent event names. Without it, consent events can only withdraw.
    pub consent_notice: Option<TrackingNotice>,
}

/// The notice a consent banner shows, by id, version and (when declared in several) language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TrackingNotice {
    /// The notice's id.
    pub id: String,
    /// Its version.
    pub version: String,
    /// Its language, when the version is declared in several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// The consent event of Segment's consent management.
pub const SEGMENT_CONSENT_EVENT: &str = "Segment Consent Preference Updated";

/// How the current consent of two people merged into one (an anonymous visitor who logs in as
/// a known user) is decided, purpose by purpose, when both sides have a statement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MergeConsent {
    /// A withdrawal on either side wins over a grant (the default).
    #[default]
    MostRestrictive,
    /// The later statement stands, whatever it says.
    Latest,
}

impl MergeConsent {
    /// The rule a policy names (`most_restrictive`, `latest`).
    pub fn parse(name: &str) -> Option<MergeConsent> {
        match name {
            "most_restrictive" => Some(MergeConsent::MostRestrictive),
            "latest" => Some(MergeConsent::Latest),
            _ => None,
        }
    }
}

/// A validated policy, with the SHA-256 of the files it was loaded from.
#[derive(Debug, Clone)]
pub struct Policy {
    purposes: BTreeMap<PurposeId, Purpose>,
    fields: BTreeMap<FieldName, Field>,
    roles: BTreeMap<RoleId, Role>,
    notices: Vec<Notice>,
    segments: SegmentLimits,
    tracking: Option<Tracking>,
    standards: standards::Standards,
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
    /// The caller's role may not act for this purpose.
    PurposeNotPermitted,
    /// Consent-based purpose, and the person never consented to it or an ancestor.
    NoConsent,
    /// Consent-based purpose, and the person's latest statement withdrew consent.
    ConsentWithdrawn,
    /// The person objected to this purpose or an ancestor (Art. 21).
    Objected,
    /// Processing of the person's data is restricted (Art. 18).
    Restricted,
}

impl Denial {
    /// The stable reason code reported to callers and written to the audit log.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Denial::UnknownRole => "unknown_role",
            Denial::ActionNotPermitted => "action_not_permitted",
            Denial::PurposeNotPermitted => "purpose_not_permitted",
            Denial::NoConsent => "no_consent",
            Denial::ConsentWithdrawn => "consent_withdrawn",
            Denial::Objected => "objected",
            Denial::Restricted => "restricted",
        }
    }
}

/// A consent statement (grant or withdrawal) on one purpose, in the order it was recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentStatement {
    /// The purpose the statement is about.
    pub purpose: PurposeId,
    /// `true` for a grant, `false` for a withdrawal.
    pub granted: bool,
    /// A number that orders statements: later statements have larger numbers.
    pub sequence: i64,
}

/// One question to the policy engine: may this role take this action, for this purpose, on
/// data of these categories, about a person in this state?
#[derive(Debug, Clone, Copy)]
pub struct DecisionRequest<'a> {
    /// The caller's role.
    pub role: &'a str,
    /// The action.
    pub action: Action,
    /// The purpose, for purpose-bound actions.
    pub purpose: Option<&'a PurposeId>,
    /// The categories of the data involved (for minimisation).
    pub categories: &'a [CategoryId],
    /// The person's state, when the request is about one person.
    pub subject: Option<&'a SubjectState>,
}

/// An allowed request, and what it may not see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Categories among those asked for that the purpose may not use (rule 4): withheld.
    pub withheld: Vec<CategoryId>,
}

/// Rules 2 and 3 for one purpose, as data a SQL builder can turn into a filter over a
/// population: the same decision as [`Policy::legal_basis`], made by the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PopulationRule {
    /// The purpose and its ancestors: statements and objections on any of them count, and
    /// interactions tagged with any of them may be used.
    pub tags: Vec<PurposeId>,
    /// Whether a granted consent is needed (otherwise only objections and restriction count).
    pub needs_consent: bool,
}

/// What the policy engine needs to know about one person to decide a legal basis.
#[derive(Debug, Clone, Default)]
pub struct SubjectState {
    /// The person's consent statements (any order; `sequence` decides which is latest).
    pub consents: Vec<ConsentStatement>,
    /// Purposes the person objected to (Art. 21), objections not lifted.
    pub objections: Vec<PurposeId>,
    /// Whether processing is restricted (Art. 18).
    pub restricted: bool,
}

impl Policy {
    /// The hex SHA-256 over the loaded files (see `docs/policies.md` for the exact encoding).
    pub(crate) fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The names (without directory) of the files the policy was loaded from, sorted.
    pub(crate) fn files(&self) -> &[String] {
        &self.files
    }

    /// All purposes, ordered by id.
    pub fn purposes(&self) -> impl Iterator<Item = &Purpose> {
        self.purposes.values()
    }

    /// All fields, ordered by name.
    pub(crate) fn fields(&self) -> impl Iterator<Item = &Field> {
        self.fields.values()
    }

    /// All roles, ordered by id.
    pub(crate) fn roles(&self) -> impl Iterator<Item = &Role> {
        self.roles.values()
    }

    /// The role with this id, if the policy defines it.
    pub(crate) fn role(&self, id: &str) -> Option<&Role> {
        self.roles.get(id)
    }

    /// The purpose with this id, if the policy defines it.
    pub fn purpose(&self, id: &str) -> Option<&Purpose> {
        self.purposes.get(id)
    }

    /// The field with this name, if the policy declares it.
    pub(crate) fn field(&self, name: &str) -> Option<&Field> {
        self.fields.get(name)
    }

    /// The declared consent notices, by id, version and language.
    pub(crate) fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// The declared notice `id` `version`, in `language` — which may be left out when the
    /// notice is declared in one language only.
    pub(crate) fn notice(
        &self,
        id: &str,
        version: &str,
        language: Option<&str>,
    ) -> Result<&Notice, NoticeError> {
        let versions: Vec<&Notice> = self
            .notices
            .iter()
            .filter(|notice| notice.id == id && notice.version == version)
            .collect();
        match (language, versions.as_slice()) {
            (Some(language), _) => versions
                .into_iter()
                .find(|notice| notice.language == language)
                .ok_or(NoticeError::Undeclared),
            (None, [only]) => Ok(only),
            (None, []) => Err(NoticeError::Undeclared),
            (None, several) => Err(NoticeError::LanguageNeeded(
                several
                    .iter()
                    .map(|notice| notice.language.clone())
                    .collect(),
            )),
        }
    }

    /// The consent standards: controller, DPV terms, TCF and GPP mappings, GPC statement.
    pub(crate) fn standards(&self) -> &standards::Standards {
        &self.standards
    }

    /// How tracked events get their purposes (`[tracking]`).
    pub(crate) fn tracking(&self) -> Option<&Tracking> {
        self.tracking.as_ref()
    }

    /// The rule that merges the consent of two people linked into one.
    pub(crate) fn merge_consent(&self) -> MergeConsent {
        self.tracking
            .as_ref()
            .map(|tracking| tracking.merge_consent)
            .unwrap_or_default()
    }

    pub(crate) fn segment_limits(&self) -> SegmentLimits {
        self.segments
    }

    /// Rule 1 with a purpose: the role holds `action` and one of its purposes covers `purpose`.
    pub(crate) fn authorize_purpose(
        &self,
        role: &str,
        action: Action,
        purpose: &PurposeId,
    ) -> Result<&Role, Denial> {
        let role = self.authorize_action(role, action)?;
        if role
            .purposes
            .iter()
            .any(|allowed| purpose.is_within(allowed))
        {
            Ok(role)
        } else {
            Err(Denial::PurposeNotPermitted)
        }
    }

    /// Rule 2: does the person have an effective legal basis for `purpose` right now?
    ///
    /// Never while restricted; never after an objection to the purpose or an ancestor (an
    /// objection to direct marketing included, whatever its basis). For `consent`, the latest
    /// statement on the purpose or any ancestor decides, and no statement means no consent.
    /// Other bases stand on their own.
    pub fn legal_basis(&self, purpose: &Purpose, state: &SubjectState) -> Result<(), Denial> {
        if state.restricted {
            return Err(Denial::Restricted);
        }
        if state
            .objections
            .iter()
            .any(|objected| purpose.id.is_within(objected))
        {
            return Err(Denial::Objected);
        }
        if purpose.legal_basis != LegalBasis::Consent {
            return Ok(());
        }
        let latest = state
            .consents
            .iter()
            .filter(|statement| purpose.id.is_within(&statement.purpose))
            .max_by_key(|statement| statement.sequence);
        match latest {
            Some(statement) if statement.granted => Ok(()),
            Some(_) => Err(Denial::ConsentWithdrawn),
            None => Err(Denial::NoConsent),
        }
    }

    /// The decision function: rule 1 (role, action, purpose), rule 2 (legal basis for the
    /// person, when one is named) and rule 4 (which categories are withheld). Denials carry a
    /// stable reason code (`Denial::code`). Pure and allocation-light: see docs/benchmarks.md.
    pub fn decide(&self, request: &DecisionRequest<'_>) -> Result<Decision, Denial> {
        let role = self.authorize_action(request.role, request.action)?;
        let Some(purpose_id) = request.purpose else {
            if request.action.is_purpose_bound() {
                return Err(Denial::PurposeNotPermitted);
            }
            return Ok(Decision {
                withheld: Vec::new(),
            });
        };
        if !role
            .purposes
            .iter()
            .any(|allowed| purpose_id.is_within(allowed))
        {
            return Err(Denial::PurposeNotPermitted);
        }
        let purpose = self
            .purposes
            .get(purpose_id.as_str())
            .ok_or(Denial::PurposeNotPermitted)?;
        if let Some(state) = request.subject {
            self.legal_basis(purpose, state)?;
        }
        let withheld = request
            .categories
            .iter()
            .filter(|category| !self.purpose_may_use(purpose, category))
            .cloned()
            .collect();
        Ok(Decision { withheld })
    }

    /// Rules 2 and 3 in the form a population query needs (see `store::legal_basis`): the
    /// purpose with its ancestors, and whether its basis is consent.
    pub fn population_rule(&self, purpose: &Purpose) -> PopulationRule {
        PopulationRule {
            tags: self.tags_permitting(&purpose.id),
            needs_consent: purpose.legal_basis == LegalBasis::Consent,
        }
    }

    /// Rule 3: the purpose tags that make an interaction usable for `purpose`: the purpose itself
    /// and each of its ancestors.
    pub(crate) fn tags_permitting(&self, purpose: &PurposeId) -> Vec<PurposeId> {
        let mut tags = vec![purpose.clone()];
        let mut current = purpose.parent();
        while let Some(parent) = current {
            current = parent.parent();
            tags.push(parent);
        }
        tags
    }

    /// Rule 4: may `purpose` use data of `category`?
    pub(crate) fn purpose_may_use(&self, purpose: &Purpose, category: &CategoryId) -> bool {
        purpose
            .categories
            .iter()
            .any(|allowed| category.is_within(allowed))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Policy {
        load_dir(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/policies"
        )))
        .expect("the sample policy loads")
    }

    fn statement(purpose: &str, granted: bool, sequence: i64) -> ConsentStatement {
        ConsentStatement {
            purpose: PurposeId::parse(purpose).unwrap(),
            granted,
            sequence,
        }
    }

    fn decide(policy: &Policy, purpose: &str, state: &SubjectState) -> Result<(), Denial> {
        policy.legal_basis(policy.purpose(purpose).unwrap(), state)
    }

    #[test]
    fn consent_follows_the_latest_statement_on_the_purpose_or_an_ancestor() {
        let policy = sample();
        let cases: Vec<(&str, Vec<ConsentStatement>, Result<(), Denial>)> = vec![
            ("marketing.email", vec![], Err(Denial::NoConsent)),
            (
                "marketing.email",
                vec![statement("marketing", true, 1)],
                Ok(()),
            ),
            (
                "marketing.email",
                vec![
                    statement("marketing", true, 1),
                    statement("marketing.email", false, 2),
                ],
                Err(Denial::ConsentWithdrawn),
            ),
            (
                "marketing.sms",
                vec![
                    statement("marketing", true, 1),
                    statement("marketing.email", false, 2),
                ],
                Ok(()),
            ),
            (
                "marketing.email",
                vec![
                    statement("marketing", false, 1),
                    statement("marketing.email", true, 2),
                ],
                Ok(()),
            ),
            (
                "marketing.email",
                vec![
                    statement("marketing.email", false, 1),
                    statement("marketing", true, 2),
                ],
                Ok(()),
            ),
            (
                "marketing",
                vec![statement("marketing.email", true, 1)],
                Err(Denial::NoConsent),
            ),
        ];
        for (purpose, consents, expected) in cases {
            let state = SubjectState {
                consents: consents.clone(),
                ..SubjectState::default()
            };
            assert_eq!(
                decide(&policy, purpose, &state),
                expected,
                "{purpose} with {consents:?}"
            );
        }
    }

    #[test]
    fn objections_and_restriction_override_every_basis() {
        let policy = sample();
        let objected = SubjectState {
            objections: vec![PurposeId::parse("marketing").unwrap()],
            consents: vec![statement("marketing", true, 1)],
            ..SubjectState::default()
        };
        assert_eq!(
            decide(&policy, "marketing.email", &objected),
            Err(Denial::Objected)
        );
        assert_eq!(decide(&policy, "analytics", &objected), Ok(()));
        let restricted = SubjectState {
            restricted: true,
            ..SubjectState::default()
        };
        assert_eq!(
            decide(&policy, "support", &restricted),
            Err(Denial::Restricted)
        );
        assert_eq!(decide(&policy, "support", &SubjectState::default()), Ok(()));
        assert_eq!(
            decide(&policy, "analytics", &SubjectState::default()),
            Ok(())
        );
    }

    #[test]
    fn decide_combines_role_purpose_basis_and_minimisation() {
        let policy = sample();
        let support = PurposeId::parse("support").unwrap();
        let analytics = PurposeId::parse("analytics").unwrap();
        let categories = [
            CategoryId::parse("user.content").unwrap(),
            CategoryId::parse("behavior.browsing").unwrap(),
        ];
        let state = SubjectState::default();
        let request = |role, purpose| DecisionRequest {
            role,
            action: Action::InteractionsRead,
            purpose: Some(purpose),
            categories: &categories,
            subject: Some(&state),
        };
        assert_eq!(
            policy.decide(&request("support", &support)),
            Ok(Decision {
                withheld: vec![CategoryId::parse("behavior.browsing").unwrap()]
            })
        );
        assert_eq!(
            policy.decide(&request("support", &analytics)),
            Err(Denial::PurposeNotPermitted)
        );
        assert_eq!(
            policy.decide(&request("marketer", &support)),
            Err(Denial::ActionNotPermitted)
        );
        assert_eq!(
            policy.decide(&request("nobody", &support)),
            Err(Denial::UnknownRole)
        );
        let restricted = SubjectState {
            restricted: true,
            ..SubjectState::default()
        };
        let mut restricted_request = request("support", &support);
        restricted_request.subject = Some(&restricted);
        assert_eq!(policy.decide(&restricted_request), Err(Denial::Restricted));
    }

    #[test]
    fn tags_permitting_a_purpose_are_itself_and_its_ancestors() {
        let policy = sample();
        let tags = policy.tags_permitting(&PurposeId::parse("marketing.email").unwrap());
        let tags: Vec<&str> = tags.iter().map(PurposeId::as_str).collect();
        assert_eq!(tags, ["marketing.email", "marketing"]);
    }
}
