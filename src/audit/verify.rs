//! Verification of the chain: every entry's hash, the sequence without gaps, the head, and
//! signed checkpoints (stored ones and any given from outside), reading the log in chunks.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::{entry_hash, verify_checkpoint, Checkpoint, GENESIS_HASH};
use crate::crypto::JwsSigner;
use crate::store::audit as audit_store;
use crate::store::{DbConnection, StoreError};

/// Entries read per query.
const CHUNK: i64 = 5_000;

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VerifyReport {
    /// Whether everything verified.
    pub ok: bool,
    /// The number of entries in the log.
    pub entries: i64,
    /// The first entry that is wrong or missing (`null` when all verify, or when only a
    /// checkpoint's own signature is bad).
    pub first_invalid: Option<i64>,
    /// What is wrong there: `hash_mismatch` (altered, inserted or reordered), `missing_entry`
    /// (deleted), `truncated` (entries after the last one are gone), `head_mismatch`,
    /// `index_mismatch` (the index of people named differs from the entries),
    /// `unchained_entry` (a row that is not a chain position: `seq` 0 or below),
    /// `checkpoint_mismatch` (history rewritten with recomputed hashes) or
    /// `checkpoint_signature`.
    pub reason: Option<&'static str>,
    /// The same in words.
    pub detail: Option<String>,
    /// How many signed checkpoints were checked against the chain.
    pub checkpoints: usize,
}

struct Failure {
    seq: Option<i64>,
    reason: &'static str,
    detail: String,
}

