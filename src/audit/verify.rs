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
    let checkpoints = signed_checkpoints(conn, signer, external, &mut failures)?;
    let wanted: BTreeSet<i64> = checkpoints.iter().map(|c| c.size).collect();
    let mut walk = walk_chain(conn, &wanted)?;
    walk.entries += unchained_rows(conn, &walk, &mut failures)?;
    match walk.failure.take() {
        Some(failure) => failures.push(failure),
        None => {
            check_head(conn, &walk, &mut failures)?;
            check_checkpoints(&checkpoints, &walk, &mut failures);
        }
    }
    let first = failures
        .iter()
        .filter(|failure| failure.seq.is_some())
        .min_by_key(|failure| failure.seq)
        .or_else(|| failures.first());
    Ok(VerifyReport {
        ok: failures.is_empty(),
        entries: walk.entries,
        first_invalid: first.and_then(|failure| failure.seq),
        reason: first.map(|failure| failure.reason),
        detail: first.map(|failure| failure.detail.clone()),
        checkpoints: checkpoints.len(),
    })
}

/// The stored and external checkpoints whose signatures verify, by size; each that does not
/// is a failure.
fn signed_checkpoints(
    conn: &mut DbConnection,
    signer: &JwsSigner,
    external: &[Checkpoint],
    failures: &mut Vec<Failure>,
) -> Result<Vec<Checkpoint>, StoreError> {
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
    Ok(checkpoints)
}

/// What a walk along the chain found.
struct Walk {
    /// Rows read (all of them, also past a failure).
    entries: i64,
    /// The last entry that verified (0: none).
    verified: i64,
    /// Its hash.
    last_hash: String,
    /// The hashes at the sizes a checkpoint names.
    hashes_at: HashMap<i64, String>,
    /// The first entry that does not verify.
    failure: Option<Failure>,
}

/// Walks the chain from its start, a chunk at a time: each entry in sequence, matching its
/// hash and its index of people named; stops checking at the first that does not (but counts
/// the rest).
fn walk_chain(conn: &mut DbConnection, wanted: &BTreeSet<i64>) -> Result<Walk, StoreError> {
    let mut walk = Walk {
        entries: 0,
        verified: 0,
        last_hash: GENESIS_HASH.to_owned(),
        hashes_at: HashMap::from([(0, GENESIS_HASH.to_owned())]),
        failure: None,
    };
    let mut last_seen = 0;
    loop {
        let rows = audit_store::range(conn, last_seen, CHUNK)?;
        let Some(last) = rows.last() else { break };
        last_seen = last.seq;
        walk.entries += rows.len() as i64;
        if walk.failure.is_some() {
            continue;
        }
        let mut named: HashMap<i64, BTreeSet<i64>> = HashMap::new();
        for link in audit_store::subjects_between(conn, rows[0].seq, last_seen)? {
            named.entry(link.seq).or_default().insert(link.subject_key);
        }
        for row in rows {
            let expected = walk.verified + 1;
            let named_here = named.remove(&row.seq).unwrap_or_default();
            if let Some(failure) = check_entry(&row, expected, &walk.last_hash, named_here) {
                walk.failure = Some(failure);
                break;
            }
            if wanted.contains(&row.seq) {
                walk.hashes_at.insert(row.seq, row.hash.clone());
            }
            walk.last_hash = row.hash;
            walk.verified = expected;
        }
    }
    Ok(walk)
}

/// Whether `row` is entry `expected` of the chain, follows `prev`, and is indexed under exactly
/// the people it names.
fn check_entry(
    row: &audit_store::AuditRow,
    expected: i64,
    prev: &str,
    named: BTreeSet<i64>,
) -> Option<Failure> {
    if row.seq != expected {
        return Some(Failure {
            seq: Some(expected),
            reason: "missing_entry",
            detail: format!(
                "entry {expected} is missing (the next entry is {})",
                row.seq
            ),
        });
    }
    if entry_hash(row, prev) != row.hash {
        return Some(Failure {
            seq: Some(row.seq),
            reason: "hash_mismatch",
            detail: format!(
                "entry {} does not match its hash: it, or its place in the chain, was changed",
                row.seq
            ),
        });
    }
    let listed: BTreeSet<i64> = serde_json::from_str::<Vec<String>>(&row.subjects)
        .unwrap_or_default()
        .iter()
        .map(|subject| audit_store::subject_key(subject))
        .collect();
    if named != listed {
        return Some(Failure {
            seq: Some(row.seq),
            reason: "index_mismatch",
            detail: format!(
                "the index of people named by entry {} differs from the entry",
                row.seq
            ),
        });
    }
    None
}

/// Every row of the table is accounted for, not only those the walk reached: a row outside
/// the chain (`seq` 0 or below, say with another entry's hash copied into it) is never
/// walked, so it is counted and found here. Returns how many such rows there are.
fn unchained_rows(
    conn: &mut DbConnection,
    walk: &Walk,
    failures: &mut Vec<Failure>,
) -> Result<i64, StoreError> {
    let (unchained_rows, lowest_unchained) = audit_store::unchained(conn)?;
    if let Some(seq) = lowest_unchained {
        failures.push(Failure {
            seq: Some(seq),
            reason: "unchained_entry",
            detail: format!("a row with seq {seq} is not a chain position (entries count from 1)"),
        });
    }
    let verified = walk.verified;
    let rows_in_walk = audit_store::count_up_to(conn, verified)?;
    if walk.failure.is_none() && rows_in_walk != verified {
        failures.push(Failure {
            seq: None,
            reason: "unchained_entry",
            detail: format!(
                "the table holds {rows_in_walk} rows up to entry {verified}, not {verified}"
            ),
        });
    }
    Ok(unchained_rows)
}

/// The head moves in the same transaction as the entries, so it is never behind an entry that
/// was read; ahead of them only if entries were appended since (fine) or the tail was deleted.
fn check_head(
    conn: &mut DbConnection,
    walk: &Walk,
    failures: &mut Vec<Failure>,
) -> Result<(), StoreError> {
    let verified = walk.verified;
    let (head_seq, head_hash) = audit_store::head(conn)?;
    if head_seq < verified {
        failures.push(Failure {
            seq: Some(head_seq + 1),
            reason: "head_mismatch",
            detail: format!("entries after the head ({head_seq}) exist"),
        });
    } else if head_seq == verified && head_hash != walk.last_hash {
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
    Ok(())
}

/// Each checkpoint, smallest first, must lie within the chain and match its hash there; the
/// first that does not is the failure.
fn check_checkpoints(checkpoints: &[Checkpoint], walk: &Walk, failures: &mut Vec<Failure>) {
    let verified = walk.verified;
    let mut last_matching = 0;
    for checkpoint in checkpoints {
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
            return;
        }
        if walk.hashes_at.get(&checkpoint.size) != Some(&checkpoint.head_hash) {
            failures.push(Failure {
                seq: Some(last_matching + 1),
                reason: "checkpoint_mismatch",
                detail: format!(
                    "entry {} differs from the checkpoint signed at {}: history after entry {last_matching} was rewritten",
                    checkpoint.size,
                    checkpoint.time.to_rfc3339()
                ),
            });
            return;
        }
        last_matching = checkpoint.size;
    }
}
