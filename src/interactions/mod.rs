//! Interactions: what happened between a subject and the business, with the purposes it was
//! collected for and its data encrypted field by field.
//!
//! Collection (rule 5): only purposes with a legal basis at collection time are kept; the rest
//! are reported back; with none left, nothing is stored. Reads apply rules 1–4: the role must
//! hold the purpose, the person must have a legal basis for it, only interactions collected for
//! the purpose or an ancestor are returned, and only fields the purpose may use are decrypted.

mod cursor;
mod queue;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use serde_json::Value;

pub use cursor::Cursor;
pub use queue::IngestQueue;
pub(crate) use queue::{store_together, Together};

use crate::audit::{self, Actor, Entry};
use crate::auth::{KeyId, Principal};
use crate::crypto::{DecryptError, FieldContext, IdentifierKind};
use crate::policy::{Action, DecisionRequest, Denial, FieldName, Policy, PurposeId, RoleId};
use crate::rejection::Rejection;
use crate::store::interactions::{
    self as interaction_store, InteractionPurposeRow, InteractionRow, PagePosition,
};
use crate::store::subjects as subject_store;
use crate::store::DbConnection;
use crate::store::{insert_transaction, write_transaction};
use crate::subjects::sealed::{open, read_map, seal, write_map};
use crate::subjects::{
    self, declared_field, FieldValue, Owners, PlannedSubjects, SubjectError, SubjectHandle,
    SubjectId,
};
use crate::vault::Vault;

/// The most interactions in one batch.
pub const MAX_BATCH: usize = 1_000;
/// The most purposes one interaction may carry.
pub const MAX_PURPOSES: usize = 16;
/// The most data fields one interaction may carry.
pub const MAX_DATA_FIELDS: usize = 64;
/// The longest client id, in bytes.
pub const MAX_CLIENT_ID_LEN: usize = 128;
/// The default and largest page sizes for reads.
pub const DEFAULT_PAGE: i64 = 50;
/// The largest page a read may ask for.
pub const MAX_PAGE: i64 = 500;
pub(crate) const CLIENT_ID_FIELD: &str = "$client_id";

/// An interaction as an app sends it, before validation.
#[derive(Debug, Clone)]
pub struct RawInteraction {
    /// The app's id for the interaction (idempotency key per subject).
    pub id: String,
    /// The app's id for the person.
    pub subject_id: String,
    /// Whether `subject_id` is an anonymous id (a tracking SDK's `anonymousId`) rather than
    /// the app's user id.
    pub anonymous: bool,
    /// What kind of interaction.
    pub interaction_type: String,
    /// Through which channel.
    pub channel: String,
    /// When it happened (RFC 3339).
    pub occurred_at: String,
    /// The purposes it is collected for.
    pub purposes: Vec<String>,
    /// Field name → value.
    pub data: serde_json::Map<String, Value>,
}

/// A validated interaction, ready for the legal-basis check and storage.
#[derive(Debug)]
pub struct Draft {
    actor: Arc<Actor>,
    recorded_by: KeyId,
    client_id: String,
    subject_id: SubjectId,
    interaction_type: String,
    channel: String,
    occurred_at: NaiveDateTime,
    purposes: Vec<PurposeId>,
    data: Vec<(FieldName, FieldValue)>,
}

pub(crate) fn token(what: &str, raw: &str) -> Result<String, Rejection> {
    let mut chars = raw.chars();
    let valid = raw.len() <= 64
        && matches!(chars.next(), Some('a'..='z' | '0'..='9'))
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_' | '.' | '-'));
    if valid {
        Ok(raw.to_owned())
    } else {
        Err(Rejection::invalid(
            "invalid_token",
            format!("`{what}` must be 1 to 64 lowercase letters, digits, `_`, `.` or `-`"),
        ))
    }
}

