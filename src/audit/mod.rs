//! The audit log: every read of personal data, every write, every denial, key operation and
//! erasure, as a SHA-256 hash chain appended in the same transaction as the action.
//!
//! An entry names its subject only by a pseudonym: a keyed hash under the subject's data key
//! ([`crate::crypto::DataKey::pseudonym`]). Destroying the data key at erasure makes the entries
//! unlinkable to the person; they still verify, because the chain hashes the pseudonym, not
//! the person.
//!
//! Appends are serialized by the database: the head row is locked (PostgreSQL `FOR UPDATE`;
//! SQLite's single writer) from the append to the commit, so every process sharing a database
//! extends one chain, and a rolled-back action takes its entries and the head move with it.
//! The encoding that is hashed is documented in `docs/audit.md`, for verifiers outside Custodia.

mod checkpoint;
mod reads;
mod verify;

use std::collections::BTreeSet;

use chrono::{NaiveDateTime, SubsecRound, Utc};
use serde::Serialize;

pub use checkpoint::{sign_head, verify_checkpoint, Checkpoint};
pub use reads::{ReadAudit, Unrecorded};
pub use verify::{verify, VerifyReport};

use crate::crypto::DataKey;
use crate::policy::{Policy, PurposeId};
use crate::store::audit::{self as audit_store, AuditRow, AuditSubjectRow};
use crate::store::{write_transaction, DbConnection, StoreError};

/// The hash before the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// The role recorded for actions taken on the command line.
pub const OPERATOR_ROLE: &str = "operator";
/// The role recorded for work the service does on its own (retention in `serve`).
pub const SYSTEM_ROLE: &str = "system";

/// Who acted, in which request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// The API key's id.
    pub key_id: Option<String>,
    /// The role it acted as.
    pub role: Option<String>,
    /// The HTTP request's id.
    pub request_id: Option<String>,
}

impl Actor {
    /// An API caller in a request: its key's id and role, by name (the audit log does not
    /// depend on how callers are authenticated).
    pub(crate) fn caller(key_id: &str, role: &str, request_id: Option<String>) -> Actor {
        Actor {
            key_id: Some(key_id.to_owned()),
            role: Some(role.to_owned()),
            request_id,
        }
    }

    /// The service itself, for work it does on its own (retention).
    pub(crate) fn system() -> Actor {
        Actor {
            key_id: None,
            role: Some(SYSTEM_ROLE.to_owned()),
            request_id: None,
        }
    }

    /// Whoever runs the command line on the server (no API key).
    pub fn operator() -> Actor {
        Actor {
            key_id: None,
            role: Some(OPERATOR_ROLE.to_owned()),
            request_id: None,
        }
    }
}

/// Whether the action was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It took place.
    Allow,
    /// The policy (or the role) refused it.
    Deny,
}

impl Decision {
    /// `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// An entry to append: what was done, by whom, to whom (by pseudonym), for which purposes.
/// Never a value or an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    actor: Actor,
    action: &'static str,
    target: Option<String>,
    purposes: BTreeSet<String>,
    legal_bases: BTreeSet<String>,
    subjects: BTreeSet<String>,
    categories: BTreeSet<String>,
    records: i64,
    decision: Decision,
    reason: Option<String>,
}

impl Entry {
    /// An allowed action with no subject, purpose or record yet.
    pub fn new(actor: &Actor, action: &'static str) -> Entry {
        Entry {
            actor: actor.clone(),
            action,
            target: None,
            purposes: BTreeSet::new(),
            legal_bases: BTreeSet::new(),
            subjects: BTreeSet::new(),
            categories: BTreeSet::new(),
            records: 0,
            decision: Decision::Allow,
            reason: None,
        }
    }

    /// The person it is about, by the pseudonym their data key gives.
    pub(crate) fn subject(mut self, key: &DataKey) -> Entry {
        self.add_subject(key);
        self
    }

    /// Adds a person it is about (an entry may cover several: a batch written in one request).
    pub(crate) fn add_subject(&mut self, key: &DataKey) {
        if !self.subjects.contains(key.pseudonym()) {
            self.subjects.insert(key.pseudonym().to_owned());
        }
    }

    /// A person by an already computed pseudonym.
    pub(crate) fn pseudonym(mut self, pseudonym: Option<String>) -> Entry {
        self.subjects.extend(pseudonym);
        self
    }

    /// A purpose, with its legal basis from the policy.
    pub fn purpose(mut self, policy: &Policy, purpose: &PurposeId) -> Entry {
        self.add_purpose(policy, purpose);
        self
    }

    /// Adds a purpose, with its legal basis from the policy.
    pub(crate) fn add_purpose(&mut self, policy: &Policy, purpose: &PurposeId) {
        if self.purposes.contains(purpose.as_str()) {
            return;
        }
        self.purposes.insert(purpose.to_string());
        if let Some(declared) = policy.purpose(purpose.as_str()) {
            let basis = declared.legal_basis.as_str();
            if !self.legal_bases.contains(basis) {
                self.legal_bases.insert(basis.to_owned());
            }
        }
    }

    /// Adds the category of a field (its policy category), or `name` itself for the
    /// pseudo-categories `identifiers` and `consent`.
    pub(crate) fn add_category(&mut self, category: &str) {
        if !self.categories.contains(category) {
            self.categories.insert(category.to_owned());
        }
    }

    /// A data category touched.
    pub(crate) fn category(mut self, category: &str) -> Entry {
        self.add_category(category);
        self
    }

