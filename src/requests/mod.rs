//! Data-subject requests: access and portability (Art. 15, 20), erasure (17), restriction (18),
//! objection (21), rectification (16), under the GDPR or the CCPA, each with its legal
//! deadline ([`deadline`]).
//!
//! Lifecycle: `received` → `verified` (the requester's identity checked) → `in_progress`
//! (execution started) → `completed`, or `rejected` (with a reason) from any open state. The
//! deadline may be extended once, with a reason. Every step is audited (`requests.*`), naming
//! the person by pseudonym once the request is matched to a subject; executing also runs the
//! action itself (export, erasure, restriction, objection, rectification) with its own entry.
//!
//! What a request says about the person (the identifier it gave, values to rectify) is sealed
//! under the request's own key (wrapped in the key epoch) and found through a blind index;
//! erasing the person clears it, key included, from every request that names them. Reasons
//! written by officers are sealed under the deployment's requests key.

pub mod deadline;
pub mod opendsr;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use serde_json::{json, Value};

use crate::audit::{self, Actor, Entry};
use crate::consent;
use crate::crypto::{DataKey, FieldContext, IdentifierKind, JwsSigner};
use crate::interactions::parse_purpose;
use crate::policy::{Action, Policy, PurposeId};
use crate::rejection::Rejection;
use crate::store::requests::{self as request_store, RequestFilter, RequestRow};
use crate::store::{write_transaction, DbConnection, StoreError};
use crate::subjects::sealed::{open, seal};
use crate::subjects::{self, Email, SubjectChanges, SubjectError, SubjectId};
use crate::vault::{Vault, WrappedKey, REQUEST_KEY_LABEL};

/// Audit actions of the request workflow.
pub const ACTION_CREATE: &str = "requests.create";
/// Reading one request.
pub const ACTION_READ: &str = "requests.read";
/// Listing requests.
pub const ACTION_LIST: &str = "requests.list";
/// Recording that the requester's identity was verified.
pub const ACTION_VERIFY: &str = "requests.verify";
/// Extending the deadline.
pub const ACTION_EXTEND: &str = "requests.extend";
/// Starting execution.
pub const ACTION_EXECUTE: &str = "requests.execute";
/// Execution finished.
pub const ACTION_COMPLETE: &str = "requests.complete";
/// Rejecting a request.
pub const ACTION_REJECT: &str = "requests.reject";
/// Reading an executed erasure's kept receipt.
pub const ACTION_RECEIPT: &str = "requests.receipt";
/// Retention shredding kept erasure receipts.
pub const ACTION_RECEIPTS_EXPIRE: &str = "requests.receipts_expire";

/// How long an executed erasure request keeps its signed receipt for the person (then retention
/// shreds it): long enough to answer the person, short against keeping their id.
pub const RECEIPT_DAYS: i64 = 30;