impl Draft {
    /// Validates an interaction for a caller: declared fields and purposes only, purposes the
    /// caller's role may collect for, bounded values, a sane time.
    pub fn parse(
        policy: &Policy,
        caller: &Principal,
        actor: &Arc<Actor>,
        raw: RawInteraction,
    ) -> Result<Draft, Rejection> {
        let role = &caller.role;
        if raw.id.is_empty()
            || raw.id.len() > MAX_CLIENT_ID_LEN
            || raw.id.chars().any(char::is_control)
        {
            return Err(Rejection::invalid(
                "invalid_id",
                format!("`id` must be 1 to {MAX_CLIENT_ID_LEN} bytes without control characters"),
            ));
        }
        let subject_id = if raw.anonymous {
            SubjectId::anonymous(&raw.subject_id)
        } else {
            SubjectId::parse(&raw.subject_id)
        }
        .map_err(|message| Rejection::invalid("invalid_subject_id", message))?;
        let interaction_type = token("type", &raw.interaction_type)?;
        let channel = token("channel", &raw.channel)?;
        let occurred_at = DateTime::parse_from_rfc3339(&raw.occurred_at)
            .map_err(|_| {
                Rejection::invalid(
                    "invalid_timestamp",
                    "`occurred_at` must be an RFC 3339 timestamp such as 2026-11-01T10:00:00Z",
                )
            })?
            .with_timezone(&Utc);
        if occurred_at > Utc::now() + Duration::days(1) || occurred_at.timestamp() < 0 {
            return Err(Rejection::invalid(
                "invalid_timestamp",
                "`occurred_at` must be after 1970 and not more than a day in the future",
            ));
        }
        if raw.purposes.is_empty() || raw.purposes.len() > MAX_PURPOSES {
            return Err(Rejection::invalid(
                "invalid_purposes",
                format!("`purposes` must list 1 to {MAX_PURPOSES} purposes"),
            ));
        }
        let mut purposes = Vec::with_capacity(raw.purposes.len());
        for name in &raw.purposes {
            let purpose = parse_purpose(policy, name)?;
            policy
                .authorize_purpose(role.as_str(), Action::InteractionsWrite, &purpose)
                .map_err(|denial| {
                    Rejection::forbidden(
                        denial.code(),
                        format!("role `{role}` may not collect data for purpose `{purpose}`"),
                    )
                })?;
            if !purposes.contains(&purpose) {
                purposes.push(purpose);
            }
        }
        if raw.data.len() > MAX_DATA_FIELDS {
            return Err(Rejection::invalid(
                "too_many_fields",
                format!("at most {MAX_DATA_FIELDS} fields in `data`"),
            ));
        }
        let mut data = Vec::with_capacity(raw.data.len());
        for (name, value) in &raw.data {
            let field = declared_field(policy, name)?;
            let value = FieldValue::parse(name, value)
                .map_err(|message| Rejection::invalid("invalid_field_value", message))?;
            data.push((field, value));
        }
        Ok(Draft {
            actor: actor.clone(),
            recorded_by: caller.key_id.clone(),
            client_id: raw.id,
            subject_id,
            interaction_type,
            channel,
            occurred_at: occurred_at.naive_utc(),
            purposes,
            data,
        })
    }

    /// The person it is about.
    pub(crate) fn subject_id(&self) -> &SubjectId {
        &self.subject_id
    }
}

/// A purpose named by a caller: well-formed and declared, or a 422 naming it.
pub(crate) fn parse_purpose(policy: &Policy, name: &str) -> Result<PurposeId, Rejection> {
    PurposeId::parse(name)
        .ok()
        .filter(|purpose| policy.purpose(purpose.as_str()).is_some())
        .ok_or_else(|| {
            Rejection::invalid(
                "unknown_purpose",
                format!("unknown purpose `{}`", name.escape_debug()),
            )
        })
}

/// A purpose that was not accepted, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeRejection {
    /// The purpose.
    pub purpose: PurposeId,
    /// Why it has no legal basis.
    pub reason: Denial,
}

/// What happened to one interaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored now, or already stored earlier (`duplicate`).
    Stored {
        /// The app's id.
        client_id: String,
        /// The purposes it is stored with.
        accepted: Vec<PurposeId>,
        /// The purposes without a legal basis (empty for duplicates).
        rejected: Vec<PurposeRejection>,
        /// Whether an interaction with this id had already been stored for the subject.
        duplicate: bool,
    },
    /// Not stored: no purpose had a legal basis.
    NoLegalBasis {
        /// Every purpose, with its reason.
        rejected: Vec<PurposeRejection>,
    },
    /// Not stored: the subject id was erased with suppression.
    Suppressed,
}