    /// The number of records.
    pub(crate) fn records(mut self, records: usize) -> Entry {
        self.records = i64::try_from(records).unwrap_or(i64::MAX);
        self
    }

    /// Counts one more record.
    pub(crate) fn add_record(&mut self) {
        self.records += 1;
    }

    /// What the action was done to, when that is not a person (an API key id).
    pub(crate) fn target(mut self, target: impl Into<String>) -> Entry {
        self.target = Some(target.into());
        self
    }

    /// Marks the action refused, with the reason code (`no_consent`, `role_lacks_action` …).
    pub(crate) fn denied(mut self, reason: &str) -> Entry {
        self.decision = Decision::Deny;
        self.reason = Some(reason.to_owned());
        self
    }

    /// Adds a reason code to a refusal (several purposes may be refused for different reasons).
    pub(crate) fn add_reason(&mut self, reason: &str) {
        self.decision = Decision::Deny;
        let mut reasons: BTreeSet<&str> = self
            .reason
            .as_deref()
            .map(|r| r.split(',').collect())
            .unwrap_or_default();
        reasons.insert(reason);
        self.reason = Some(reasons.into_iter().collect::<Vec<_>>().join(","));
    }

    fn into_row(self, seq: i64, at: NaiveDateTime, policy_hash: &str) -> AuditRow {
        let list = |set: BTreeSet<String>| serde_json::to_string(&set).expect("strings encode");
        AuditRow {
            subjects: list(self.subjects),
            seq,
            at,
            actor_key_id: self.actor.key_id,
            role: self.actor.role,
            action: self.action.to_owned(),
            target: self.target,
            purposes: list(self.purposes),
            legal_bases: list(self.legal_bases),
            categories: list(self.categories),
            records: self.records,
            decision: self.decision.as_str().to_owned(),
            reason: self.reason,
            policy_hash: policy_hash.to_owned(),
            request_id: self.actor.request_id,
            hash: String::new(),
        }
    }
}

/// The encoding that is hashed: the stored columns in a fixed order, as compact JSON, with the
/// previous entry's hash. List columns are hashed as the JSON text they are stored as.
#[derive(Serialize)]
struct Canonical<'a> {
    v: u8,
    seq: i64,
    at: String,
    actor_key_id: Option<&'a str>,
    role: Option<&'a str>,
    action: &'a str,
    target: Option<&'a str>,
    purposes: &'a str,
    legal_bases: &'a str,
    subjects: &'a str,
    categories: &'a str,
    records: i64,
    decision: &'a str,
    reason: Option<&'a str>,
    policy_hash: &'a str,
    request_id: Option<&'a str>,
    prev: &'a str,
}

/// The timestamp as hashed: RFC 3339, UTC, exactly six fractional digits
/// (`2026-11-22T11:15:11.315375Z`).
pub(crate) fn format_time(at: &NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.nanosecond() / 1_000
    )
}

/// The hash of an entry: SHA-256 (hex) of its canonical encoding, which includes `prev`.
pub fn entry_hash(row: &AuditRow, prev: &str) -> String {
    let canonical = Canonical {
        v: 1,
        seq: row.seq,
        at: format_time(&row.at),
        actor_key_id: row.actor_key_id.as_deref(),
        role: row.role.as_deref(),
        action: &row.action,
        target: row.target.as_deref(),
        purposes: &row.purposes,
        legal_bases: &row.legal_bases,
        subjects: &row.subjects,
        categories: &row.categories,
        records: row.records,
        decision: &row.decision,
        reason: row.reason.as_deref(),
        policy_hash: &row.policy_hash,
        request_id: row.request_id.as_deref(),
        prev,
    };
    let bytes = serde_json::to_vec(&canonical).expect("the canonical entry encodes");
    hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes))
}

/// Appends entries to the chain. Call inside the transaction of the action they record: the
/// head stays locked until it commits, and a rollback removes the entries with the action.
pub(crate) fn append(
    conn: &mut DbConnection,
    policy_hash: &str,
    entries: Vec<Entry>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let (mut seq, mut prev) = audit_store::lock_head(conn)?;
    // Taken under the lock, so times never go backwards along the chain within one process.
    let at = Utc::now().naive_utc().trunc_subsecs(6);
    let mut subjects = Vec::new();
    let rows: Vec<AuditRow> = entries
        .into_iter()
        .map(|entry| {
            seq += 1;
            subjects.extend(entry.subjects.iter().map(|subject| AuditSubjectRow {
                subject_key: audit_store::subject_key(subject),
                seq,
            }));
            let mut row = entry.into_row(seq, at, policy_hash);
            row.hash = entry_hash(&row, &prev);
            prev.clone_from(&row.hash);
            row
        })
        .collect();
    audit_store::append(conn, &rows, &subjects)
}

/// Appends entries in a transaction of their own (for actions that wrote nothing: reads,
/// denials).
pub(crate) fn record(
    conn: &mut DbConnection,
    policy_hash: &str,
    entries: Vec<Entry>,
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    write_transaction(conn, |conn| append(conn, policy_hash, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_hashed_with_six_fractional_digits() {
        let at = chrono::NaiveDate::from_ymd_opt(2026, 2, 3)
            .unwrap()
            .and_hms_micro_opt(4, 5, 6, 7)
            .unwrap();
        assert_eq!(format_time(&at), "2026-02-03T04:05:06.000007Z");
        assert_eq!(
            format_time(&at),
            at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
        );
    }
}