/// The longest reason an officer may give.
pub const MAX_REASON_CHARS: usize = 2_000;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $(#[doc = $text] $variant),+ }

        impl $name {
            /// Every value, as named in the API.
            pub const ALL: &'static [&'static str] = &[$($text),+];

            /// The name used in the API and the database.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses a name.
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

string_enum!(
    /// What the person asks for.
    Kind {
        Access = "access",
        Portability = "portability",
        Erasure = "erasure",
        Restriction = "restriction",
        Objection = "objection",
        Rectification = "rectification",
    }
);

string_enum!(
    /// The law the request is made under (it sets the deadline).
    Regulation { Gdpr = "gdpr", Ccpa = "ccpa" }
);

string_enum!(
    /// Where a request is in its lifecycle.
    Status {
        Received = "received",
        Verified = "verified",
        InProgress = "in_progress",
        Completed = "completed",
        Rejected = "rejected",
    }
);

impl Kind {
    /// The action a role must hold, besides `requests.manage`, to execute a request of this
    /// kind: the action of the route that does the same directly (erasure: `subjects.erase`,
    /// access and portability: `subjects.export`, rectification: `subjects.rectify`).
    /// Restriction and objection only limit processing: `requests.manage` is enough.
    pub(crate) fn execution_action(self) -> Action {
        match self {
            Kind::Access | Kind::Portability => Action::SubjectsExport,
            Kind::Erasure => Action::SubjectsErase,
            Kind::Rectification => Action::SubjectsRectify,
            Kind::Restriction | Kind::Objection => Action::RequestsManage,
        }
    }
}

impl Status {
    /// Whether the request still needs an answer.
    pub(crate) fn is_open(self) -> bool {
        !matches!(self, Status::Completed | Status::Rejected)
    }
}

/// How the request names the person.
#[derive(Debug, Clone)]
pub enum Identity {
    /// The app's subject id.
    SubjectId(SubjectId),
    /// An e-mail address (matched through its blind index).
    Email(Email),
    /// The SHA-256 (lowercase hex) of a normalized e-mail address (OpenDSR `email`, `sha256`).
    EmailSha256(String),
    /// The SHA-256 (lowercase hex) of a subject id (OpenDSR `controller_customer_id`,
    /// `sha256`).
    SubjectIdSha256(String),
}

/// A SHA-256 as 64 hex digits, lowercased; `None` otherwise.
pub(crate) fn parse_sha256_hex(text: &str) -> Option<String> {
    (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| text.to_ascii_lowercase())
}

impl Identity {
    fn kind(&self) -> &'static str {
        match self {
            Identity::SubjectId(id) if id.is_anonymous() => "anonymous_id",
            Identity::SubjectId(_) => "subject_id",
            Identity::Email(_) => "email",
            // Matched in `subject_identifiers` under the same names.
            Identity::EmailSha256(_) => IdentifierKind::EmailSha256.stored_name(),
            Identity::SubjectIdSha256(_) => IdentifierKind::SubjectIdSha256.stored_name(),
        }
    }

    fn value(&self) -> &str {
        match self {
            Identity::SubjectId(id) => id.as_str(),
            Identity::Email(email) => email.as_str(),
            Identity::EmailSha256(hex) | Identity::SubjectIdSha256(hex) => hex,
        }
    }

    fn blind_index(&self, vault: &Vault) -> String {
        match self {
            Identity::SubjectId(id) => subjects::subject_index(vault, id),
            Identity::Email(email) => vault
                .blind_index()
                .index(IdentifierKind::Email, email.as_str()),
            Identity::EmailSha256(hex) => {
                vault.blind_index().index(IdentifierKind::EmailSha256, hex)
            }
            Identity::SubjectIdSha256(hex) => vault
                .blind_index()
                .index(IdentifierKind::SubjectIdSha256, hex),
        }
    }

    /// The identity as a caller without `subjects.export` sees it: enough to tell requests
    /// apart, not enough to name the person (`c…2`, `j…@e….com`, `5e88…`).
    pub(crate) fn masked(&self) -> Value {
        match self {
            Identity::SubjectId(id) => {
                json!({Identity::SubjectId(id.clone()).kind(): mask(id.as_str())})
            }
            Identity::Email(email) => {
                let (local, domain) = email.as_str().rsplit_once('@').unwrap_or(("", ""));
                let domain = match domain.rsplit_once('.') {
                    Some((name, tld)) => format!("{}.{tld}", mask(name)),
                    None => mask(domain),
                };
                json!({"email": format!("{}@{domain}", mask(local))})
            }
            Identity::EmailSha256(hex) => json!({"email_sha256": format!("{}…", &hex[..4])}),
            Identity::SubjectIdSha256(hex) => {
                json!({"subject_id_sha256": format!("{}…", &hex[..4])})
            }
        }
    }

    /// The identity in full.
    pub(crate) fn revealed(&self) -> Value {
        match self {
            Identity::SubjectId(id) => json!({self.kind(): id.as_str()}),
            Identity::Email(email) => json!({"email": email.as_str()}),
            Identity::EmailSha256(hex) => json!({"email_sha256": hex}),
            Identity::SubjectIdSha256(hex) => json!({"subject_id_sha256": hex}),
        }
    }

    fn parse(kind: &str, value: &str) -> Option<Identity> {
        match kind {
            "subject_id" => SubjectId::parse(value).ok().map(Identity::SubjectId),
            "anonymous_id" => SubjectId::anonymous(value).ok().map(Identity::SubjectId),
            "email" => Email::parse(value).ok().map(Identity::Email),
            "email_sha256" => parse_sha256_hex(value).map(Identity::EmailSha256),
            "subject_id_sha256" => parse_sha256_hex(value).map(Identity::SubjectIdSha256),
            _ => None,
        }
    }
}

/// The first and last character of `text`, `…` between (just `…` when it has three
/// characters or fewer).
fn mask(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    match chars.as_slice() {
        [first, .., last] if chars.len() > 3 => format!("{first}…{last}"),
        _ => "…".to_owned(),
    }
}

/// Rectification values as a caller without `subjects.export` sees them: the names of the
/// fields to correct, each value replaced by `…`.
pub(crate) fn masked_changes(changes: &Value) -> Value {
    match changes {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(name, value)| (name.clone(), masked_changes(value)))
                .collect(),
        ),
        _ => Value::String("…".to_owned()),
    }
}

/// A validated new request.
#[derive(Debug, Clone)]
pub struct Draft {
    /// What is asked.
    pub kind: Kind,
    /// Under which law.
    pub regulation: Regulation,
    /// Who asks.
    pub identity: Identity,
    /// Objections: the purposes objected to.
    pub purposes: Vec<PurposeId>,
    /// Rectification: `{"identifiers": {…}, "traits": {…}}`, validated.
    pub changes: Option<Value>,
    /// When it was received (now, or earlier for a request that arrived by post).
    pub received_at: NaiveDateTime,
}

