//! Subjects: the people data is about. Known outside only by the app's `subject_id`, which is
//! stored as a blind index and a ciphertext; identifiers (e-mail, phone) likewise; traits
//! encrypted unless the policy declares them segmentable.

mod erase;
pub mod holds;
pub mod links;
pub mod sealed;
mod values;

use crate::audit::{Actor, Entry};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{NaiveDateTime, Utc};
use serde_json::Value;

/// What an erasure deleted, by kind (as the store counts it).
pub use crate::store::erasure::ErasedCounts;
pub use erase::{
    after_erasure, erase, lift_suppression, preview as erasure_preview, suppressed_among, Erasure,
    ErasurePreview, ACTION_ERASURE_PREVIEW,
};
pub use values::{Email, FieldValue, Phone, SubjectId};

use crate::crypto::{DataKey, DecryptError, FieldContext, IdentifierKind};
use crate::policy::{FieldName, Policy, SubjectState};
use crate::rejection::Rejection;
use crate::store::subjects::{self as subject_store, SubjectRow};
use crate::store::{keys as key_store, DbConnection, StoreError};
use crate::vault::{Vault, VaultError};
use sealed::{read_map, seal, write_map, SUBJECT_RECORD};

/// The most traits one request may set.
pub const MAX_TRAITS_PER_REQUEST: usize = 100;

/// Errors that are not the caller's fault.
#[derive(Debug, thiserror::Error)]
pub enum SubjectError {
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be loaded or unwrapped.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A stored ciphertext did not decrypt.
    #[error("a stored value could not be decrypted")]
    Decrypt(#[from] DecryptError),
    /// Other requests kept writing the same subjects; the work was not done.
    #[error("too many concurrent writes to the same subjects; try again")]
    Contended,
    /// The subject id was erased with suppression: nothing about it is accepted until lifted.
    #[error("the subject id is suppressed")]
    Suppressed,
}

impl SubjectError {
    /// Whether a concurrent writer got in the way: it inserted the same key first, or erased a
    /// subject the work had found (its key vanished, or a foreign key broke at the insert).
    /// Work that fails so is prepared again from scratch.
    pub(crate) fn is_write_conflict(&self) -> bool {
        match self {
            SubjectError::Store(StoreError::Query(error)) => crate::store::is_write_conflict(error),
            SubjectError::Vault(VaultError::Erased) => true,
            _ => false,
        }
    }
}

/// A coalesced group's failure, for each of its requests: the same kind of failure (a
/// database that is away stays a 503, a contention a 409), the rest as a failed group commit.
impl crate::coalesce::GroupError for SubjectError {
    fn share(&self) -> Self {
        match self {
            SubjectError::Contended => SubjectError::Contended,
            SubjectError::Suppressed => SubjectError::Suppressed,
            SubjectError::Vault(VaultError::Erased) => SubjectError::Vault(VaultError::Erased),
            SubjectError::Store(StoreError::Unavailable(_) | StoreError::Connection(_))
            | SubjectError::Store(StoreError::Saturated)
            | SubjectError::Vault(VaultError::Store(
                StoreError::Unavailable(_) | StoreError::Connection(_) | StoreError::Saturated,
            )) => SubjectError::Store(StoreError::Saturated),
            SubjectError::Store(StoreError::Locked) => SubjectError::Store(StoreError::Locked),
            other => SubjectError::Store(StoreError::GroupCommit(other.to_string())),
        }
    }

