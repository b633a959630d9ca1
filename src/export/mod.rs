//! Art. 15 (access) and Art. 20 (portability) exports: everything held about one person,
//! decrypted, with the processing context generated from the policy and the log of who read
//! their data.
//!
//! An export is read inside one database snapshot ([`crate::store::export::snapshot`]) and
//! written as it is read, page by page, to any [`Write`]: memory stays bounded whatever the
//! number of interactions. Before anything is written, [`stream`] announces what the export
//! will contain ([`Summary`]) so that the caller can record the audit entry first; the export
//! goes on only if the announcement is accepted.

mod csv;
pub mod glance;
mod json;
pub mod zip;

/// An export's claim on its database snapshot: registered before the snapshot is taken, asked
/// to end when an erasure needs the snapshot gone (`Database::long_reader`).
pub use crate::store::old_copies::LongReader as SnapshotClaim;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::consent::{self, Recorded, CONSENT_CATEGORY};
use crate::crypto::{DecryptError, FieldContext, JwsSigner};
use crate::interactions::{decrypt_client_id, decrypt_field, stored_purposes};
use crate::policy::{Policy, PurposeId, SubjectState};
use crate::store::audit::AuditRow;
use crate::store::consents as consent_store;
use crate::store::export as export_store;
use crate::store::interactions::InteractionRow;
use crate::store::subjects as subject_store;
use crate::store::{DbConnection, StoreError};
use crate::subjects::sealed::{open, read_map, SUBJECT_RECORD};
use crate::subjects::{
    self, FieldValue, Owners, SubjectError, SubjectHandle, SubjectId, IDENTIFIERS_CATEGORY,
};
use crate::vault::{Vault, VaultError};

/// The audit action of an export.
pub const ACTION_EXPORT: &str = "subjects.export";

/// The audit actions that disclose a person's data, listed in an export's `access_log`.
pub const ACCESS_ACTIONS: [&str; 5] = [
    crate::interactions::ACTION_READ,
    consent::ACTION_READ,
    subjects::ACTION_LOOKUP,
    ACTION_EXPORT,
    "segments.export",
];

/// Rows read per query while streaming.
const PAGE: i64 = 500;

/// The export's format version, written into it.
pub const FORMAT_VERSION: &str = "custodia.export/1";

/// The form of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON document.
    Json,
    /// A zip of CSV files.
    CsvZip,
}