impl Draft {
    /// Validates a new request. `received_at` defaults to now and may not be in the future.
    #[allow(clippy::too_many_arguments)]
    pub fn parse(
        policy: &Policy,
        kind: &str,
        regulation: &str,
        subject_id: Option<&str>,
        anonymous_id: Option<&str>,
        email: Option<&str>,
        purposes: Option<&[String]>,
        changes: Option<&Value>,
        received_at: Option<NaiveDateTime>,
    ) -> Result<Draft, Rejection> {
        let invalid = |code: &'static str, message: String| Rejection::invalid(code, message);
        let kind = Kind::parse(kind).ok_or_else(|| {
            invalid(
                "invalid_request_type",
                format!(
                    "unknown request type `{}`: the types are {}",
                    kind.escape_debug(),
                    Kind::ALL.join(", ")
                ),
            )
        })?;
        let regulation = Regulation::parse(regulation).ok_or_else(|| {
            invalid(
                "invalid_regulation",
                format!(
                    "unknown regulation `{}`: use {}",
                    regulation.escape_debug(),
                    Regulation::ALL.join(" or ")
                ),
            )
        })?;
        let identity = match (subject_id, anonymous_id, email) {
            (Some(id), None, None) => Identity::SubjectId(
                SubjectId::parse(id).map_err(|m| invalid("invalid_subject_id", m))?,
            ),
            (None, Some(id), None) => Identity::SubjectId(
                SubjectId::anonymous(id).map_err(|m| invalid("invalid_subject_id", m))?,
            ),
            (None, None, Some(email)) => {
                Identity::Email(Email::parse(email).map_err(|m| invalid("invalid_identifier", m))?)
            }
            _ => {
                return Err(invalid(
                    "invalid_subject",
                    "name the person by exactly one of `subject_id`, `anonymous_id` or `email`"
                        .into(),
                ))
            }
        };
        let purposes = match (kind, purposes) {
            (Kind::Objection, Some(names)) if !names.is_empty() => names
                .iter()
                .map(|name| parse_purpose(policy, name))
                .collect::<Result<Vec<_>, _>>()?,
            (Kind::Objection, _) => {
                return Err(invalid(
                    "missing_purposes",
                    "an objection names the purposes objected to in `purposes`".into(),
                ))
            }
            (_, Some(_)) => {
                return Err(invalid(
                    "unexpected_purposes",
                    "`purposes` belongs to objections only".into(),
                ))
            }
            (_, None) => Vec::new(),
        };
        let changes = match (kind, changes) {
            (Kind::Rectification, Some(changes)) => {
                let parsed = parse_changes(policy, changes)?;
                if parsed.email.is_none() && parsed.phone.is_none() && parsed.traits.is_empty() {
                    return Err(invalid(
                        "missing_changes",
                        "a rectification names at least one identifier or trait to correct"
                            .into(),
                    ));
                }
                Some(changes.clone())
            }
            (Kind::Rectification, None) => {
                return Err(invalid(
                    "missing_changes",
                    "a rectification gives the corrected values in `changes`: {\"identifiers\": {…}, \"traits\": {…}}".into(),
                ))
            }
            (_, Some(_)) => {
                return Err(invalid(
                    "unexpected_changes",
                    "`changes` belongs to rectifications only".into(),
                ))
            }
            (_, None) => None,
        };
        let now = Utc::now().naive_utc().trunc_subsecs(6);
        let received_at = received_at.map_or(now, |at| at.trunc_subsecs(6));
        if received_at > now + chrono::Duration::minutes(5) {
            return Err(invalid(
                "invalid_received_at",
                "`received_at` is in the future".into(),
            ));
        }
        Ok(Draft {
            kind,
            regulation,
            identity,
            purposes,
            changes,
            received_at,
        })
    }
}

/// Validates a rectification's `{"identifiers": {…}, "traits": {…}}`.
fn parse_changes(policy: &Policy, changes: &Value) -> Result<SubjectChanges, Rejection> {
    let invalid = |message: &str| Rejection::invalid("invalid_changes", message.to_owned());
    let object = changes
        .as_object()
        .ok_or_else(|| invalid("`changes` is an object"))?;
    if let Some(unknown) = object
        .keys()
        .find(|key| !["identifiers", "traits"].contains(&key.as_str()))
    {
        return Err(invalid(&format!(
            "unknown key `{}` in `changes`: use `identifiers` and `traits`",
            unknown.escape_debug()
        )));
    }
    let empty = serde_json::Map::new();
    let map = |name: &str| match object.get(name) {
        None => Ok(&empty),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(invalid(&format!("`changes.{name}` is an object"))),
    };
    SubjectChanges::parse(policy, map("identifiers")?, map("traits")?)
}

/// Why a request step failed.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No request has this id.
    #[error("no such request")]
    NotFound,
    /// The step is not allowed in the request's state.
    #[error("cannot {action} a request that is {status}")]
    Transition {
        /// The step.
        action: &'static str,
        /// The state.
        status: &'static str,
    },
    /// The deadline was extended already.
    #[error("the deadline was extended already")]
    AlreadyExtended,
    /// The e-mail address belongs to several subjects.
    #[error("the e-mail address belongs to {0} subjects")]
    Ambiguous(usize),
    /// The request was filed for a person since erased; its identifier is gone.
    #[error("the person named by this request was erased")]
    IdentityErased,
    /// Bad input.
    #[error("{0:?}")]
    Invalid(Rejection),
    /// The role may not carry the request out: it lacks the action of doing it directly.
    #[error("the role lacks `{needed}`")]
    NotPermitted {
        /// The denial's code.
        code: &'static str,
        /// The action needed.
        needed: &'static str,
        /// The request's type.
        kind: &'static str,
    },
    /// The audit entry of a read could not be written: nothing is answered.
    #[error("the audit log could not be written")]
    Unrecorded,
    /// Not the caller's fault.
    #[error(transparent)]
    Subject(#[from] SubjectError),
}

impl From<Rejection> for RequestError {
    fn from(rejection: Rejection) -> Self {
        RequestError::Invalid(rejection)
    }
}