    fn queue_stopped() -> Self {
        SubjectError::Store(StoreError::GroupCommit(
            "the write queue has stopped".into(),
        ))
    }
}

/// The identifier kinds a subject may have, as named in requests.
pub const IDENTIFIER_KINDS: [&str; 2] = ["email", "phone"];

/// A validated change to a subject: identifiers and traits to set (`Some`) or remove (`None`).
#[derive(Debug, Default)]
pub struct SubjectChanges {
    /// Normalized e-mail: set or remove.
    pub email: Option<Option<Email>>,
    /// Normalized phone: set or remove.
    pub phone: Option<Option<Phone>>,
    /// Traits to set or remove.
    pub traits: Vec<(FieldName, Option<FieldValue>)>,
}

impl SubjectChanges {
    /// Validates identifiers (`email`, `phone`; `null` removes) and traits (declared fields only,
    /// strings or numbers; `null` removes).
    pub fn parse(
        policy: &Policy,
        identifiers: &serde_json::Map<String, Value>,
        traits: &serde_json::Map<String, Value>,
    ) -> Result<SubjectChanges, Rejection> {
        let mut changes = SubjectChanges::default();
        for (kind, value) in identifiers {
            let text = match value {
                Value::Null => None,
                Value::String(text) => Some(text.as_str()),
                _ => {
                    return Err(Rejection::invalid(
                        "invalid_identifier",
                        format!("identifier `{kind}` must be a string or null"),
                    ))
                }
            };
            let invalid = |message: String| Rejection::invalid("invalid_identifier", message);
            match kind.as_str() {
                "email" => {
                    changes.email = Some(text.map(Email::parse).transpose().map_err(invalid)?)
                }
                "phone" => {
                    changes.phone = Some(text.map(Phone::parse).transpose().map_err(invalid)?)
                }
                other => {
                    return Err(Rejection::invalid(
                        "unknown_identifier",
                        format!(
                            "unknown identifier `{}`: the identifiers are {}",
                            other.escape_debug(),
                            IDENTIFIER_KINDS.join(", ")
                        ),
                    ))
                }
            }
        }
        if traits.len() > MAX_TRAITS_PER_REQUEST {
            return Err(Rejection::invalid(
                "too_many_fields",
                format!("at most {MAX_TRAITS_PER_REQUEST} traits per request"),
            ));
        }
        for (name, value) in traits {
            let field = declared_field(policy, name)?;
            let value = match value {
                Value::Null => None,
                value => Some(
                    FieldValue::parse(name, value)
                        .map_err(|message| Rejection::invalid("invalid_field_value", message))?,
                ),
            };
            changes.traits.push((field, value));
        }
        Ok(changes)
    }
}

/// The declared field with this name, or a 422 naming it.
pub(crate) fn declared_field(policy: &Policy, name: &str) -> Result<FieldName, Rejection> {
    policy
        .field(name)
        .map(|field| field.name.clone())
        .ok_or_else(|| {
            Rejection::invalid(
                "undeclared_field",
                format!(
                    "field `{}` is not declared in the policy",
                    name.escape_debug()
                ),
            )
        })
}

/// The blind index of a subject id: a user id's under the subject-id key, an anonymous id's
/// under its own key (so the two namespaces never meet).
pub fn subject_index(vault: &Vault, subject_id: &SubjectId) -> String {
    let kind = if subject_id.is_anonymous() {
        IdentifierKind::AnonymousId
    } else {
        IdentifierKind::SubjectId
    };
    vault.blind_index().index(kind, subject_id.as_str())
}

/// The identifier row that marks a subject by its kind of id: a user id's SHA-256 index (what
/// OpenDSR controllers may name them by), or, for a person known only by an anonymous id, the
/// `anonymous_id` marker (no SHA-256 index: controllers name people by their user id).
pub(crate) fn id_marker(
    vault: &Vault,
    pk: &str,
    subject_id: &SubjectId,
) -> subject_store::IdentifierRow {
    let (kind, blind_index) = if subject_id.is_anonymous() {
        (
            IdentifierKind::AnonymousId,
            subject_index(vault, subject_id),
        )
    } else {
        (
            IdentifierKind::SubjectIdSha256,
            vault
                .blind_index()
                .index_of_sha256(IdentifierKind::SubjectId, subject_id.as_str())
                .expect("subject ids have a hashed index"),
        )
    };
    subject_store::IdentifierRow {
        subject_pk: pk.to_owned(),
        kind: kind.stored_name().to_owned(),
        blind_index,
    }
}

/// Seals a subject id in the subject's row (`subjects.subject_id_ct`).
pub(crate) fn seal_subject_id(key: &DataKey, pk: &str, subject_id: &SubjectId) -> Vec<u8> {
    let context = FieldContext {
        subject: pk,
        record: SUBJECT_RECORD,
        field: "$subject_id",
    };
    key.encrypt(&context, &subject_id.sealed_form())
}

/// Opens the subject id sealed in a subject's row.
pub(crate) fn open_subject_id(
    key: &DataKey,
    pk: &str,
    sealed: &[u8],
) -> Result<SubjectId, DecryptError> {
    let context = FieldContext {
        subject: pk,
        record: SUBJECT_RECORD,
        field: "$subject_id",
    };
    SubjectId::from_sealed_form(&key.decrypt(&context, sealed)?).map_err(|_| DecryptError)
}

/// A subject as the domain works with it: its internal id and its data key.
#[derive(Debug, Clone)]
pub struct SubjectHandle {
    /// The internal id.
    pub pk: String,
    /// The subject's data key.
    pub key: Arc<DataKey>,
}

/// A person with the people merged into them (`subject_members`), whose interactions keep
/// their own internal id and data key: what every reader of a person's interactions opens
/// them with. The person comes first.
#[derive(Debug, Clone)]
pub struct Owners {
    handles: Vec<SubjectHandle>,
}

impl Owners {
    /// The person's handle and their members'.
    pub(crate) fn load(
        conn: &mut DbConnection,
        vault: &Vault,
        person: SubjectHandle,
    ) -> Result<Self, SubjectError> {
        let members = crate::store::links::members_of(conn, &person.pk)?;
        let mut handles = Vec::with_capacity(1 + members.len());
        handles.push(person);
        if !members.is_empty() {
            let pks: Vec<&str> = members.iter().map(String::as_str).collect();
            let mut keys = vault.data_keys_for(conn, &pks)?;
            for pk in members {
                // A member whose key is gone was folded into the person (or erased with them)
                // since the members were read: the step that deletes a member's key holds none
                // of its interactions any more, so there is nothing of it to open.
                if let Some(key) = keys.remove(&pk) {
                    handles.push(SubjectHandle { pk, key });
                }
            }
        }
        Ok(Owners { handles })
    }