/// Verifies the whole chain against itself, its head, the stored checkpoints and `external`
/// ones (saved outside the database), whose signatures must be by `signer`'s key.
pub fn verify(
    conn: &mut DbConnection,
    signer: &JwsSigner,
    external: &[Checkpoint],
) -> Result<VerifyReport, StoreError> {
    let mut failures = Vec::new();
    let mut checkpoints: Vec<Checkpoint> = audit_store::checkpoints(conn)?
        .into_iter()
        .map(Checkpoint::from)
        .collect();
    checkpoints.extend(external.iter().cloned());
    checkpoints.retain(|checkpoint| match verify_checkpoint(signer, checkpoint) {
        Ok(()) => true,
        Err(error) => {
            failures.push(Failure {
                seq: None,
                reason: "checkpoint_signature",
                detail: format!("the checkpoint of size {}: {error}", checkpoint.size),
            });
            false
        }
    });
    checkpoints.sort_by_key(|checkpoint| checkpoint.size);
    let wanted: BTreeSet<i64> = checkpoints.iter().map(|c| c.size).collect();

    // The chain itself.
    let mut hashes_at: HashMap<i64, String> = HashMap::new();
    hashes_at.insert(0, GENESIS_HASH.to_owned());
    let mut prev = GENESIS_HASH.to_owned();
    let mut expected = 1;
    let mut chain_failure: Option<Failure> = None;
    let mut entries = 0;
    let mut last_seen = 0;
    loop {
        let rows = audit_store::range(conn, last_seen, CHUNK)?;
        let Some(last) = rows.last() else { break };
        last_seen = last.seq;
        entries += rows.len() as i64;
        if chain_failure.is_some() {
            continue;
        }
        let mut named: HashMap<i64, BTreeSet<i64>> = HashMap::new();
        for link in audit_store::subjects_between(conn, rows[0].seq, last_seen)? {
            named.entry(link.seq).or_default().insert(link.subject_key);
        }
        for row in rows {
            if row.seq != expected {
                chain_failure = Some(Failure {
                    seq: Some(expected),
                    reason: "missing_entry",
                    detail: format!(
                        "entry {expected} is missing (the next entry is {})",
                        row.seq
                    ),
                });
                break;
            }
            if entry_hash(&row, &prev) != row.hash {
                chain_failure = Some(Failure {
                    seq: Some(row.seq),
                    reason: "hash_mismatch",
                    detail: format!(
                        "entry {} does not match its hash: it, or its place in the chain, was changed",
                        row.seq
                    ),
                });
                break;
            }
            let listed: BTreeSet<i64> = serde_json::from_str::<Vec<String>>(&row.subjects)
                .unwrap_or_default()
                .iter()
                .map(|subject| audit_store::subject_key(subject))
                .collect();
            if named.remove(&row.seq).unwrap_or_default() != listed {
                chain_failure = Some(Failure {
                    seq: Some(row.seq),
                    reason: "index_mismatch",
                    detail: format!(
                        "the index of people named by entry {} differs from the entry",
                        row.seq
                    ),
                });
                break;
            }
            if wanted.contains(&row.seq) {
                hashes_at.insert(row.seq, row.hash.clone());
            }
            prev = row.hash;
            expected += 1;
        }
    }
    let verified = expected - 1;

    // Every row of the table is accounted for, not only those the walk reached: a row outside
    // the chain (`seq` 0 or below, say with another entry's hash copied into it) is never
    // walked, so it is counted and found here.
    let (unchained_rows, lowest_unchained) = audit_store::unchained(conn)?;
    entries += unchained_rows;
    if let Some(seq) = lowest_unchained {
        failures.push(Failure {
            seq: Some(seq),
            reason: "unchained_entry",
            detail: format!("a row with seq {seq} is not a chain position (entries count from 1)"),
        });
    }
    let rows_in_walk = audit_store::count_up_to(conn, verified)?;
    if chain_failure.is_none() && rows_in_walk != verified {
        failures.push(Failure {
            seq: None,
            reason: "unchained_entry",
            detail: format!(
                "the table holds {rows_in_walk} rows up to entry {verified}, not {verified}"
            ),
        });
    }

    if let Some(failure) = chain_failure {
        failures.push(failure);
    } else {
        // The head moves in the same transaction as the entries, so it is never behind an
        // entry that was read; ahead of them only if entries were appended since (fine) or the
        // tail was deleted.
        let (head_seq, head_hash) = audit_store::head(conn)?;
        if head_seq < verified {
            failures.push(Failure {
                seq: Some(head_seq + 1),
                reason: "head_mismatch",
                detail: format!("entries after the head ({head_seq}) exist"),
            });
        } else if head_seq == verified && head_hash != prev {
            failures.push(Failure {
                seq: Some(head_seq),
                reason: "head_mismatch",
                detail: format!("the head's hash differs from entry {head_seq}'s"),
            });
        } else if head_seq > verified && audit_store::entry(conn, verified + 1)?.is_none() {
            failures.push(Failure {
                seq: Some(verified + 1),
                reason: "truncated",
                detail: format!(
                    "the head says {head_seq} entries were written; only {verified} remain"
                ),
            });
        }
        let mut last_matching = 0;
        for checkpoint in &checkpoints {
            if checkpoint.size > verified {
                failures.push(Failure {
                    seq: Some(verified + 1),
                    reason: "truncated",
                    detail: format!(
                        "a checkpoint signed at {} covers {} entries; only {verified} remain",
                        checkpoint.time.to_rfc3339(),
                        checkpoint.size
                    ),
                });
                break;
            }
            if hashes_at.get(&checkpoint.size) == Some(&checkpoint.head_hash) {
                last_matching = checkpoint.size;
            } else {
                failures.push(Failure {
                    seq: Some(last_matching + 1),
                    reason: "checkpoint_mismatch",
                    detail: format!(
                        "entry {} differs from the checkpoint signed at {}: history after entry {last_matching} was rewritten",
                        checkpoint.size,
                        checkpoint.time.to_rfc3339()
                    ),
                });
                break;
            }
        }
    }

    let first = failures
        .iter()
        .filter(|failure| failure.seq.is_some())
        .min_by_key(|failure| failure.seq)
        .or_else(|| failures.first());
    Ok(VerifyReport {
        ok: failures.is_empty(),
        entries,
        first_invalid: first.and_then(|failure| failure.seq),
        reason: first.map(|failure| failure.reason),
        detail: first.map(|failure| failure.detail.clone()),
        checkpoints: checkpoints.len(),
    })
}