impl From<crate::store::StoreError> for RequestError {
    fn from(error: crate::store::StoreError) -> Self {
        RequestError::Subject(error.into())
    }
}

impl From<crate::crypto::DecryptError> for RequestError {
    fn from(error: crate::crypto::DecryptError) -> Self {
        RequestError::Subject(error.into())
    }
}

/// A request as shown: decrypted.
#[derive(Debug, Clone)]
pub struct Request {
    /// Its id.
    pub id: String,
    /// What is asked.
    pub kind: Kind,
    /// Under which law.
    pub regulation: Regulation,
    /// Where it is.
    pub status: Status,
    /// Who asks; `None` once the person was erased.
    pub identity: Option<Identity>,
    /// Objections: purposes.
    pub purposes: Vec<String>,
    /// Rectification: the corrected values (until the person is erased).
    pub changes: Option<Value>,
    /// When it was received.
    pub received_at: NaiveDateTime,
    /// When it must be answered.
    pub due_at: NaiveDateTime,
    /// When and why the deadline was extended.
    pub extended: Option<(NaiveDateTime, String)>,
    /// When the requester's identity was verified.
    pub verified_at: Option<NaiveDateTime>,
    /// When it was completed.
    pub completed_at: Option<NaiveDateTime>,
    /// When and why it was rejected.
    pub rejected: Option<(NaiveDateTime, String)>,
    /// What execution did.
    pub result: Option<Value>,
    /// The person's audit pseudonym, once matched.
    pub pseudonym: Option<String>,
    /// The id of the API key that filed it.
    pub created_by: Option<String>,
}

impl Request {
    /// Whether it is open and past its deadline at `now`.
    pub(crate) fn overdue(&self, now: NaiveDateTime) -> bool {
        self.status.is_open() && self.due_at < now
    }

    /// Calendar days from `now` to the deadline (negative when past).
    pub(crate) fn days_left(&self, now: NaiveDateTime) -> i64 {
        (self.due_at.date() - now.date()).num_days()
    }
}

fn place<'a>(id: &'a str, field: &'a str) -> FieldContext<'a> {
    FieldContext {
        subject: "request",
        record: id,
        field,
    }
}

fn seal_text(key: &DataKey, id: &str, field: &str, text: &str) -> String {
    seal(key, &place(id, field), text.as_bytes())
}

fn open_text(key: &DataKey, id: &str, field: &str, sealed: &str) -> Result<String, RequestError> {
    let bytes = open(key, &place(id, field), sealed)?;
    Ok(String::from_utf8(bytes).map_err(|_| crate::crypto::DecryptError)?)
}

/// A request's own key, or the deployment's requests key.
enum IdentityKey<'v> {
    Own(Box<DataKey>),
    Shared(&'v DataKey),
}

impl std::ops::Deref for IdentityKey<'_> {
    type Target = DataKey;

    fn deref(&self) -> &DataKey {
        match self {
            IdentityKey::Own(key) => key,
            IdentityKey::Shared(key) => key,
        }
    }
}

/// The key that seals what a request says about the person (the identifier, the values to
/// rectify): the request's own key, or the deployment's requests key for requests filed before
/// request keys existed. `None` once the identity was cleared at erasure.
fn identity_key<'v>(
    vault: &'v Vault,
    row: &RequestRow,
) -> Result<Option<IdentityKey<'v>>, RequestError> {
    match (&row.key_id, &row.key_master_key_id, &row.key_wrapped) {
        (Some(key_id), Some(master_key_id), Some(wrapped)) => Ok(Some(IdentityKey::Own(Box::new(
            vault
                .open_record_key(
                    REQUEST_KEY_LABEL,
                    &row.id,
                    &WrappedKey {
                        key_id: key_id.clone(),
                        master_key_id: master_key_id.clone(),
                        epoch: row.key_epoch,
                        wrapped: wrapped.clone(),
                    },
                )
                .map_err(SubjectError::from)?,
        )))),
        _ if row.identity_ct.is_some() || row.changes_ct.is_some() => {
            Ok(Some(IdentityKey::Shared(vault.requests_key())))
        }
        _ => Ok(None),
    }
}

fn parse_status(text: &str) -> Result<Status, RequestError> {
    Status::parse(text).ok_or_else(|| SubjectError::from(crate::crypto::DecryptError).into())
}

