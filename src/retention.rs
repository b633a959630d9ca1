//! Retention: interactions are kept for a purpose only as long as the purpose's
//! `retention_days`, counted from when they occurred. Past it, the purpose is removed from the
//! interaction (it can no longer be read for it); an interaction no purpose holds any more is
//! deleted. Decided by the database in batches, each with its audit entry. Executed erasure
//! requests' receipts are shredded past their time, too.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDateTime, Utc};
use serde::Serialize;

use crate::audit::{self, Actor, Entry};
use crate::policy::{Policy, Purpose};
use crate::store::holds as hold_store;
use crate::store::retention::{self as retention_store, ExpiredBatch};
use crate::store::{write_transaction, DbConnection, StoreError, MAX_IN_LIST};
use crate::subjects::holds;

/// The audit action of a retention batch.
pub const ACTION: &str = "retention.expire";
/// Interactions looked at per batch (one `IN` list).
pub const BATCH: usize = MAX_IN_LIST;

/// What a retention run removed, per purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    /// Purpose → what expired for it.
    pub purposes: BTreeMap<String, PurposeExpiry>,
    /// Interactions deleted in all (no purpose left).
    pub interactions_deleted: usize,
    /// Executed erasure requests' receipts shredded, past their time
    /// ([`crate::requests::RECEIPT_DAYS`]).
    pub erasure_receipts_shredded: usize,
    /// Interactions an erasure kept under a legal hold, deleted now that the hold ended.
    pub held_interactions_deleted: usize,
    /// Legal holds left with nothing to hold, whose keys were destroyed.
    pub legal_holds_ended: usize,
    /// Questions the segments guard remembered past its window, forgotten.
    pub segment_answers_forgotten: usize,
    /// Insight answers and budget spending of days before today, forgotten.
    pub insight_days_forgotten: usize,
}

/// What expired for one purpose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PurposeExpiry {
    /// Interactions that lost the purpose.
    pub interactions_expired: usize,
    /// Of those, deleted because no purpose held them any more.
    pub interactions_deleted: usize,
}

/// One batch for one purpose, in its own transaction with its audit entry.
pub(crate) fn expire_batch(
    conn: &mut DbConnection,
    policy: &Policy,
    purpose: &Purpose,
    now: NaiveDateTime,
    actor: &Actor,
) -> Result<ExpiredBatch, StoreError> {
    let cutoff = now - Duration::days(i64::from(purpose.retention_days));
    write_transaction(conn, |conn| {
        let batch = retention_store::expire_batch(conn, purpose.id.as_str(), cutoff, BATCH as i64)?;
        if batch.purpose_rows > 0 {
            let entry = Entry::new(actor, ACTION)
                .purpose(policy, &purpose.id)
                .records(batch.purpose_rows);
            audit::append(conn, policy.sha256(), vec![entry])?;
        }
        Ok(batch)
    })
}

/// Expires everything past retention, batch after batch.
pub fn run(
    conn: &mut DbConnection,
    policy: &Policy,
    actor: &Actor,
) -> Result<RetentionReport, StoreError> {
    let now = Utc::now().naive_utc();
    let mut report = RetentionReport::default();
    for purpose in policy.purposes() {
        loop {
            let batch = expire_batch(conn, policy, purpose, now, actor)?;
            report.record(purpose, batch);
            if batch.purpose_rows < BATCH {
                break;
            }
        }
    }
    expire_the_rest(conn, policy, now, actor, &mut report)?;
    Ok(report)
}

/// What a run removes after the purposes' batches, each in its own transaction: the erasure
/// receipts requests kept past their time, what legal holds kept past their end (with the keys
/// of holds left empty), and the questions the segments guard remembers past its window.
pub fn expire_the_rest(
    conn: &mut DbConnection,
    policy: &Policy,
    now: NaiveDateTime,
    actor: &Actor,
    report: &mut RetentionReport,
) -> Result<(), StoreError> {
    report.erasure_receipts_shredded =
        crate::requests::shred_expired_receipts(conn, policy, actor)?;
    let expired = expire_holds(conn, policy, now, actor)?;
    report.held_interactions_deleted = expired.records;
    report.legal_holds_ended = expired.ended.len();
    report.segment_answers_forgotten = crate::segments::forget_old_answers(conn, now)?;
    report.insight_days_forgotten = crate::store::insights::prune(conn, &now.date().to_string())?;
    Ok(())
}

/// Deletes what legal holds kept past its end, and the holds (with their keys) left empty, in
/// one transaction with the audit entries: one for the records, one per hold that ended.
pub(crate) fn expire_holds(
    conn: &mut DbConnection,
    policy: &Policy,
    now: NaiveDateTime,
    actor: &Actor,
) -> Result<hold_store::Expired, StoreError> {
    write_transaction(conn, |conn| {
        let expired = hold_store::expire(conn, now)?;
        let mut entries = Vec::new();
        if expired.records > 0 {
            entries.push(
                Entry::new(actor, holds::ACTION_EXPIRE)
                    .records(expired.records)
                    .category("interactions"),
            );
        }
        for (erasure, pseudonym) in &expired.ended {
            entries.push(
                Entry::new(actor, holds::ACTION_END)
                    .pseudonym(Some(pseudonym.clone()))
                    .target(erasure.clone()),
            );
        }
        if !entries.is_empty() {
            audit::append(conn, policy.sha256(), entries)?;
        }
        Ok(expired)
    })
}

impl RetentionReport {
    /// Adds a batch's counts.
    pub(crate) fn record(&mut self, purpose: &Purpose, batch: ExpiredBatch) {
        if batch.purpose_rows == 0 {
            return;
        }
        let counts = self.purposes.entry(purpose.id.to_string()).or_default();
        counts.interactions_expired += batch.purpose_rows;
        counts.interactions_deleted += batch.interactions;
        self.interactions_deleted += batch.interactions;
    }
}