    /// The person.
    pub fn person(&self) -> &SubjectHandle {
        &self.handles[0]
    }

    /// The internal ids rows may be stored under: the person's and each member's.
    pub fn pks(&self) -> Vec<&str> {
        self.handles
            .iter()
            .map(|handle| handle.pk.as_str())
            .collect()
    }

    /// The handle a row stored under `owner_pk` is sealed with; a row of anyone else cannot be
    /// opened.
    pub fn of(&self, owner_pk: &str) -> Result<&SubjectHandle, DecryptError> {
        self.handles
            .iter()
            .find(|handle| handle.pk == owner_pk)
            .ok_or(DecryptError)
    }
}

/// Finds a subject by the app's id.
pub fn find(
    conn: &mut DbConnection,
    vault: &Vault,
    subject_id: &SubjectId,
) -> Result<Option<SubjectHandle>, SubjectError> {
    let Some(row) = subject_store::find_by_index(conn, &subject_index(vault, subject_id))? else {
        return Ok(None);
    };
    let key = vault.data_key_for(conn, &row.id)?;
    Ok(Some(SubjectHandle { pk: row.id, key }))
}

/// The audit pseudonym of a subject; `None` when nobody has this subject id.
pub(crate) fn pseudonym_of(
    conn: &mut DbConnection,
    vault: &Vault,
    subject_id: &SubjectId,
) -> Result<Option<String>, SubjectError> {
    Ok(find(conn, vault, subject_id)?.map(|subject| subject.key.pseudonym().to_owned()))
}

/// Finds a subject, creating it (row, data key) when it is unknown. Call inside a write
/// transaction.
pub(crate) fn find_or_create(
    conn: &mut DbConnection,
    vault: &Vault,
    subject_id: &SubjectId,
) -> Result<SubjectHandle, SubjectError> {
    if let Some(handle) = find(conn, vault, subject_id)? {
        return Ok(handle);
    }
    let index = subject_index(vault, subject_id);
    let mut planned = plan_new_subjects(vault, &[(subject_id, &index)], Utc::now().naive_utc())?;
    insert_planned(conn, &planned)?;
    Ok(planned
        .handles
        .remove(&index)
        .expect("a planned subject has a handle"))
}

/// What the engine needs to know about these subjects to decide a legal basis: their current
/// consent statements, standing objections and restriction. Every subject asked for is in the
/// answer (with an empty state when nothing is recorded).
pub(crate) fn processing_states(
    conn: &mut DbConnection,
    subject_pks: &[&str],
) -> Result<HashMap<String, SubjectState>, SubjectError> {
    use crate::store::consents as consent_store;
    let mut states: HashMap<String, SubjectState> = subject_pks
        .iter()
        .map(|pk| ((*pk).to_owned(), SubjectState::default()))
        .collect();
    fill_states(&mut states, consent_store::standing_for(conn, subject_pks)?);
    Ok(states)
}

/// Adds what stands (statements, objections, restrictions) to the states of the subjects it is
/// about.
fn fill_states(
    states: &mut HashMap<String, SubjectState>,
    standing: crate::store::consents::Standing,
) {
    use crate::policy::PurposeId;
    for row in standing.current {
        if let (Some(state), Some(statement)) =
            (states.get_mut(&row.subject_pk), consent_statement(&row))
        {
            state.consents.push(statement);
        }
    }
    for (pk, purpose, _) in standing.objections {
        if let (Some(state), Ok(purpose)) = (states.get_mut(&pk), PurposeId::parse(&purpose)) {
            state.objections.push(purpose);
        }
    }
    for pk in standing.restricted {
        if let Some(state) = states.get_mut(&pk) {
            state.restricted = true;
        }
    }
}

/// A subject by its id with the engine's view of them, in one statement (and the data key,
/// from the cache or a second one); `None` when nobody has this subject id.
pub(crate) fn find_with_state(
    conn: &mut DbConnection,
    vault: &Vault,
    subject_id: &SubjectId,
) -> Result<Option<(SubjectHandle, SubjectState)>, SubjectError> {
    let Some((subject, standing)) = find_with_standing(conn, vault, subject_id)? else {
        return Ok(None);
    };
    let mut states = HashMap::from([(subject.pk.clone(), SubjectState::default())]);
    fill_states(&mut states, standing);
    let state = states.remove(&subject.pk).unwrap_or_default();
    Ok(Some((subject, state)))
}

/// A subject by its id with their current statements, objections and restriction as stored,
/// in one statement (and the data key, from the cache or a second one); `None` when nobody has
/// this subject id.
pub(crate) fn find_with_standing(
    conn: &mut DbConnection,
    vault: &Vault,
    subject_id: &SubjectId,
) -> Result<Option<(SubjectHandle, crate::store::consents::Standing)>, SubjectError> {
    let index = subject_index(vault, subject_id);
    let found = if subject_id.is_anonymous() {
        // Possibly linked to a person known by another id: found through the link.
        match subject_store::find_by_index(conn, &index)? {
            Some(row) => {
                let standing = crate::store::consents::standing_for(conn, &[row.id.as_str()])?;
                Some((row.id, standing))
            }
            None => None,
        }
    } else {
        crate::store::consents::standing_by_index(conn, &index)?
    };
    let Some((pk, standing)) = found else {
        return Ok(None);
    };
    let key = vault.data_key_for(conn, &pk)?;
    Ok(Some((SubjectHandle { pk, key }, standing)))
}

/// The engine's view of a current consent row (`None` for a purpose id that no longer parses).
pub(crate) fn consent_statement(
    row: &crate::store::consents::CurrentRow,
) -> Option<crate::policy::ConsentStatement> {
    Some(crate::policy::ConsentStatement {
        purpose: crate::policy::PurposeId::parse(&row.purpose).ok()?,
        granted: row.status == "granted",
        sequence: row.sequence,
    })
}

/// [`processing_states`] for one subject.
#[cfg(any(test, feature = "test-support"))]
pub fn processing_state(
    conn: &mut DbConnection,
    subject_pk: &str,
) -> Result<SubjectState, SubjectError> {
    Ok(processing_states(conn, &[subject_pk])?
        .remove(subject_pk)
        .unwrap_or_default())
}

/// Subjects to be created: their rows, their wrapped data keys, and handles to use at once.
#[derive(Debug, Default)]
pub struct PlannedSubjects {
    /// The subject rows.
    pub rows: Vec<SubjectRow>,
    /// Their wrapped data keys.
    pub keys: Vec<crate::store::keys::DataKeyRow>,
    /// The blind indexes of their ids' SHA-256 (for OpenDSR `sha256` identities).
    pub identifiers: Vec<subject_store::IdentifierRow>,
    /// Handles by blind index.
    pub handles: HashMap<String, SubjectHandle>,
}

/// Writes the SHA-256 blind indexes (of the subject id, and of the e-mail address if any) of up
/// to `limit` subjects created before those indexes existed; returns how many were done (0:
/// none left). One write transaction per batch; a subject erased meanwhile is skipped.
pub fn backfill_hashed_indexes(
    conn: &mut DbConnection,
    vault: &Vault,
    limit: i64,
) -> Result<usize, SubjectError> {
    // A person first seen anonymously has the `anonymous_id` marker instead, and never gets
    // the SHA-256 index: without it here, this would find them again at every batch.
    let markers = [
        IdentifierKind::SubjectIdSha256.stored_name(),
        IdentifierKind::AnonymousId.stored_name(),
    ];
    crate::store::write_transaction(conn, |conn| {
        let rows = subject_store::without_identifier(conn, &markers, limit)?;
        let pks: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
        let keys = vault.data_keys_for(conn, &pks)?;
        for row in &rows {
            let Some(key) = keys.get(&row.id) else {
                continue;
            };
            let context = |field: &'static str| FieldContext {
                subject: &row.id,
                record: SUBJECT_RECORD,
                field,
            };
            let subject_id = open_subject_id(key, &row.id, &row.subject_id_ct)?;
            let marker = id_marker(vault, &row.id, &subject_id);
            subject_store::set_identifier(conn, &row.id, &marker.kind, Some(&marker.blind_index))?;
            if let Some(sealed) = read_map(&row.identifiers_ct)?.get("email") {
                let email = String::from_utf8(sealed::open(key, &context("$email"), sealed)?)
                    .map_err(|_| DecryptError)?;
                let blind = vault
                    .blind_index()
                    .index_of_sha256(IdentifierKind::Email, &email);
                subject_store::set_identifier(
                    conn,
                    &row.id,
                    IdentifierKind::EmailSha256.stored_name(),
                    blind.as_deref(),
                )?;
            }
        }
        Ok(rows.len())
    })
}