/// Decrypts a stored request.
pub(crate) fn view(vault: &Vault, row: &RequestRow) -> Result<Request, RequestError> {
    let corrupt = || RequestError::from(crate::crypto::DecryptError);
    let key = identity_key(vault, row)?;
    let identity = match (&row.identity_ct, &key) {
        (Some(sealed), Some(key)) => {
            let value = open_text(key, &row.id, "identity", sealed)?;
            Some(Identity::parse(&row.identity_kind, &value).ok_or_else(corrupt)?)
        }
        (Some(_), None) => return Err(corrupt()),
        (None, _) => None,
    };
    let changes = match (&row.changes_ct, &key) {
        (Some(sealed), Some(key)) => Some(
            serde_json::from_str(&open_text(key, &row.id, "changes", sealed)?)
                .map_err(|_| corrupt())?,
        ),
        (Some(_), None) => return Err(corrupt()),
        (None, _) => None,
    };
    let reason = |sealed: &Option<String>, field: &str| -> Result<String, RequestError> {
        sealed.as_deref().map_or(Ok(String::new()), |s| {
            open_text(vault.requests_key(), &row.id, field, s)
        })
    };
    Ok(Request {
        id: row.id.clone(),
        kind: Kind::parse(&row.kind).ok_or_else(corrupt)?,
        regulation: Regulation::parse(&row.regulation).ok_or_else(corrupt)?,
        status: parse_status(&row.status)?,
        identity,
        purposes: serde_json::from_str(&row.purposes).map_err(|_| corrupt())?,
        changes,
        received_at: row.received_at,
        due_at: row.due_at,
        extended: match row.extended_at {
            Some(at) => Some((at, reason(&row.extension_reason_ct, "extension_reason")?)),
            None => None,
        },
        verified_at: row.verified_at,
        completed_at: row.completed_at,
        rejected: match row.rejected_at {
            Some(at) => Some((at, reason(&row.rejection_reason_ct, "rejection_reason")?)),
            None => None,
        },
        result: row
            .result
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt())?,
        pseudonym: row.pseudonym.clone(),
        created_by: row.created_by.clone(),
    })
}

/// The subject a request names, if any: its subject id and audit pseudonym.
enum Match {
    None,
    One(SubjectId, String),
    Several(usize),
}

fn match_subject(
    conn: &mut DbConnection,
    vault: &Vault,
    identity: &Identity,
) -> Result<Match, RequestError> {
    Ok(match identity {
        Identity::SubjectId(id) => match subjects::find(conn, vault, id)? {
            Some(handle) => Match::One(id.clone(), handle.key.pseudonym().to_owned()),
            None => Match::None,
        },
        Identity::Email(_) | Identity::EmailSha256(_) | Identity::SubjectIdSha256(_) => {
            let mut found = match identity {
                Identity::Email(email) => subjects::find_by_email(conn, vault, email)?,
                other => subjects::find_by_identifier(
                    conn,
                    vault,
                    other.kind(),
                    &other.blind_index(vault),
                )?,
            };
            match found.len() {
                0 => Match::None,
                1 => {
                    let (id, pseudonym) = found.remove(0);
                    Match::One(id, pseudonym)
                }
                n => Match::Several(n),
            }
        }
    })
}

/// The pseudonym to name in an entry about this request: the stored one, else the matched
/// subject's (when exactly one matches).
fn pseudonym_for(
    conn: &mut DbConnection,
    vault: &Vault,
    request: &Request,
) -> Result<Option<String>, RequestError> {
    if request.pseudonym.is_some() {
        return Ok(request.pseudonym.clone());
    }
    let Some(identity) = &request.identity else {
        return Ok(None);
    };
    Ok(match match_subject(conn, vault, identity)? {
        Match::One(_, pseudonym) => Some(pseudonym),
        _ => None,
    })
}

fn entry(
    actor: &Actor,
    action: &'static str,
    request: &Request,
    pseudonym: Option<String>,
) -> Entry {
    Entry::new(actor, action)
        .target(request.id.clone())
        .pseudonym(pseudonym)
        .records(1)
}

/// Files a new request (status `received`) with its deadline.
pub(crate) fn create(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    draft: &Draft,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let id = uuid::Uuid::now_v7().to_string();
    let now = Utc::now().naive_utc().trunc_subsecs(6);
    let purposes: Vec<&str> = draft.purposes.iter().map(PurposeId::as_str).collect();
    let (key, wrapped_key) = vault
        .new_record_key(REQUEST_KEY_LABEL, &id)
        .map_err(SubjectError::from)?;
    let row = RequestRow {
        id: id.clone(),
        kind: draft.kind.as_str().to_owned(),
        regulation: draft.regulation.as_str().to_owned(),
        status: Status::Received.as_str().to_owned(),
        identity_kind: draft.identity.kind().to_owned(),
        identity_index: Some(draft.identity.blind_index(vault)),
        identity_ct: Some(seal_text(&key, &id, "identity", draft.identity.value())),
        pseudonym: None,
        purposes: serde_json::to_string(&purposes).expect("strings encode"),
        changes_ct: draft
            .changes
            .as_ref()
            .map(|changes| seal_text(&key, &id, "changes", &changes.to_string())),
        received_at: draft.received_at,
        due_at: deadline::initial(draft.regulation, draft.received_at),
        extended_at: None,
        extension_reason_ct: None,
        verified_at: None,
        completed_at: None,
        rejected_at: None,
        rejection_reason_ct: None,
        result: None,
        created_by: actor.key_id.clone(),
        updated_at: now,
        key_id: Some(wrapped_key.key_id),
        key_master_key_id: Some(wrapped_key.master_key_id),
        key_epoch: wrapped_key.epoch,
        key_wrapped: Some(wrapped_key.wrapped),
        receipt_ct: None,
        receipt_until: None,
    };
    write_transaction(conn, |conn| {
        request_store::insert(conn, &row)?;
        let request = view(vault, &row)?;
        let pseudonym = pseudonym_for(conn, vault, &request)?;
        let mut entry = entry(actor, ACTION_CREATE, &request, pseudonym);
        for purpose in &draft.purposes {
            entry.add_purpose(policy, purpose);
        }
        audit::append(conn, policy.sha256(), vec![entry])?;
        Ok(request)
    })
}