/// Interactions ready to be written: every decision made, every value encrypted.
#[derive(Debug)]
pub struct PreparedIngest {
    /// The blind indexes of the people written about: what the commit locks.
    people: Vec<String>,
    outcomes: Vec<Outcome>,
    subjects: PlannedSubjects,
    rows: Vec<InteractionRow>,
    purposes: Vec<InteractionPurposeRow>,
    audit: Vec<Entry>,
    policy_hash: String,
}

/// The audit entries of an ingest: per request, one entry for what was stored (naming every
/// person written about) and one for the purposes refused (rule 5), in request order.
#[derive(Default)]
struct IngestAudit {
    entries: Vec<Entry>,
    positions: HashMap<(usize, bool), usize>,
}

impl IngestAudit {
    fn entry(
        &mut self,
        draft: &Draft,
        subject: Option<&SubjectHandle>,
        denied: bool,
    ) -> &mut Entry {
        // Drafts of one request share one `Actor`; a coalesced group holds several requests.
        let request = Arc::as_ptr(&draft.actor) as usize;
        let position = *self.positions.entry((request, denied)).or_insert_with(|| {
            self.entries.push(Entry::new(&draft.actor, ACTION_WRITE));
            self.entries.len() - 1
        });
        let entry = &mut self.entries[position];
        if let Some(subject) = subject {
            entry.add_subject(&subject.key);
        }
        entry
    }

    fn stored(
        &mut self,
        policy: &Policy,
        draft: &Draft,
        subject: &SubjectHandle,
        accepted: &[PurposeId],
    ) {
        let entry = self.entry(draft, Some(subject), false);
        entry.add_record();
        for purpose in accepted {
            entry.add_purpose(policy, purpose);
        }
        for (field, _) in &draft.data {
            if let Some(declared) = policy.field(field.as_str()) {
                entry.add_category(declared.category.as_str());
            }
        }
    }

    fn refused(
        &mut self,
        policy: &Policy,
        draft: &Draft,
        subject: Option<&SubjectHandle>,
        rejected: &[PurposeRejection],
    ) {
        if rejected.is_empty() {
            return;
        }
        let entry = self.entry(draft, subject, true);
        entry.add_record();
        for rejection in rejected {
            entry.add_purpose(policy, &rejection.purpose);
            entry.add_reason(rejection.reason.code());
        }
    }
}

/// The audit action of storing interactions.
pub const ACTION_WRITE: &str = "interactions.write";
/// The audit action of reading interactions.
pub const ACTION_READ: &str = "interactions.read";

/// Another request wrote one of the same subjects or interactions between preparation and
/// commit; prepare again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestConflict;

/// How often an ingest is prepared again after a conflict before it gives up.
pub const MAX_INGEST_ATTEMPTS: usize = 5;

/// What the database holds about the people and interactions of a group of drafts.
struct Found {
    /// Each draft's subject blind index, in draft order.
    subject_indexes: Vec<String>,
    /// Each draft's client-id blind index (scoped to its subject), in draft order.
    client_indexes: Vec<String>,
    /// The distinct subject blind indexes, sorted.
    distinct: Vec<String>,
    /// Existing subjects: blind index → internal id.
    existing: HashMap<String, String>,
    /// Interactions stored before: (subject, client index) → their purposes.
    stored: HashMap<(String, String), Vec<PurposeId>>,
    /// Blind indexes erased with suppression.
    suppressed: std::collections::HashSet<String>,
    /// What stands for each existing subject (statements, objections, restriction).
    states: HashMap<String, crate::policy::SubjectState>,
}

