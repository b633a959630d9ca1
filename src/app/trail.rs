//! The audit trail as compliance reads it (action `audit.read`): pages of entries, filtered
//! and by person; verification of the whole chain; a checkpoint signed on request. Each read
//! is itself audited before it is answered.
//!
//! This sits above `audit` (which appends and verifies the chain and may not know people)
//! because finding a person's entries starts from their subject id.

use chrono::{DateTime, NaiveDateTime, Utc};

use super::Services;
use crate::audit::{self, Actor, Checkpoint, Entry, Unrecorded, VerifyReport};
use crate::page::Page;
use crate::store::audit::{self as audit_store, AuditFilter, AuditRow};
use crate::store::{write_transaction, StoreError};
use crate::subjects::{self, SubjectError, SubjectId};

/// The audit action of querying the log.
pub(crate) const ACTION_READ: &str = "audit.read";
/// The audit action of verifying the log.
pub(crate) const ACTION_VERIFY: &str = "audit.verify";
/// The audit action of signing a checkpoint on request.
pub(crate) const ACTION_CHECKPOINT: &str = "audit.checkpoint";

/// Why the trail was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TrailError {
    /// No subject has this subject id (or it was erased).
    #[error("no subject has this subject id")]
    SubjectNotFound,
    /// The audit entry of the read could not be written: nothing is answered.
    #[error(transparent)]
    Unrecorded(#[from] Unrecorded),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The person could not be looked up.
    #[error(transparent)]
    Subject(#[from] SubjectError),
}

/// Which entries to list; every part optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrailQuery {
    /// Entries about this person.
    pub(crate) subject_id: Option<SubjectId>,
    /// Entries by this API key id.
    pub(crate) actor_key_id: Option<String>,
    /// Entries of this action.
    pub(crate) action: Option<String>,
    /// Entries naming this purpose.
    pub(crate) purpose: Option<String>,
    /// `allow` or `deny`.
    pub(crate) decision: Option<String>,
    /// At or after.
    pub(crate) from: Option<NaiveDateTime>,
    /// Before.
    pub(crate) to: Option<NaiveDateTime>,
}

/// One entry as it is listed (and as `GET /v1/audit` shows it).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = AuditEntryBody)]
pub(crate) struct LoggedEntry {
    /// Position in the chain, from 1.
    pub(crate) seq: i64,
    /// When it was written.
    pub(crate) at: DateTime<Utc>,
    /// The API key that acted (`null` for the command line).
    pub(crate) actor_key_id: Option<String>,
    /// That key's name, as whoever created it named it (`null` for the command line).
    pub(crate) actor_name: Option<String>,
    /// Its role (`operator` for the command line).
    pub(crate) role: Option<String>,
    /// What was done.
    pub(crate) action: String,
    /// What it was done to, when not a person (an API key id).
    pub(crate) target: Option<String>,
    /// The purposes.
    pub(crate) purposes: Vec<String>,
    /// Their legal bases.
    pub(crate) legal_bases: Vec<String>,
    /// The pseudonyms of the people it is about (never an identifier); several for a batch
    /// written in one request.
    pub(crate) subjects: Vec<String>,
    /// Data categories touched.
    pub(crate) categories: Vec<String>,
    /// How many records.
    pub(crate) records: i64,
    /// `allow` or `deny`.
    pub(crate) decision: String,
    /// The reason code of a denial.
    pub(crate) reason: Option<String>,
    /// SHA-256 of the policy in force.
    pub(crate) policy_hash: String,
    /// The request's id.
    pub(crate) request_id: Option<String>,
    /// The entry's chain hash.
    pub(crate) hash: String,
}

impl LoggedEntry {
    fn new(row: AuditRow, actor_name: Option<String>) -> LoggedEntry {
        let list = |text: &str| serde_json::from_str::<Vec<String>>(text).unwrap_or_default();
        LoggedEntry {
            seq: row.seq,
            at: row.at.and_utc(),
            purposes: list(&row.purposes),
            legal_bases: list(&row.legal_bases),
            categories: list(&row.categories),
            subjects: list(&row.subjects),
            actor_key_id: row.actor_key_id,
            actor_name,
            role: row.role,
            action: row.action,
            target: row.target,
            records: row.records,
            decision: row.decision,
            reason: row.reason,
            policy_hash: row.policy_hash,
            request_id: row.request_id,
            hash: row.hash,
        }
    }
}

