//! Limited segmentation for marketers (SPEC §6): counts of the people who have an effective
//! legal basis for a purpose and match a filter, computed in the database; sizes below the
//! policy's `min_size` (k) suppressed; a differencing guard; saved segments re-evaluated at read
//! time; activation lists of a segment's members.
//!
//! ## The differencing guard
//!
//! A marketer must not learn about one person by comparing two answers (a filter, then the same
//! filter minus that person). Every count revealed to an API key is remembered for
//! [`GUARD_WINDOW`] with a sketch of the people counted: how many fall in each of 64 buckets of
//! their random internal id. Two sets that differ by `d` people have sketches whose L1 distance
//! is at most `d`, so a distance of `k` or more proves the sets differ by at least `k` people.
//! A new count for the same key and purpose is refused (403 `differencing_refused`) when its
//! sketch is within distance `k` of one revealed in the window — unless it is the same filter
//! with the same sketch (a repeated question, no new information). So two answers a key
//! receives within the window never isolate fewer than `k` people. Limits are documented in
//! `docs/segments.md`.

pub mod filter;

use chrono::{Duration, SubsecRound, Utc};

use crate::audit::{self, Actor, Entry};
use crate::policy::{Action, DecisionRequest, Policy, Purpose, PurposeId};
use crate::rejection::Rejection;
use crate::store::segments::{self as segment_store, AnswerRow};
use crate::store::{write_transaction, DbConnection, StoreError};
use filter::Filter;

/// The audit action of a count (a preview, or reading a saved segment).
pub const ACTION_PREVIEW: &str = "segments.preview";
/// Saving a segment.
pub const ACTION_CREATE: &str = "segments.create";
/// Listing saved segments.
pub const ACTION_LIST: &str = "segments.list";
/// Exporting a segment's members (an activation list).
pub const ACTION_EXPORT: &str = "segments.export";

/// How long a revealed count counts against its key.
pub const GUARD_WINDOW: Duration = Duration::hours(24);

/// The bucket of a subject: the first character of its internal id (URL-safe base64 of random
/// bytes: 64 values, uniform).
const BUCKETS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Rule 1 for a purpose-bound segments action: the role must hold `action` and the purpose.
pub fn authorize<'a>(
    policy: &'a Policy,
    role: &str,
    action: Action,
    purpose: &str,
) -> Result<&'a Purpose, Rejection> {
    let declared = PurposeId::parse(purpose)
        .ok()
        .and_then(|id| policy.purpose(id.as_str()))
        .ok_or_else(|| {
            Rejection::invalid(
                "unknown_purpose",
                format!("unknown purpose `{}`", purpose.escape_debug()),
            )
        })?;
    policy
        .decide(&DecisionRequest {
            role,
            action,
            purpose: Some(&declared.id),
            categories: &[],
            subject: None,
        })
        .map_err(|denial| {
            Rejection::forbidden(
                denial.code(),
                format!(
                    "role `{role}` may not {} for purpose `{}`",
                    action.as_str(),
                    declared.id
                ),
            )
        })?;
    Ok(declared)
}

/// A count, with its sketch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Count {
    /// How many people.
    pub size: i64,
    /// How many in each bucket.
    pub sketch: Vec<i64>,
}

/// Counts, in the database, the people with a legal basis for `purpose` who match `filter`.
pub fn count(
    conn: &mut DbConnection,
    policy: &Policy,
    purpose: &Purpose,
    filter: &Filter,
) -> Result<Count, StoreError> {
    let rule = policy.population_rule(purpose);
    let now = Utc::now().naive_utc();
    let mut sketch = vec![0; BUCKETS.len()];
    let mut size = 0;
    for (bucket, people) in segment_store::count_by_bucket(conn, &rule, filter, now)? {
        if let Some(index) = bucket
            .bytes()
            .next()
            .and_then(|b| BUCKETS.iter().position(|c| *c == b))
        {
            sketch[index] += people;
        }
        size += people;
    }
    Ok(Count { size, sketch })
}

/// What a caller is told of a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The size.
    Revealed(i64),
    /// Below `min_size`: only that it is small.
    Suppressed,
    /// Too close to a count revealed earlier to this key.
    Refused,
}

fn sha256_hex(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

/// The L1 distance of two sketches: a lower bound on how many people the two sets differ by.
/// Sketches of another shape (none are written) count as far apart.
fn distance(left: &[i64], right: &[i64]) -> i64 {
    if left.len() != right.len() {
        return i64::MAX;
    }
    left.iter().zip(right).map(|(a, b)| (a - b).abs()).sum()
}

/// Decides what the caller may be told of `count` (suppression below `min_size`, then the
/// differencing guard), remembers a revealed count, and appends the audit entry (`action`, the
/// purpose, the true size as records, the filter's hash — or `target` — as target), in one
/// transaction.
#[allow(clippy::too_many_arguments)]
pub fn answer(
    conn: &mut DbConnection,
    policy: &Policy,
    actor: &Actor,
    purpose: &Purpose,
    filter: &Filter,
    count: &Count,
    action: &'static str,
    target: Option<String>,
) -> Result<Answer, StoreError> {
    let min_size = i64::from(policy.segment_limits().min_size);
    let filter_sha256 = sha256_hex(&filter.canonical());
    let key_id = actor.key_id.clone().unwrap_or_default();
    write_transaction(conn, |conn| {
        let now = Utc::now().naive_utc().trunc_subsecs(6);
        let mut entry = Entry::new(actor, action)
            .purpose(policy, &purpose.id)
            .target(target.unwrap_or_else(|| format!("filter:{filter_sha256}")))
            .records(count.size.max(0) as usize);
        let answer = if count.size < min_size {
            Answer::Suppressed
        } else {
            segment_store::lock_key(conn, &key_id)?;
            let earlier = segment_store::answers_since(
                conn,
                &key_id,
                purpose.id.as_str(),
                now - GUARD_WINDOW,
            )?;
            let too_close = earlier.iter().any(|answer| {
                let sketch: Vec<i64> = serde_json::from_str(&answer.sketch).unwrap_or_default();
                let d = distance(&count.sketch, &sketch);
                let repeated = answer.filter_sha256 == filter_sha256 && d == 0;
                !repeated && d < min_size
            });
            if too_close {
                entry = entry.denied("differencing_refused");
                Answer::Refused
            } else {
                segment_store::insert_answer(
                    conn,
                    &AnswerRow {
                        id: uuid::Uuid::now_v7().simple().to_string(),
                        key_id: key_id.clone(),
                        purpose: purpose.id.to_string(),
                        filter_sha256: filter_sha256.clone(),
                        size: count.size,
                        sketch: serde_json::to_string(&count.sketch).expect("numbers encode"),
                        answered_at: now,
                    },
                )?;
                Answer::Revealed(count.size)
            }
        };
        audit::append(conn, policy.sha256(), vec![entry])?;
        Ok(answer)
    })
}