/// Prepares new subjects for these ids and blind indexes: an internal id, a data key, a sealed
/// copy of the app's id. Nothing is written; [`insert_planned`] writes them.
pub fn plan_new_subjects(
    vault: &Vault,
    subjects: &[(&SubjectId, &str)],
    now: NaiveDateTime,
) -> Result<PlannedSubjects, VaultError> {
    let mut planned = PlannedSubjects::default();
    for (subject_id, index) in subjects {
        let pk = new_subject_pk();
        let (key, key_row) = vault.new_data_key(&pk)?;
        planned.rows.push(SubjectRow {
            id: pk.clone(),
            subject_index: (*index).to_owned(),
            subject_id_ct: seal_subject_id(&key, &pk, subject_id),
            identifiers_ct: "{}".into(),
            traits_ct: "{}".into(),
            created_at: now,
            updated_at: now,
        });
        planned.keys.push(key_row);
        planned.identifiers.push(id_marker(vault, &pk, subject_id));
        planned
            .handles
            .insert((*index).to_owned(), SubjectHandle { pk, key });
    }
    Ok(planned)
}

/// Handles for the subjects a group of writes needs, by blind index: the data keys of those in
/// `existing` (blind index → internal id) and new subjects planned (not written) for the
/// others. Each wanted subject appears once, whatever the repeats in `wanted`.
pub(crate) fn handles_for(
    conn: &mut DbConnection,
    vault: &Vault,
    existing: &HashMap<String, String>,
    wanted: &[(&SubjectId, &str)],
    now: NaiveDateTime,
) -> Result<(HashMap<String, SubjectHandle>, PlannedSubjects), SubjectError> {
    let mut missing: Vec<(&SubjectId, &str)> = Vec::new();
    // The wanted people who exist, as (blind index, internal id).
    let mut found: Vec<(&str, &str)> = Vec::new();
    // A set, not a scan of the lists: a batch names hundreds of people.
    let mut seen: HashSet<&str> = HashSet::new();
    for (subject_id, index) in wanted {
        if !seen.insert(index) {
            continue;
        }
        match existing.get(*index) {
            Some(pk) => found.push((index, pk)),
            None => missing.push((subject_id, index)),
        }
    }
    let planned = plan_new_subjects(vault, &missing, now)?;
    let existing_pks: Vec<&str> = found.iter().map(|(_, pk)| *pk).collect();
    let keys = vault.data_keys_for(conn, &existing_pks)?;
    let mut handles = planned.handles.clone();
    for (index, pk) in found {
        let key = keys.get(pk).cloned().ok_or(VaultError::Erased)?;
        handles.insert(
            index.to_owned(),
            SubjectHandle {
                pk: pk.to_owned(),
                key,
            },
        );
    }
    Ok((handles, planned))
}