/// The position a page's cursor names: the last entry's `seq`.
pub(crate) fn cursor_position(seq: i64) -> String {
    format!("seq:{seq}")
}

/// The `seq` in a cursor's position, if it is one this list gave.
pub(crate) fn seq_of(position: &str) -> Option<i64> {
    position
        .strip_prefix("seq:")
        .and_then(|seq| seq.parse::<i64>().ok())
        .filter(|seq| *seq > 0)
}

/// A page of entries matching `query`, newest first, before `before` (a `seq`), each with the
/// name of the key that acted; audited (with the person's pseudonym when one was asked for).
pub(crate) async fn page(
    services: &Services,
    actor: &Actor,
    query: TrailQuery,
    limit: i64,
    before: Option<i64>,
) -> Result<Page<LoggedEntry>, TrailError> {
    let vault = services.vault.clone();
    let (rows, pseudonym) = services
        .db
        .run(move |conn| -> Result<_, TrailError> {
            let pseudonym = match &query.subject_id {
                Some(subject_id) => Some(
                    subjects::find(conn, &vault, subject_id)?
                        .ok_or(TrailError::SubjectNotFound)?
                        .key
                        .pseudonym()
                        .to_owned(),
                ),
                None => None,
            };
            let filter = AuditFilter {
                subject: pseudonym.clone(),
                actor_key_id: query.actor_key_id,
                action: query.action,
                purpose: query.purpose,
                decision: query.decision,
                from: query.from,
                to: query.to,
            };
            let rows = audit_store::page(conn, &filter, before, limit + 1)?;
            let mut actors: Vec<&str> = rows
                .iter()
                .filter_map(|row| row.actor_key_id.as_deref())
                .collect();
            actors.sort_unstable();
            actors.dedup();
            let names: std::collections::HashMap<String, String> =
                crate::store::api_keys::names_of(conn, &actors)?
                    .into_iter()
                    .collect();
            let entries: Vec<LoggedEntry> = rows
                .into_iter()
                .map(|row| {
                    let name = row
                        .actor_key_id
                        .as_ref()
                        .and_then(|id| names.get(id))
                        .cloned();
                    LoggedEntry::new(row, name)
                })
                .collect();
            Ok((entries, pseudonym))
        })
        .await?;
    let page = Page::from_rows(rows, limit, |entry| cursor_position(entry.seq));
    let entry = Entry::new(actor, ACTION_READ)
        .pseudonym(pseudonym)
        .records(page.items.len());
    services.read_audit.record(vec![entry]).await?;
    Ok(page)
}

/// Verifies the whole chain (every hash, the sequence without gaps, the head, every stored
/// signed checkpoint); audited with the number of entries checked.
pub(crate) async fn verify(services: &Services, actor: &Actor) -> Result<VerifyReport, TrailError> {
    let signer = services.checkpoints.clone();
    let report = services
        .db
        .run(move |conn| audit::verify(conn, &signer, &[]))
        .await?;
    let entries = usize::try_from(report.entries).unwrap_or(0);
    services
        .read_audit
        .record(vec![Entry::new(actor, ACTION_VERIFY).records(entries)])
        .await?;
    Ok(report)
}

/// Signs the chain's current head (kept outside, it later proves nothing it covers was removed
/// or rewritten); audited with the size it covers.
pub(crate) async fn checkpoint(
    services: &Services,
    actor: &Actor,
) -> Result<Checkpoint, TrailError> {
    let signer = services.checkpoints.clone();
    let checkpoint = services
        .db
        .run_write(move |conn| write_transaction(conn, |conn| audit::sign_head(conn, &signer)))
        .await
        .map_err(|error: StoreError| TrailError::Store(error))?;
    let entry =
        Entry::new(actor, ACTION_CHECKPOINT).records(usize::try_from(checkpoint.size).unwrap_or(0));
    services.read_audit.record(vec![entry]).await?;
    Ok(checkpoint)
}