/// Reads what the drafts' decisions depend on, in a few set-based statements.
fn find(conn: &mut DbConnection, vault: &Vault, drafts: &[Draft]) -> Result<Found, SubjectError> {
    let subject_indexes: Vec<String> = drafts
        .iter()
        .map(|draft| subjects::subject_index(vault, &draft.subject_id))
        .collect();
    let client_indexes: Vec<String> = drafts
        .iter()
        .zip(&subject_indexes)
        .map(|(draft, subject_index)| {
            vault.blind_index().index_parts(
                IdentifierKind::ClientId,
                &[subject_index.as_bytes(), draft.client_id.as_bytes()],
            )
        })
        .collect();
    let mut distinct: Vec<String> = subject_indexes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let distinct_refs: Vec<&str> = distinct.iter().map(String::as_str).collect();
    let mut existing: HashMap<String, String> = HashMap::new();
    let mut linked: Vec<String> = Vec::new();
    for (index, pk, through_alias) in subject_store::ids_by_index(conn, &distinct_refs)? {
        if through_alias {
            linked.push(pk.clone());
        }
        existing.insert(index, pk);
    }
    // An id reached through a linked anonymous id may have interactions recorded before the
    // link, stored under the person merged in then (a member keeps its rows): a retry of one
    // of them is looked for under each member too. (A client index is keyed by the id it was
    // sent with, so nothing recorded under a member can match an id that is not an alias.)
    let mut owners_of: HashMap<String, Vec<String>> = HashMap::new();
    if !linked.is_empty() {
        let persons: Vec<&str> = linked.iter().map(String::as_str).collect();
        for (person, member) in crate::store::links::members_of_all(conn, &persons)? {
            owners_of.entry(person).or_default().push(member);
        }
    }
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(subject_indexes.len());
    let mut member_of: HashMap<&str, &str> = HashMap::new();
    for (subject_index, client_index) in subject_indexes.iter().zip(&client_indexes) {
        let Some(pk) = existing.get(subject_index) else {
            continue;
        };
        pairs.push((pk.as_str(), client_index.as_str()));
        for member in owners_of.get(pk).into_iter().flatten() {
            pairs.push((member.as_str(), client_index.as_str()));
            member_of.insert(member.as_str(), pk.as_str());
        }
    }
    let mut stored: HashMap<(String, String), Vec<PurposeId>> = HashMap::new();
    for found in interaction_store::existing_by_client_index(conn, &pairs)? {
        // Found under a member: it is the person's.
        let owner = member_of
            .get(found.subject_pk.as_str())
            .map_or(found.subject_pk, |person| (*person).to_owned());
        stored.insert(
            (owner, found.client_index),
            parse_stored_purposes(&found.purposes),
        );
    }
    // Ids erased with suppression (they have no subject row) are refused one by one, here in
    // the group, rather than by a look-up of their own before each request is queued.
    let unknown: Vec<&str> = distinct_refs
        .iter()
        .copied()
        .filter(|index| !existing.contains_key(*index))
        .collect();
    let suppressed = if unknown.is_empty() {
        std::collections::HashSet::new()
    } else {
        crate::store::erasure::suppressed_among(conn, &unknown)?
            .into_iter()
            .collect()
    };
    let existing_pks: Vec<&str> = existing.values().map(String::as_str).collect();
    let states = subjects::processing_states(conn, &existing_pks)?;
    Ok(Found {
        subject_indexes,
        client_indexes,
        distinct,
        existing,
        stored,
        suppressed,
        states,
    })
}

/// A draft to store: its position, the purposes accepted and those refused (rule 5).
type ToStore = (usize, Vec<PurposeId>, Vec<PurposeRejection>);

/// Decides every draft before anything is planned: suppressed, a duplicate (of an earlier
/// request or of an earlier draft of the group), refused for want of a legal basis, or to store.
fn decide(
    policy: &Policy,
    drafts: &[Draft],
    found: &Found,
) -> (Vec<Option<Outcome>>, Vec<ToStore>) {
    let empty_state = crate::policy::SubjectState::default();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; drafts.len()];
    let mut to_store: Vec<ToStore> = Vec::new();
    let mut first_in_batch: HashMap<(&str, &str), usize> = HashMap::new();
    for (index, draft) in drafts.iter().enumerate() {
        let subject_index = found.subject_indexes[index].as_str();
        let client_index = found.client_indexes[index].as_str();
        if found.suppressed.contains(subject_index) {
            outcomes[index] = Some(Outcome::Suppressed);
            continue;
        }
        if let Some(pk) = found.existing.get(subject_index) {
            if let Some(purposes) = found.stored.get(&(pk.clone(), client_index.to_owned())) {
                outcomes[index] = Some(duplicate_of(draft, purposes.clone()));
                continue;
            }
        }
        if let Some(&first) = first_in_batch.get(&(subject_index, client_index)) {
            let repeated = match &outcomes[first] {
                Some(Outcome::NoLegalBasis { rejected }) => Outcome::NoLegalBasis {
                    rejected: rejected.clone(),
                },
                _ => {
                    let accepted = to_store
                        .iter()
                        .find(|(i, _, _)| *i == first)
                        .map(|(_, accepted, _)| accepted.clone())
                        .unwrap_or_default();
                    duplicate_of(draft, accepted)
                }
            };
            outcomes[index] = Some(repeated);
            continue;
        }
        first_in_batch.insert((subject_index, client_index), index);
        let state = found
            .existing
            .get(subject_index)
            .and_then(|pk| found.states.get(pk))
            .unwrap_or(&empty_state);
        let (accepted, rejected) = split_by_legal_basis(policy, &draft.purposes, state);
        if accepted.is_empty() {
            outcomes[index] = Some(Outcome::NoLegalBasis { rejected });
        } else {
            to_store.push((index, accepted, rejected));
        }
    }
    (outcomes, to_store)
}