/// Writes planned subjects. A unique violation means another request created one of them
/// first; callers retry.
pub fn insert_planned(
    conn: &mut DbConnection,
    planned: &PlannedSubjects,
) -> Result<(), SubjectError> {
    // The last guard of suppression: no subject is created for a suppressed id, whichever path
    // creates it (handlers check earlier, per item, so that one suppressed id does not fail a
    // whole group).
    let indexes: Vec<&str> = planned
        .rows
        .iter()
        .map(|row| row.subject_index.as_str())
        .collect();
    if !indexes.is_empty() && !crate::store::erasure::suppressed_among(conn, &indexes)?.is_empty() {
        return Err(SubjectError::Suppressed);
    }
    subject_store::insert(conn, &planned.rows)?;
    key_store::insert_data_keys(conn, &planned.keys)?;
    subject_store::insert_identifiers(conn, &planned.identifiers)?;
    Ok(())
}

/// A new internal subject id: 22 base64url characters, carrying no meaning. The first is random
/// (segments' differencing sketch buckets people by it), the next eight are the creation time in
/// milliseconds, the last thirteen random (78 bits). The time in the middle puts the people
/// created at about the same moment side by side in every index the id leads, so a batch of new
/// people writes a few index pages per bucket instead of one page per person; it says no more
/// than the row's own `created_at`, and goes with the row at erasure.
fn new_subject_pk() -> String {
    // base64url's characters in byte order, so that later times sort later.
    const ALPHABET: &[u8; 64] = b"-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz";
    let random = crate::crypto::random_array::<14>();
    let millis = u64::try_from(Utc::now().timestamp_millis()).unwrap_or(0);
    let mut pk = String::with_capacity(22);
    pk.push(char::from(ALPHABET[usize::from(random[0] & 63)]));
    for shift in (0..8).rev() {
        pk.push(char::from(
            ALPHABET[((millis >> (shift * 6)) & 63) as usize],
        ));
    }
    for byte in &random[1..] {
        pk.push(char::from(ALPHABET[usize::from(byte & 63)]));
    }
    pk
}