/// One request, with the pseudonym to audit its reading under.
pub(crate) fn get(
    conn: &mut DbConnection,
    vault: &Vault,
    id: &str,
) -> Result<(Request, Option<String>), RequestError> {
    let row = request_store::find(conn, id, false)?.ok_or(RequestError::NotFound)?;
    let request = view(vault, &row)?;
    let pseudonym = pseudonym_for(conn, vault, &request)?;
    Ok((request, pseudonym))
}

/// A page of requests by deadline, with the pseudonyms they name.
pub(crate) fn list(
    conn: &mut DbConnection,
    vault: &Vault,
    filter: &RequestFilter,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
    now: NaiveDateTime,
) -> Result<Vec<(Request, Option<String>)>, RequestError> {
    let rows = request_store::page(conn, filter, now, after, limit)?;
    let mut requests = Vec::with_capacity(rows.len());
    for row in &rows {
        let request = view(vault, row)?;
        let pseudonym = pseudonym_for(conn, vault, &request)?;
        requests.push((request, pseudonym));
    }
    Ok(requests)
}

/// Runs one step on a locked request: checks the state, lets `change` update the row, saves it
/// and appends the step's entry, all in one transaction.
fn step(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    id: &str,
    actor: &Actor,
    action: &'static str,
    change: impl FnOnce(&mut RequestRow, Status) -> Result<(), RequestError>,
) -> Result<Request, RequestError> {
    write_transaction(conn, |conn| {
        let mut row = request_store::find(conn, id, true)?.ok_or(RequestError::NotFound)?;
        let status = parse_status(&row.status)?;
        change(&mut row, status)?;
        row.updated_at = Utc::now().naive_utc().trunc_subsecs(6);
        request_store::save(conn, &row)?;
        let request = view(vault, &row)?;
        let pseudonym = pseudonym_for(conn, vault, &request)?;
        audit::append(
            conn,
            policy.sha256(),
            vec![entry(actor, action, &request, pseudonym)],
        )?;
        crate::requests::opendsr::announce(conn, &request)?;
        Ok(request)
    })
}

fn refuse(action: &'static str, status: Status) -> RequestError {
    RequestError::Transition {
        action,
        status: status.as_str(),
    }
}

/// Records that the requester's identity was verified: `received` → `verified`.
pub fn verify(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    id: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    step(
        conn,
        vault,
        policy,
        id,
        actor,
        ACTION_VERIFY,
        |row, status| {
            if status != Status::Received {
                return Err(refuse("verify", status));
            }
            row.status = Status::Verified.as_str().into();
            row.verified_at = Some(Utc::now().naive_utc().trunc_subsecs(6));
            Ok(())
        },
    )
}

fn checked_reason(reason: &str) -> Result<&str, RequestError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Rejection::invalid("missing_reason", "give a reason").into());
    }
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(Rejection::invalid(
            "reason_too_long",
            format!("a reason has at most {MAX_REASON_CHARS} characters"),
        )
        .into());
    }
    Ok(reason)
}

/// Extends the deadline once (GDPR: to three months from receipt; CCPA: to 90 days), with a
/// reason; open requests only.
pub(crate) fn extend(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let reason = checked_reason(reason)?;
    step(
        conn,
        vault,
        policy,
        id,
        actor,
        ACTION_EXTEND,
        |row, status| {
            if !status.is_open() {
                return Err(refuse("extend", status));
            }
            if row.extended_at.is_some() {
                return Err(RequestError::AlreadyExtended);
            }
            let regulation = Regulation::parse(&row.regulation)
                .ok_or_else(|| RequestError::from(crate::crypto::DecryptError))?;
            row.due_at = deadline::extended(regulation, row.received_at);
            row.extended_at = Some(Utc::now().naive_utc().trunc_subsecs(6));
            row.extension_reason_ct = Some(seal_text(
                vault.requests_key(),
                &row.id,
                "extension_reason",
                reason,
            ));
            Ok(())
        },
    )
}

/// Rejects an open request, with a reason (e.g. the identity could not be verified).
pub(crate) fn reject(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    id: &str,
    reason: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    let reason = checked_reason(reason)?;
    step(
        conn,
        vault,
        policy,
        id,
        actor,
        ACTION_REJECT,
        |row, status| {
            if !status.is_open() {
                return Err(refuse("reject", status));
            }
            row.status = Status::Rejected.as_str().into();
            row.rejected_at = Some(Utc::now().naive_utc().trunc_subsecs(6));
            row.rejection_reason_ct = Some(seal_text(
                vault.requests_key(),
                &row.id,
                "rejection_reason",
                reason,
            ));
            Ok(())
        },
    )
}

/// What executing a request did.
#[derive(Debug)]
pub struct Executed {
    /// The request, now `completed`.
    pub request: Request,
    /// An erasure's signed receipt (also kept, sealed, for [`RECEIPT_DAYS`]: [`kept_receipt`]).
    pub erasure_receipt: Option<String>,
    /// The destroyed keys of an erased person and their members (to drop caches; never shown).
    pub erased_keys: Vec<crate::store::erasure::ErasedKey>,
}

/// What carrying out a request did: its result as shown, and an erasure's receipt and key.
struct Carried {
    result: Value,
    receipt: Option<String>,
    erased_keys: Vec<crate::store::erasure::ErasedKey>,
}