/// Phase 1, reading only (it runs beside other writers): finds subjects and earlier copies of
/// these interactions, decides the legal basis of every purpose (rule 5), plans the subjects to
/// create (only for interactions that will be stored) and encrypts everything.
pub(crate) fn prepare_ingest(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    drafts: &[Draft],
) -> Result<PreparedIngest, SubjectError> {
    let now = Utc::now().naive_utc();
    let found = find(conn, vault, drafts)?;
    let (mut outcomes, to_store) = decide(policy, drafts, &found);
    let Found {
        subject_indexes,
        client_indexes,
        distinct,
        existing,
        ..
    } = found;

    // Plan the subjects that are needed and do not exist yet; load the others' keys (also of
    // existing subjects whose interactions were refused, for their audit pseudonym).
    let refused_existing = outcomes.iter().enumerate().filter_map(|(index, outcome)| {
        let refused = matches!(outcome, Some(Outcome::NoLegalBasis { .. }));
        let exists = existing.contains_key(&subject_indexes[index]);
        (refused && exists).then_some(index)
    });
    let wanted: Vec<(&SubjectId, &str)> = to_store
        .iter()
        .map(|(index, _, _)| *index)
        .chain(refused_existing)
        .map(|index| (&drafts[index].subject_id, subject_indexes[index].as_str()))
        .collect();
    let (handles, planned) = subjects::handles_for(conn, vault, &existing, &wanted, now)?;

    let mut rows = Vec::with_capacity(to_store.len());
    let mut purpose_rows = Vec::with_capacity(to_store.len() * 2);
    let mut audit = IngestAudit::default();
    for (index, outcome) in outcomes.iter().enumerate() {
        if let Some(Outcome::NoLegalBasis { rejected }) = outcome {
            let draft = &drafts[index];
            audit.refused(
                policy,
                draft,
                handles.get(&subject_indexes[index]),
                rejected,
            );
        }
    }
    for (index, accepted, rejected) in to_store {
        let draft = &drafts[index];
        let handle =
            handles
                .get(&subject_indexes[index])
                .ok_or(crate::vault::VaultError::Corrupt(
                    "a subject without a data key",
                ))?;
        let (row, purposes) = sealed(draft, handle, &client_indexes[index], &accepted, now);
        purpose_rows.extend(purposes);
        rows.push(row);
        audit.stored(policy, draft, handle, &accepted);
        audit.refused(policy, draft, Some(handle), &rejected);
        outcomes[index] = Some(Outcome::Stored {
            client_id: draft.client_id.clone(),
            accepted,
            rejected,
            duplicate: false,
        });
    }
    Ok(PreparedIngest {
        people: distinct,
        outcomes: outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every draft has an outcome"))
            .collect(),
        subjects: planned,
        rows,
        purposes: purpose_rows,
        audit: audit.entries,
        policy_hash: policy.sha256().to_owned(),
    })
}