/// The result of an upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpsertOutcome {
    /// Whether the subject was created by this request.
    pub created: bool,
}

/// Creates or updates a subject's identifiers and traits, in one transaction; if another
/// request created the same subject at the same moment, tries again (then it is an update).
pub(crate) fn upsert(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    subject_id: &SubjectId,
    changes: &SubjectChanges,
    actor: &Actor,
) -> Result<UpsertOutcome, SubjectError> {
    retry_on_conflict(|| upsert_once(conn, vault, policy, subject_id, changes, actor))
}

/// The audit action of setting a subject's identifiers and traits.
pub const ACTION_WRITE: &str = "subjects.write";
/// The audit action of finding subjects by an identifier.
pub const ACTION_LOOKUP: &str = "subjects.lookup";
/// The pseudo-category of identifiers (e-mail, phone) in audit entries.
pub const IDENTIFIERS_CATEGORY: &str = "identifiers";

/// How often work that lost a race with a concurrent writer is tried again.
const MAX_CONFLICT_ATTEMPTS: usize = 5;

/// Runs `attempt` again while it fails because a concurrent writer got in the way (it inserted
/// the same key first, or erased the subject: [`crate::store::is_write_conflict`]; the attempt's
/// own transaction rolled back), up to
/// [`MAX_CONFLICT_ATTEMPTS`] times; then reports contention.
pub(crate) fn retry_on_conflict<T>(
    mut attempt: impl FnMut() -> Result<T, SubjectError>,
) -> Result<T, SubjectError> {
    for _ in 0..MAX_CONFLICT_ATTEMPTS {
        match attempt() {
            Err(error) if error.is_write_conflict() => {}
            other => return other,
        }
    }
    Err(SubjectError::Contended)
}