/// Carries out a request for the person it matched (if any), by its kind.
#[allow(clippy::too_many_arguments)]
fn carry_out(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    signer: &JwsSigner,
    id: &str,
    request: &Request,
    matched: Option<&(SubjectId, String)>,
    actor: &Actor,
) -> Result<Carried, RequestError> {
    let mut receipt = None;
    let mut erased_keys = Vec::new();
    let result = match (matched, request.kind) {
        (None, _) => json!({"subject_found": false}),
        (Some(_), Kind::Access | Kind::Portability) => {
            let format = if request.kind == Kind::Access {
                "json"
            } else {
                "csv"
            };
            json!({"subject_found": true,
                   "export": {"url": format!("/v1/requests/{id}/export"), "format": format}})
        }
        (Some((subject_id, _)), Kind::Erasure) => {
            let erasure = subjects::erase(
                conn,
                vault,
                policy,
                signer,
                subject_id,
                false,
                Some(id),
                actor,
            )?
            .ok_or(RequestError::Subject(SubjectError::Vault(
                crate::vault::VaultError::Erased,
            )))?;
            receipt = Some(erasure.receipt);
            erased_keys = erasure.erased_keys;
            json!({"subject_found": true, "erasure_id": erasure.id, "erased": erasure.counts, "held": erasure.held})
        }
        (Some((subject_id, _)), Kind::Restriction) => {
            let changed =
                consent::restrict(conn, vault, policy, subject_id, false, actor)?.unwrap_or(false);
            json!({"subject_found": true, "restricted": true, "changed": changed})
        }
        (Some((subject_id, _)), Kind::Objection) => {
            let mut objected = Vec::new();
            for name in &request.purposes {
                let purpose = parse_purpose(policy, name)?;
                consent::object(conn, vault, policy, subject_id, &purpose, false, actor)?;
                objected.push(name.clone());
            }
            json!({"subject_found": true, "objected": objected})
        }
        (Some((subject_id, _)), Kind::Rectification) => {
            let raw = request.changes.clone().unwrap_or(Value::Null);
            let changes = parse_changes(policy, &raw)?;
            subjects::upsert(conn, vault, policy, subject_id, &changes, actor)?;
            let names = |key: &str| -> Vec<String> {
                raw.get(key)
                    .and_then(Value::as_object)
                    .map(|map| map.keys().cloned().collect())
                    .unwrap_or_default()
            };
            json!({"subject_found": true, "rectified":
                   {"identifiers": names("identifiers"), "traits": names("traits")}})
        }
    };
    Ok(Carried {
        result,
        receipt,
        erased_keys,
    })
}

/// Keeps an erasure's receipt with the request, sealed under a key of its own: the erasure
/// destroyed the request's key with the person's identifier, and the receipt (which names the
/// person) is shredded with its key by retention after [`RECEIPT_DAYS`].
fn keep_receipt(
    vault: &Vault,
    id: &str,
    row: &mut request_store::RequestRow,
    receipt: &str,
    now: chrono::NaiveDateTime,
) -> Result<(), RequestError> {
    let (key, wrapped) = vault
        .new_record_key(REQUEST_KEY_LABEL, id)
        .map_err(SubjectError::from)?;
    row.receipt_ct = Some(seal_text(&key, id, "erasure_receipt", receipt));
    row.receipt_until = Some(now + chrono::Duration::days(RECEIPT_DAYS));
    row.key_id = Some(wrapped.key_id);
    row.key_master_key_id = Some(wrapped.master_key_id);
    row.key_epoch = wrapped.epoch;
    row.key_wrapped = Some(wrapped.wrapped);
    Ok(())
}

/// Marks a verified request `in_progress` (execution started), audited. A request already in
/// progress (an execution that failed) may start again.
pub(crate) fn start_execution(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    id: &str,
    actor: &Actor,
) -> Result<Request, RequestError> {
    step(
        conn,
        vault,
        policy,
        id,
        actor,
        ACTION_EXECUTE,
        |row, status| {
            if !matches!(status, Status::Verified | Status::InProgress) {
                return Err(match status {
                    Status::Received => RequestError::Transition {
                        action: "execute (verify the requester's identity first)",
                        status: status.as_str(),
                    },
                    other => refuse("execute", other),
                });
            }
            row.status = Status::InProgress.as_str().into();
            Ok(())
        },
    )
}