/// One interaction as stored: a new id, its values and the app's id sealed under the person's
/// key, and a purpose row per accepted purpose.
fn sealed(
    draft: &Draft,
    handle: &SubjectHandle,
    client_index: &str,
    accepted: &[PurposeId],
    now: chrono::NaiveDateTime,
) -> (InteractionRow, Vec<InteractionPurposeRow>) {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let mut data = BTreeMap::new();
    for (field, value) in &draft.data {
        let context = FieldContext {
            subject: &handle.pk,
            record: &id,
            field: field.as_str(),
        };
        data.insert(
            field.as_str().to_owned(),
            seal(&handle.key, &context, &value.to_plaintext()),
        );
    }
    let client_context = FieldContext {
        subject: &handle.pk,
        record: &id,
        field: CLIENT_ID_FIELD,
    };
    let purposes = accepted
        .iter()
        .map(|purpose| InteractionPurposeRow {
            interaction_pk: id.clone(),
            subject_pk: handle.pk.clone(),
            purpose: purpose.to_string(),
            occurred_at: draft.occurred_at,
            interaction_type: draft.interaction_type.clone(),
            channel: draft.channel.clone(),
        })
        .collect();
    let row = InteractionRow {
        client_id_ct: handle
            .key
            .encrypt(&client_context, draft.client_id.as_bytes()),
        subject_pk: handle.pk.clone(),
        client_index: client_index.to_owned(),
        interaction_type: draft.interaction_type.clone(),
        channel: draft.channel.clone(),
        occurred_at: draft.occurred_at,
        recorded_at: now,
        purposes: serde_json::to_string(
            &accepted.iter().map(PurposeId::as_str).collect::<Vec<_>>(),
        )
        .expect("strings encode"),
        data_ct: write_map(&data),
        recorded_by: draft.recorded_by.to_string(),
        id,
    };
    (row, purposes)
}

/// Phase 2: writes a prepared ingest in one transaction, holding the write lock only for the
/// inserts. A write conflict (someone else stored one of these subjects or interactions, or
/// erased one of the subjects, since phase 1) rolls everything back and reports a conflict.
pub(crate) fn commit_ingest(
    conn: &mut DbConnection,
    prepared: PreparedIngest,
) -> Result<Result<Vec<Outcome>, IngestConflict>, SubjectError> {
    let PreparedIngest {
        people,
        outcomes,
        subjects: planned,
        rows,
        purposes,
        audit: entries,
        policy_hash,
    } = prepared;
    let written = insert_transaction(conn, |conn| -> Result<(), SubjectError> {
        // Writers of the same people wait for each other here, in one global order, rather
        // than collide on their rows (or deadlock): a loser's retry then finds what the winner
        // stored.
        crate::store::lock_in_order(conn, "custodia/person/", &people)?;
        subjects::insert_planned(conn, &planned)?;
        interaction_store::insert(conn, &rows, &purposes)?;
        Ok(audit::append(conn, &policy_hash, entries)?)
    });
    match written {
        Ok(()) => Ok(Ok(outcomes)),
        Err(error) if error.is_write_conflict() => Ok(Err(IngestConflict)),
        Err(error) => Err(error),
    }
}

/// Prepares and commits in one transaction that first takes the locks of the people written
/// about: whoever wrote them before has committed, so what is prepared is what the database
/// holds, and no other writer of these people can get in between. What a group that lost a race
/// does next (and what callers without an async runtime do).
pub(crate) fn ingest_in_turn(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    drafts: &[Draft],
) -> Result<Result<Vec<Outcome>, IngestConflict>, SubjectError> {
    let people: Vec<String> = drafts
        .iter()
        .map(|draft| subjects::subject_index(vault, &draft.subject_id))
        .collect();
    let written = write_transaction(conn, |conn| -> Result<Vec<Outcome>, SubjectError> {
        crate::store::lock_in_order(conn, "custodia/person/", &people)?;
        let prepared = prepare_ingest(conn, vault, policy, drafts)?;
        crate::store::plan_inserts_cached(conn)?;
        subjects::insert_planned(conn, &prepared.subjects)?;
        interaction_store::insert(conn, &prepared.rows, &prepared.purposes)?;
        audit::append(conn, &prepared.policy_hash, prepared.audit)?;
        Ok(prepared.outcomes)
    });
    match written {
        Ok(outcomes) => Ok(Ok(outcomes)),
        // Only a writer that does not take these locks (an erasure, a profile update) can
        // still get in the way.
        Err(error) if error.is_write_conflict() => Ok(Err(IngestConflict)),
        Err(error) => Err(error),
    }
}