fn upsert_once(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    subject_id: &SubjectId,
    changes: &SubjectChanges,
    actor: &Actor,
) -> Result<UpsertOutcome, SubjectError> {
    let index = subject_index(vault, subject_id);
    let now = Utc::now().naive_utc();
    crate::store::write_transaction(conn, |conn| {
        let (row, key, created) = match subject_store::find_by_index(conn, &index)? {
            Some(row) => {
                let key = vault.data_key_for(conn, &row.id)?;
                (row, key, false)
            }
            None => {
                let mut planned = plan_new_subjects(vault, &[(subject_id, &index)], now)?;
                insert_planned(conn, &planned)?;
                let row = planned.rows.remove(0);
                let handle = planned
                    .handles
                    .remove(&index)
                    .expect("a planned subject has a handle");
                (row, handle.key, true)
            }
        };
        let mut identifiers = read_map(&row.identifiers_ct)?;
        let mut traits = read_map(&row.traits_ct)?;
        let mut set_identifier = |conn: &mut DbConnection,
                                  kind: IdentifierKind,
                                  name: &str,
                                  value: Option<&str>|
         -> Result<(), SubjectError> {
            let field = format!("${name}");
            let context = FieldContext {
                subject: &row.id,
                record: SUBJECT_RECORD,
                field: &field,
            };
            match value {
                Some(value) => {
                    identifiers.insert(name.to_owned(), seal(&key, &context, value.as_bytes()));
                }
                None => {
                    identifiers.remove(name);
                }
            }
            let blind = value.map(|value| vault.blind_index().index(kind, value));
            subject_store::set_identifier(conn, &row.id, name, blind.as_deref())?;
            // The index of its SHA-256 too, for controllers that send only hashes (OpenDSR).
            if let Some(hashed) = kind.hashed() {
                let blind =
                    value.and_then(|value| vault.blind_index().index_of_sha256(kind, value));
                subject_store::set_identifier(
                    conn,
                    &row.id,
                    hashed.stored_name(),
                    blind.as_deref(),
                )?;
            }
            Ok(())
        };
        if let Some(email) = &changes.email {
            set_identifier(
                conn,
                IdentifierKind::Email,
                "email",
                email.as_ref().map(Email::as_str),
            )?;
        }
        if let Some(phone) = &changes.phone {
            set_identifier(
                conn,
                IdentifierKind::Phone,
                "phone",
                phone.as_ref().map(Phone::as_str),
            )?;
        }
        for (name, value) in &changes.traits {
            let segmentable = policy.field(name.as_str()).is_some_and(|f| f.segmentable);
            traits.remove(name.as_str());
            let filterable = match value {
                Some(value) if segmentable => Some(value.to_filterable()),
                Some(value) => {
                    let context = FieldContext {
                        subject: &row.id,
                        record: SUBJECT_RECORD,
                        field: name.as_str(),
                    };
                    traits.insert(
                        name.as_str().to_owned(),
                        seal(&key, &context, &value.to_plaintext()),
                    );
                    None
                }
                None => None,
            };
            subject_store::set_trait(conn, &row.id, name.as_str(), filterable.as_deref())?;
        }
        subject_store::update_encrypted(
            conn,
            &row.id,
            &write_map(&identifiers),
            &write_map(&traits),
            now,
        )?;
        let mut entry = Entry::new(actor, ACTION_WRITE).subject(&key).records(1);
        if changes.email.is_some() || changes.phone.is_some() {
            entry.add_category(IDENTIFIERS_CATEGORY);
        }
        for (name, _) in &changes.traits {
            if let Some(field) = policy.field(name.as_str()) {
                entry.add_category(field.category.as_str());
            }
        }
        crate::audit::append(conn, policy.sha256(), vec![entry])?;
        Ok(UpsertOutcome { created })
    })
}