/// Runs the action of a request in progress and completes it with what was done, in one
/// transaction with the action's own audit entries. A failure leaves it `in_progress`.
pub(crate) fn finish_execution(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    signer: &JwsSigner,
    id: &str,
    actor: &Actor,
) -> Result<Executed, RequestError> {
    write_transaction(conn, |conn| {
        let row = request_store::find(conn, id, true)?.ok_or(RequestError::NotFound)?;
        let status = parse_status(&row.status)?;
        if status != Status::InProgress {
            // Another execution finished first.
            return Err(refuse("execute", status));
        }
        let request = view(vault, &row)?;
        let identity = request
            .identity
            .clone()
            .ok_or(RequestError::IdentityErased)?;
        let matched = match match_subject(conn, vault, &identity)? {
            Match::Several(n) => return Err(RequestError::Ambiguous(n)),
            Match::One(subject_id, pseudonym) => Some((subject_id, pseudonym)),
            Match::None => None,
        };
        let Carried {
            result,
            receipt,
            erased_keys,
        } = carry_out(
            conn,
            vault,
            policy,
            signer,
            id,
            &request,
            matched.as_ref(),
            actor,
        )?;
        // Re-read: an erasure cleared the identity of this request, among others.
        let mut row = request_store::find(conn, id, false)?.ok_or(RequestError::NotFound)?;
        let now = Utc::now().naive_utc().trunc_subsecs(6);
        row.status = Status::Completed.as_str().into();
        row.completed_at = Some(now);
        row.updated_at = now;
        row.result = Some(result.to_string());
        if let Some((_, pseudonym)) = &matched {
            row.pseudonym = Some(pseudonym.clone());
        }
        if let Some(receipt) = &receipt {
            keep_receipt(vault, id, &mut row, receipt, now)?;
        }
        request_store::save(conn, &row)?;
        let request = view(vault, &row)?;
        let records = usize::from(matched.is_some());
        let entry = entry(actor, ACTION_COMPLETE, &request, row.pseudonym.clone()).records(records);
        audit::append(conn, policy.sha256(), vec![entry])?;
        crate::requests::opendsr::announce(conn, &request)?;
        Ok(Executed {
            request,
            erasure_receipt: receipt,
            erased_keys,
        })
    })
}

/// Completes the open requests `ids` of a person just erased (by `erasure_id`): there is no one
/// left to give access to, restrict, object for or rectify, and an erasure asked for again is
/// done. Each gets the result `{"subject_found": false, "closed_by_erasure": erasure_id}`, its
/// audit entry, and its OpenDSR status callback. Call in the erasure's transaction.
pub(crate) fn close_after_erasure(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    ids: &[&str],
    erasure_id: &str,
    pseudonym: &str,
    actor: &Actor,
) -> Result<(), SubjectError> {
    let now = Utc::now().naive_utc().trunc_subsecs(6);
    let mut entries = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(mut row) = request_store::find(conn, id, true)? else {
            continue;
        };
        row.status = Status::Completed.as_str().into();
        row.completed_at = Some(now);
        row.updated_at = now;
        row.result =
            Some(json!({"subject_found": false, "closed_by_erasure": erasure_id}).to_string());
        row.pseudonym = Some(pseudonym.to_owned());
        request_store::save(conn, &row)?;
        let request = view(vault, &row).map_err(|error| match error {
            RequestError::Subject(error) => error,
            _ => SubjectError::Vault(crate::vault::VaultError::Corrupt("a request row")),
        })?;
        entries.push(entry(
            actor,
            ACTION_COMPLETE,
            &request,
            row.pseudonym.clone(),
        ));
        crate::requests::opendsr::announce(conn, &request)?;
    }
    audit::append(conn, policy.sha256(), entries)?;
    Ok(())
}

/// An executed erasure request's kept receipt and until when it is kept; `None` when the request
/// keeps none (not an executed erasure, it found nobody, or retention shredded it).
pub(crate) fn kept_receipt(
    conn: &mut DbConnection,
    vault: &Vault,
    id: &str,
) -> Result<Option<(String, NaiveDateTime)>, RequestError> {
    let row = request_store::find(conn, id, false)?.ok_or(RequestError::NotFound)?;
    let (Some(sealed), Some(until)) = (&row.receipt_ct, row.receipt_until) else {
        return Ok(None);
    };
    if until <= Utc::now().naive_utc() {
        return Ok(None);
    }
    let Some(key) = identity_key(vault, &row)? else {
        return Err(crate::crypto::DecryptError.into());
    };
    Ok(Some((
        open_text(&key, id, "erasure_receipt", sealed)?,
        until,
    )))
}

/// Shreds the erasure receipts kept past their time, with one audit entry.
pub(crate) fn shred_expired_receipts(
    conn: &mut DbConnection,
    policy: &Policy,
    actor: &Actor,
) -> Result<usize, StoreError> {
    let now = Utc::now().naive_utc();
    write_transaction(conn, |conn| {
        let shredded = request_store::shred_expired_receipts(conn, now)?;
        if shredded > 0 {
            let entry = Entry::new(actor, ACTION_RECEIPTS_EXPIRE).records(shredded);
            audit::append(conn, policy.sha256(), vec![entry])?;
        }
        Ok(shredded)
    })
}

/// The subject a completed access or portability request exports, and the format it asked
/// for; `None` when the request found nobody.
pub(crate) fn export_target(
    conn: &mut DbConnection,
    vault: &Vault,
    id: &str,
) -> Result<(Request, Option<SubjectId>), RequestError> {
    let row = request_store::find(conn, id, false)?.ok_or(RequestError::NotFound)?;
    let request = view(vault, &row)?;
    if !matches!(request.kind, Kind::Access | Kind::Portability)
        || request.status != Status::Completed
    {
        return Err(RequestError::Transition {
            action: "export (only completed access and portability requests have an export)",
            status: request.status.as_str(),
        });
    }
    let identity = request
        .identity
        .clone()
        .ok_or(RequestError::IdentityErased)?;
    let subject = match match_subject(conn, vault, &identity)? {
        Match::One(subject_id, _) => Some(subject_id),
        Match::None => None,
        Match::Several(n) => return Err(RequestError::Ambiguous(n)),
    };
    Ok((request, subject))
}