/// Prepares and commits on one connection: for callers without an async runtime (tests,
/// tools) and the SQLite writer. Every attempt runs in turn (see [`ingest_in_turn`]).
pub(crate) fn ingest(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    drafts: &[Draft],
) -> Result<Vec<Outcome>, SubjectError> {
    for _ in 0..MAX_INGEST_ATTEMPTS {
        if let Ok(outcomes) = ingest_in_turn(conn, vault, policy, drafts)? {
            return Ok(outcomes);
        }
    }
    Err(SubjectError::Contended)
}

fn duplicate_of(draft: &Draft, accepted: Vec<PurposeId>) -> Outcome {
    Outcome::Stored {
        client_id: draft.client_id.clone(),
        accepted,
        rejected: Vec::new(),
        duplicate: true,
    }
}

fn parse_stored_purposes(json: &str) -> Vec<PurposeId> {
    serde_json::from_str::<Vec<String>>(json)
        .unwrap_or_default()
        .iter()
        .filter_map(|name| PurposeId::parse(name).ok())
        .collect()
}

/// Rule 5: splits purposes into those with a legal basis now and those without (with why).
fn split_by_legal_basis(
    policy: &Policy,
    purposes: &[PurposeId],
    state: &crate::policy::SubjectState,
) -> (Vec<PurposeId>, Vec<PurposeRejection>) {
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for purpose in purposes {
        let Some(declared) = policy.purpose(purpose.as_str()) else {
            continue;
        };
        match policy.legal_basis(declared, state) {
            Ok(()) => accepted.push(purpose.clone()),
            Err(reason) => rejected.push(PurposeRejection {
                purpose: purpose.clone(),
                reason,
            }),
        }
    }
    (accepted, rejected)
}

/// One interaction as read for a purpose: only fields the purpose may use are decrypted.
#[derive(Debug, Clone)]
pub struct ReadInteraction {
    /// The app's id.
    pub client_id: String,
    /// The interaction type.
    pub interaction_type: String,
    /// The channel.
    pub channel: String,
    /// When it happened.
    pub occurred_at: NaiveDateTime,
    /// The purposes it was collected for.
    pub purposes: Vec<String>,
    /// Decrypted fields the purpose may use.
    pub data: BTreeMap<String, FieldValue>,
    /// Fields present but withheld from this purpose (names only).
    pub withheld: Vec<String>,
}

/// A page of interactions.
#[derive(Debug, Clone)]
pub struct Page {
    /// The interactions, newest first.
    pub interactions: Vec<ReadInteraction>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
    /// The subject's audit pseudonym.
    pub pseudonym: String,
}

/// Errors of a read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The caller may not have this.
    #[error("{0:?}")]
    Rejected(Rejection),
    /// The policy refused this subject's data (rule 2): the refusal, and the subject's audit
    /// pseudonym for the entry that records it.
    #[error("{rejection:?}")]
    Refused {
        /// The refusal.
        rejection: Rejection,
        /// The subject's audit pseudonym.
        pseudonym: String,
    },
    /// Not the caller's fault.
    #[error(transparent)]
    Failed(#[from] SubjectError),
}

impl From<Rejection> for ReadError {
    fn from(rejection: Rejection) -> Self {
        ReadError::Rejected(rejection)
    }
}

impl From<crate::store::StoreError> for ReadError {
    fn from(error: crate::store::StoreError) -> Self {
        ReadError::Failed(error.into())
    }
}