/// The app's subject ids of every subject with this e-mail address, sorted, each with its
/// audit pseudonym.
pub(crate) fn find_by_email(
    conn: &mut DbConnection,
    vault: &Vault,
    email: &Email,
) -> Result<Vec<(SubjectId, String)>, SubjectError> {
    let blind = vault
        .blind_index()
        .index(IdentifierKind::Email, email.as_str());
    find_by_identifier(conn, vault, "email", &blind)
}

/// The app's subject ids (sorted, each with its audit pseudonym) of every subject with an
/// identifier of `kind` (a `subject_identifiers.kind`) whose blind index is `blind`.
pub(crate) fn find_by_identifier(
    conn: &mut DbConnection,
    vault: &Vault,
    kind: &str,
    blind: &str,
) -> Result<Vec<(SubjectId, String)>, SubjectError> {
    let pks = subject_store::ids_by_identifier(conn, kind, blind)?;
    let mut found = Vec::with_capacity(pks.len());
    for pk in pks {
        found.push(reveal_subject_id(conn, vault, &pk)?);
    }
    found.sort_by(|(a, _), (b, _)| {
        (a.is_anonymous(), a.as_str()).cmp(&(b.is_anonymous(), b.as_str()))
    });
    Ok(found)
}

/// Decrypts the app's subject id of the subject with this internal id; also gives its audit
/// pseudonym.
pub(crate) fn reveal_subject_id(
    conn: &mut DbConnection,
    vault: &Vault,
    subject_pk: &str,
) -> Result<(SubjectId, String), SubjectError> {
    let row = subject_store::find_by_pk(conn, subject_pk)?
        .ok_or(VaultError::Corrupt("a blind index points to no subject"))?;
    let key = vault.data_key_for(conn, subject_pk)?;
    let subject_id = open_subject_id(&key, subject_pk, &row.subject_id_ct)?;
    Ok((subject_id, key.pseudonym().to_owned()))
}