/// What an export is about to contain, announced before any of it is written.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The person's audit pseudonym.
    pub pseudonym: String,
    /// Records: the profile, interactions and consent statements.
    pub records: usize,
    /// The data categories it may contain.
    pub categories: Vec<String>,
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading or decrypting failed.
    #[error(transparent)]
    Subject(#[from] SubjectError),
    /// Writing failed (the client went away).
    #[error("the export could not be written: {0}")]
    Io(#[from] io::Error),
}

impl From<StoreError> for ExportError {
    fn from(error: StoreError) -> Self {
        ExportError::Subject(error.into())
    }
}

impl From<DecryptError> for ExportError {
    fn from(error: DecryptError) -> Self {
        ExportError::Subject(error.into())
    }
}

/// The person's profile.
struct Profile {
    /// The app's user id; `None` for a person known only by an anonymous id.
    subject_id: Option<String>,
    /// The anonymous ids the person is known by: their own (when they have no user id) and
    /// every one linked to them (identity resolution), oldest link first.
    anonymous_ids: Vec<String>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    identifiers: BTreeMap<String, String>,
    traits: BTreeMap<String, serde_json::Value>,
}

/// One purpose the person's data is processed for (Art. 15(1) a–d, g).
struct Processing {
    purpose: String,
    description: String,
    legal_basis: String,
    /// `None` when the basis stands now; the reason code when it does not.
    refused: Option<&'static str>,
    retention_days: u32,
    categories: Vec<String>,
    sources: Vec<String>,
    interactions: i64,
}

/// The person as held: profile, standing and counts (what an export and the person's screen
/// both start from).
struct Person {
    /// The person, and the people merged into them (whose interactions keep their own key).
    owners: Owners,
    profile: Profile,
    restricted_since: Option<NaiveDateTime>,
    objections: Vec<(String, NaiveDateTime)>,
    current: Vec<(String, String, NaiveDateTime)>,
    /// The engine's view of the person, as read in this snapshot.
    state: SubjectState,
    /// The sequence of each current statement, by purpose (which of them is latest).
    sequences: BTreeMap<String, i64>,
    interactions: i64,
    consents: i64,
}

/// Everything small enough to hold at once; interactions, consent statements and the access
/// log are read page by page while writing.
struct Head {
    person: Person,
    processing: Vec<Processing>,
    generated_at: DateTime<Utc>,
    /// Were the person erased now: when no backup made before could be read any more.
    erasure_reaches_backups_by: NaiveDateTime,
    /// The key epoch length and backup retention behind that bound.
    schedule: crate::vault::EpochSchedule,
}

/// Exports the person with this subject id to `out` in `format`. Calls `announce` once: with
/// `None` (and writes nothing) when there is no such subject, else with what the export will
/// contain; writes only if `announce` returns `true`. Returns whether the subject was found.
#[allow(clippy::too_many_arguments)]
pub(crate) fn stream<W: Write>(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    receipts: &JwsSigner,
    subject_id: &SubjectId,
    format: Format,
    announce: impl FnOnce(Option<&Summary>) -> bool,
    out: W,
) -> Result<bool, ExportError> {
    export_store::snapshot(conn, |conn| {
        let Some(head) = read_head(conn, vault, policy, subject_id)? else {
            announce(None);
            return Ok(false);
        };
        if !announce(Some(&summary_of(&head))) {
            return Ok(true);
        }
        match format {
            Format::Json => json::write(conn, policy, receipts, &head, out)?,
            Format::CsvZip => csv::write(conn, policy, receipts, &head, out)?,
        }
        Ok(true)
    })
}

fn read_head(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    subject_id: &SubjectId,
) -> Result<Option<Head>, ExportError> {
    let Some(person) = read_person(conn, vault, subject_id)? else {
        return Ok(None);
    };
    let Person {
        owners,
        current,
        objections,
        state,
        ..
    } = &person;

    // Every purpose the person's data is held or was asked for: tagged interactions, consent
    // statements, objections.
    let mut by_purpose: BTreeMap<String, (Vec<String>, i64)> = BTreeMap::new();
    for (purpose, channel, count) in export_store::purposes_by_channel(conn, &owners.pks())? {
        let entry = by_purpose.entry(purpose).or_default();
        entry.0.push(channel);
        entry.1 += count;
    }
    for purpose in current
        .iter()
        .map(|(purpose, _, _)| purpose)
        .chain(objections.iter().map(|(purpose, _)| purpose))
    {
        by_purpose.entry(purpose.clone()).or_default();
    }
    let processing = by_purpose
        .into_iter()
        .filter_map(|(purpose, (sources, interactions))| {
            let declared = policy.purpose(&purpose)?;
            Some(Processing {
                purpose,
                description: declared.description.clone(),
                legal_basis: declared.legal_basis.as_str().to_owned(),
                refused: policy.legal_basis(declared, state).err().map(|d| d.code()),
                retention_days: declared.retention_days,
                categories: declared
                    .categories
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                sources,
                interactions,
            })
        })
        .collect();

    Ok(Some(Head {
        person,
        processing,
        generated_at: Utc::now(),
        erasure_reaches_backups_by: vault
            .erasure_reaches_backups_by(conn, Utc::now().naive_utc())
            .map_err(SubjectError::from)?,
        schedule: vault.schedule(),
    }))
}

fn read_person(
    conn: &mut DbConnection,
    vault: &Vault,
    subject_id: &SubjectId,
) -> Result<Option<Person>, ExportError> {
    let index = subjects::subject_index(vault, subject_id);
    let Some(row) = subject_store::find_by_index(conn, &index)? else {
        return Ok(None);
    };
    let key = match vault.data_key_for(conn, &row.id) {
        Ok(key) => key,
        // Erased after the row was read: not in this snapshot's terms, but gone all the same.
        Err(VaultError::Erased) => return Ok(None),
        Err(error) => return Err(SubjectError::from(error).into()),
    };
    let handle = SubjectHandle {
        pk: row.id.clone(),
        key,
    };
    fn place<'a>(subject: &'a str, field: &'a str) -> FieldContext<'a> {
        FieldContext {
            subject,
            record: SUBJECT_RECORD,
            field,
        }
    }
    let own = subjects::open_subject_id(&handle.key, &row.id, &row.subject_id_ct)?;
    let mut anonymous_ids = Vec::new();
    if own.is_anonymous() {
        anonymous_ids.push(own.as_str().to_owned());
    }
    anonymous_ids.extend(crate::subjects::links::linked_ids(conn, &handle)?);
    let mut identifiers = BTreeMap::new();
    for (name, sealed) in read_map(&row.identifiers_ct)? {
        let value = open(&handle.key, &place(&row.id, &format!("${name}")), &sealed)?;
        identifiers.insert(name, String::from_utf8(value).map_err(|_| DecryptError)?);
    }
    let mut traits = BTreeMap::new();
    for (name, sealed) in read_map(&row.traits_ct)? {
        let value =
            FieldValue::from_plaintext(&open(&handle.key, &place(&row.id, &name), &sealed)?)
                .ok_or(DecryptError)?;
        traits.insert(name, value.to_json());
    }
    for (name, value) in export_store::plain_traits(conn, &row.id)? {
        traits.insert(name, serde_json::Value::String(value));
    }
    let profile = Profile {
        subject_id: (!own.is_anonymous()).then(|| own.as_str().to_owned()),
        anonymous_ids,
        created_at: row.created_at,
        updated_at: row.updated_at,
        identifiers,
        traits,
    };

    let pks = [row.id.as_str()];
    let owners = Owners::load(conn, vault, handle)?;
    let (interactions, consents) = export_store::counts(conn, &owners.pks())?;
    let current_rows = consent_store::current_for(conn, &pks)?;
    let objections: Vec<(String, NaiveDateTime)> = consent_store::objections_for(conn, &pks)?
        .into_iter()
        .map(|(_, purpose, since)| (purpose, since))
        .collect();
    let restricted_since = export_store::restricted_since(conn, &row.id)?;
    // The engine's view of the person, from the rows just read (as `processing_state` would
    // read them again).
    let state = SubjectState {
        consents: current_rows
            .iter()
            .filter_map(subjects::consent_statement)
            .collect(),
        objections: objections
            .iter()
            .filter_map(|(purpose, _)| PurposeId::parse(purpose).ok())
            .collect(),
        restricted: restricted_since.is_some(),
    };
    let sequences: BTreeMap<String, i64> = current_rows
        .iter()
        .map(|current| (current.purpose.clone(), current.sequence))
        .collect();
    let current: Vec<(String, String, NaiveDateTime)> = current_rows
        .into_iter()
        .map(|current| (current.purpose, current.status, current.since))
        .collect();

    Ok(Some(Person {
        owners,
        profile,
        restricted_since,
        objections,
        current,
        state,
        sequences,
        interactions,
        consents,
    }))
}

fn summary_of(head: &Head) -> Summary {
    let mut categories = BTreeSet::new();
    let person = &head.person;
    if !person.profile.identifiers.is_empty() {
        categories.insert(IDENTIFIERS_CATEGORY.to_owned());
    }
    if person.consents > 0 {
        categories.insert(CONSENT_CATEGORY.to_owned());
    }
    for processing in head.processing.iter().filter(|p| p.interactions > 0) {
        categories.extend(processing.categories.iter().cloned());
    }
    Summary {
        pseudonym: person.owners.person().key.pseudonym().to_owned(),
        records: 1 + person.interactions as usize + person.consents as usize,
        categories: categories.into_iter().collect(),
    }
}

/// One decrypted interaction.
struct Opened {
    id: String,
    row: InteractionRow,
    /// The purposes it was accepted for at collection.
    collected_for: Vec<String>,
    /// The purposes it is still held for.
    purposes: Vec<String>,
    data: Vec<(String, Option<String>, FieldValue)>,
}

impl Opened {
    fn categories(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self
            .data
            .iter()
            .filter_map(|(_, category, _)| category.as_deref())
            .collect();
        set.into_iter().map(str::to_owned).collect()
    }
}

/// Calls `each` with every interaction of the person and of the people merged into them,
/// decrypted, page by page.
fn for_each_interaction(
    conn: &mut DbConnection,
    policy: &Policy,
    owners: &Owners,
    mut each: impl FnMut(Opened) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    // Owner by owner, each in client-index order (their index serves it without sorting).
    for owner in owners.pks() {
        let mut after: Option<String> = None;
        loop {
            let rows = export_store::interactions_page(conn, owner, after.as_deref(), PAGE)?;
            let full = rows.len() as i64 == PAGE;
            after = rows.last().map(|row| row.client_index.clone());
            let ids: Vec<&str> = rows.iter().map(|row| row.id.as_str()).collect();
            let mut held: std::collections::HashMap<String, Vec<String>> = Default::default();
            for (id, purpose) in export_store::held_purposes(conn, &ids)? {
                held.entry(id).or_default().push(purpose);
            }
            for row in rows {
                let mut data = Vec::new();
                for (name, sealed) in read_map(&row.data_ct)? {
                    let value = decrypt_field(owners, &row, &name, &sealed)?;
                    let category = policy
                        .field(&name)
                        .map(|field| field.category.as_str().to_owned());
                    data.push((name, category, value));
                }
                each(Opened {
                    id: decrypt_client_id(owners, &row)?,
                    collected_for: stored_purposes(&row)?,
                    purposes: held.remove(&row.id).unwrap_or_default(),
                    row,
                    data,
                })?;
            }
            if !full {
                break;
            }
        }
    }
    Ok(())
}

/// Calls `each` with every consent statement of the subject, oldest first, page by page.
fn for_each_statement(
    conn: &mut DbConnection,
    subject: &SubjectHandle,
    mut each: impl FnMut(Recorded, BTreeMap<String, String>) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut after = 0;
    loop {
        let rows = export_store::consents_page(conn, &subject.pk, after, PAGE)?;
        let full = rows.len() as i64 == PAGE;
        after = rows.last().map_or(after, |row| row.sequence);
        for row in rows {
            let (recorded, evidence) = consent::open_statement(subject, row)?;
            each(recorded, evidence)?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// The receipt of a statement as the export gives it: signed now, by the consent receipt key,
/// over what was recorded, naming the person by the id the export shows (their user id, else
/// their anonymous id). Verifiable with `GET /v1/consents/receipt-key` like the receipt the
/// recording call answered (a statement collected through the tracking protocol has only
/// this one: the SDKs get no receipts).
fn receipt_of(receipts: &JwsSigner, policy: &Policy, head: &Head, recorded: &Recorded) -> String {
    consent::receipt(receipts, policy, shown_id(head), recorded)
}

/// The id the export names the person by (their user id, else their anonymous id).
fn shown_id(head: &Head) -> &str {
    let profile = &head.person.profile;
    profile
        .subject_id
        .as_deref()
        .or(profile.anonymous_ids.first().map(String::as_str))
        .unwrap_or_default()
}

/// The person's consent records in ISO/IEC TS 27560 JSON-LD (`docs/standards.md`), when the
/// policy declares its controller; `null` otherwise.
fn consent_records(policy: &Policy, head: &Head, statements: &[Recorded]) -> serde_json::Value {
    crate::standards::iso27560::records(policy, shown_id(head), statements)
        .unwrap_or(serde_json::Value::Null)
}

/// Calls `each` with every audit entry that disclosed the subject's data, oldest first.
fn for_each_access(
    conn: &mut DbConnection,
    subject: &SubjectHandle,
    mut each: impl FnMut(AuditRow) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let mut after = 0;
    loop {
        let rows =
            export_store::audit_page(conn, subject.key.pseudonym(), &ACCESS_ACTIONS, after, PAGE)?;
        let full = rows.len() as i64 == PAGE;
        after = rows.last().map_or(after, |row| row.seq);
        for row in rows {
            each(row)?;
        }
        if !full {
            return Ok(());
        }
    }
}

/// Where the text of a statement's notice is published, when the policy still declares that
/// notice version in that language.
fn notice_url(policy: &Policy, notice: &crate::consent::NoticeRef) -> Option<String> {
    policy
        .notices()
        .iter()
        .find(|declared| {
            declared.id == notice.id
                && declared.version == notice.version
                && Some(&declared.language) == notice.language.as_ref()
        })
        .map(|declared| declared.url.clone())
}

/// A UTC time as RFC 3339 with microseconds.
fn rfc3339(time: NaiveDateTime) -> String {
    time.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A JSON array of strings stored as text, as a list.
fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// A field value as text (numbers as JSON wrote them).
fn value_text(value: &FieldValue) -> String {
    match value.to_json() {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}