/// Rules 1–4 for one person's interactions read for `purpose`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn read_for_purpose(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    role: &RoleId,
    subject_id: &SubjectId,
    purpose: &PurposeId,
    limit: i64,
    cursor: Option<&Cursor>,
) -> Result<Page, ReadError> {
    let declared = policy.purpose(purpose.as_str()).ok_or_else(|| {
        Rejection::invalid("unknown_purpose", format!("unknown purpose `{purpose}`"))
    })?;
    let mut request = DecisionRequest {
        role: role.as_str(),
        action: Action::InteractionsRead,
        purpose: Some(purpose),
        categories: &[],
        subject: None,
    };
    // Rule 1 before anything about the person is looked at.
    policy.decide(&request).map_err(|denial| {
        Rejection::forbidden(
            denial.code(),
            format!("role `{role}` may not read data for purpose `{purpose}`"),
        )
    })?;
    let (subject, state) =
        subjects::find_with_state(conn, vault, subject_id)?.ok_or_else(subject_not_found)?;
    request.subject = Some(&state);
    policy
        .decide(&request)
        .map_err(|denial| ReadError::Refused {
            rejection: Rejection::forbidden(
                denial.code(),
                format!("no legal basis to use this person's data for `{purpose}`"),
            ),
            pseudonym: subject.key.pseudonym().to_owned(),
        })?;
    // The in-memory decision above gives the reason; the same rules run again in the query.
    let rule = policy.population_rule(declared);
    let limit = limit.clamp(1, MAX_PAGE);
    let after = cursor.map(Cursor::position);
    // The person's interactions and those of the people merged into them (each sealed under
    // its own key).
    let owners = subjects::Owners::load(conn, vault, subject)?;
    let rows =
        interaction_store::page_for_subject(conn, &owners.pks(), &rule, after.as_ref(), limit + 1)?;
    let page = crate::page::Page::from_rows(rows, limit, |row| {
        Cursor::position_text(&PagePosition {
            occurred_at: row.occurred_at,
            id: row.id.clone(),
        })
    });
    let mut interactions = Vec::with_capacity(page.items.len());
    for row in &page.items {
        interactions.push(open_row(policy, declared, &owners, row)?);
    }
    Ok(Page {
        interactions,
        next_cursor: page.next_cursor,
        pseudonym: owners.person().key.pseudonym().to_owned(),
    })
}

/// The 404 for an unknown subject.
pub(crate) fn subject_not_found() -> Rejection {
    Rejection::not_found("subject_not_found", "no subject has this subject_id")
}

/// Decrypts the app's id of a stored interaction.
pub(crate) fn decrypt_client_id(
    owners: &Owners,
    row: &InteractionRow,
) -> Result<String, DecryptError> {
    let subject = owners.of(&row.subject_pk)?;
    let context = FieldContext {
        subject: &subject.pk,
        record: &row.id,
        field: CLIENT_ID_FIELD,
    };
    String::from_utf8(subject.key.decrypt(&context, &row.client_id_ct)?).map_err(|_| DecryptError)
}

/// Decrypts one field value of a stored interaction.
pub(crate) fn decrypt_field(
    owners: &Owners,
    row: &InteractionRow,
    name: &str,
    sealed: &str,
) -> Result<FieldValue, DecryptError> {
    let subject = owners.of(&row.subject_pk)?;
    let context = FieldContext {
        subject: &subject.pk,
        record: &row.id,
        field: name,
    };
    FieldValue::from_plaintext(&open(&subject.key, &context, sealed)?).ok_or(DecryptError)
}

/// The accepted purposes stored with an interaction.
pub(crate) fn stored_purposes(row: &InteractionRow) -> Result<Vec<String>, DecryptError> {
    serde_json::from_str(&row.purposes).map_err(|_| DecryptError)
}

/// Rule 4 over a stored map of sealed field values: the fields `purpose` may use, each opened
/// with `open_field(name, sealed)`, and the names of the others, withheld (never decrypted).
pub(crate) fn open_minimised(
    policy: &Policy,
    purpose: &crate::policy::Purpose,
    data_ct: &str,
    mut open_field: impl FnMut(&str, &str) -> Result<FieldValue, DecryptError>,
) -> Result<(BTreeMap<String, FieldValue>, Vec<String>), DecryptError> {
    let mut data = BTreeMap::new();
    let mut withheld = Vec::new();
    for (name, sealed) in read_map(data_ct)? {
        let allowed = policy
            .field(&name)
            .is_some_and(|field| policy.purpose_may_use(purpose, &field.category));
        if allowed {
            let value = open_field(&name, &sealed)?;
            data.insert(name, value);
        } else {
            withheld.push(name);
        }
    }
    Ok((data, withheld))
}

fn open_row(
    policy: &Policy,
    purpose: &crate::policy::Purpose,
    owners: &Owners,
    row: &InteractionRow,
) -> Result<ReadInteraction, SubjectError> {
    let client_id = decrypt_client_id(owners, row)?;
    let (data, withheld) = open_minimised(policy, purpose, &row.data_ct, |name, sealed| {
        decrypt_field(owners, row, name, sealed)
    })?;
    Ok(ReadInteraction {
        client_id,
        interaction_type: row.interaction_type.clone(),
        channel: row.channel.clone(),
        occurred_at: row.occurred_at,
        purposes: stored_purposes(row)?,
        data,
        withheld,
    })
}
