//! Limited segmentation for marketers (SPEC §6): counts of the people who have an effective
//! legal basis for a purpose and match a filter, computed in the database; sizes below the
//! policy's `min_size` (k) suppressed; a differencing guard; saved segments re-evaluated at read
//! time; activation lists of a segment's members.
//!
//! ## The differencing guard
//!
//! A marketer must not learn about one person by comparing two answers (a filter, then the same
//! filter minus that person). Every question an API key asks is remembered for [`GUARD_WINDOW`]
//! with a sketch of the people counted: how many fall in each of 64 buckets of their random
//! internal id. Two sets that differ by `d` people have sketches whose L1 distance is at most
//! `d`, so a distance of `k` or more proves the sets differ by at least `k` people. A new count
//! for the same key and purpose is withheld when its sketch is within distance `k` of any
//! question asked in the window — whatever that question was answered — unless it is the same
//! filter with the same sketch (a repeated question gets the same answer). Withheld answers
//! look exactly like sizes below `k` (`{"size": null, "suppressed": true}`), so the caller cannot
//! tell a refusal from a small set; the audit log can (`differencing_refused`). A key that was
//! given `max_withheld` withheld answers in the window gets 429 until they age out, and
//! every `alert_refusals` refusals of one key raise a `segments.probe_alert` audit entry. The
//! guarantee and its limits are in `docs/segments.md`.

pub mod filter;
pub mod index;

use chrono::{Duration, NaiveDateTime, SubsecRound, Utc};

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

/// Forgets the questions asked before the guard's window (they no longer count against
/// anyone), as of `now`; returns how many. Run by retention.
pub fn forget_old_answers(
    conn: &mut DbConnection,
    now: NaiveDateTime,
) -> Result<usize, StoreError> {
    segment_store::prune_answers(conn, now - GUARD_WINDOW)
}

/// The bucket of a subject: the first character of its internal id (URL-safe base64 of random
/// bytes: 64 values, uniform).
const BUCKETS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Rule 1 for a purpose-bound segments action: the role must hold `action` and the purpose.
pub(crate) fn authorize<'a>(
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

/// Counts the people with a legal basis for `purpose` who match `filter`: from the process's
/// population index when one is given and can answer, otherwise in the database (in the
/// caller's transaction). Interactions are looked back from now in whole seconds (the index
/// keeps an interaction's time to the second).
pub(crate) fn count(
    conn: &mut DbConnection,
    index: Option<&index::PopulationIndex>,
    policy: &Policy,
    purpose: &Purpose,
    filter: &Filter,
) -> Result<Count, StoreError> {
    let rule = policy.population_rule(purpose);
    let now = Utc::now().naive_utc().trunc_subsecs(0);
    let mut sketch = vec![0; BUCKETS.len()];
    let mut size = 0;
    let from_index = match index {
        Some(index) => index.count(conn, purpose.id.as_str(), &rule, filter, now)?,
        None => None,
    };
    let counts = match from_index {
        Some(counts) => counts,
        None => segment_store::count_by_bucket(conn, &rule, filter, now)?,
    };
    for (bucket, people) in counts {
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Answer {
    /// The size.
    Revealed(i64),
    /// Withheld: below `min_size`, or too close to another question this key asked in the
    /// window. The caller is told the same in both cases.
    Withheld,
    /// The key was given [`crate::policy::SegmentLimits::max_withheld`] withheld answers in the window: no more
    /// counts until the oldest of them leaves it (`retry_after`).
    Limited {
        /// Seconds until the oldest withheld answer leaves the window.
        retry_after: i64,
    },
    /// A noisy size (`[segments] counts = "noisy"`), drawn from the purpose's insights budget.
    Noisy {
        /// The size plus noise, at least 0.
        size: i64,
        /// Its 95 % interval.
        interval: [i64; 2],
        /// ε it spent (0: the size released earlier today for the same filter).
        epsilon_spent: f64,
    },
    /// A noisy size could not be paid for: the purpose's budget is spent until `resets_at`.
    BudgetExhausted {
        /// Seconds until the budget resets.
        retry_after: i64,
    },
}

/// What a question was answered, as the guard remembers it (`segment_answers.outcome`); the
/// caller is never told whether a withheld answer was suppressed or refused.
const REVEALED: &str = "revealed";
const SUPPRESSED: &str = "suppressed";
const REFUSED: &str = "refused";
const WITHHELD: [&str; 2] = [SUPPRESSED, REFUSED];

/// The audit action raised when a key's differencing refusals reach the policy's
/// `alert_refusals` (and every as many more) within the window: compliance filters on it.
pub const ACTION_PROBE_ALERT: &str = "segments.probe_alert";

/// The L1 distance of two sketches: a lower bound on how many people the two sets differ by.
/// Sketches of another shape (none are written) count as far apart.
fn distance(left: &[i64], right: &[i64]) -> i64 {
    if left.len() != right.len() {
        return i64::MAX;
    }
    left.iter().zip(right).map(|(a, b)| (a - b).abs()).sum()
}

/// Decides what the caller may be told of `count`, remembers the question, and appends the
/// audit entry (`action`, the purpose, the true size as records, the filter's hash — or
/// `target` — as target), in one transaction.
///
/// The order of the decision (see `docs/segments.md`):
/// 1. A key past its `max_withheld` withheld answers in the window is [`Answer::Limited`] —
///    decided only from what the key was already told, so the limit reveals nothing new.
/// 2. The same filter with the same sketch as a question asked in the window gets that
///    question's answer again (no new information).
/// 3. The guard, before suppression: a sketch within distance `min_size` of any other
///    question asked in the window — revealed, suppressed or refused alike — is withheld.
/// 4. Below `min_size`: withheld.
/// 5. Otherwise revealed.
///
/// Every question that is not a repeat is remembered, whatever its answer, so what the guard
/// compares against does not depend on the answers. Withheld answers look the same to the
/// caller whether they were suppressed or refused; only the audit log tells them apart.
#[allow(clippy::too_many_arguments)]
pub(crate) fn answer(
    conn: &mut DbConnection,
    policy: &Policy,
    actor: &Actor,
    purpose: &Purpose,
    filter: &Filter,
    count: &Count,
    action: &'static str,
    target: Option<String>,
) -> Result<Answer, StoreError> {
    let limits = policy.segment_limits();
    let min_size = i64::from(limits.min_size);
    let filter_sha256 = filter.sha256();
    let key_id = actor.key_id.clone().unwrap_or_default();
    write_transaction(conn, |conn| {
        let now = Utc::now().naive_utc().trunc_subsecs(6);
        let since = now - GUARD_WINDOW;
        let mut entries = Vec::new();
        let entry = Entry::new(actor, action)
            .purpose(policy, &purpose.id)
            .target(target.unwrap_or_else(|| format!("filter:{filter_sha256}")))
            .records(count.size.max(0) as usize);
        segment_store::lock_key(conn, &key_id)?;
        let withheld = segment_store::outcomes_since(conn, &key_id, &WITHHELD, since)?;
        if withheld >= i64::from(limits.max_withheld) {
            let oldest =
                segment_store::oldest_since(conn, &key_id, &WITHHELD, since)?.unwrap_or(now);
            let retry_after = (oldest + GUARD_WINDOW - now).num_seconds().max(1);
            audit::append(
                conn,
                policy.sha256(),
                vec![entry.denied("segment_probe_limit")],
            )?;
            return Ok(Answer::Limited { retry_after });
        }
        let earlier = segment_store::answers_since(conn, &key_id, purpose.id.as_str(), since)?;
        let sketches: Vec<(&AnswerRow, i64)> = earlier
            .iter()
            .map(|row| {
                let sketch: Vec<i64> = serde_json::from_str(&row.sketch).unwrap_or_default();
                (row, distance(&count.sketch, &sketch))
            })
            .collect();
        let repeated = sketches
            .iter()
            .find(|(row, d)| row.filter_sha256 == filter_sha256 && *d == 0)
            .map(|(row, _)| row.outcome.clone());
        let outcome = match repeated {
            Some(outcome) => outcome,
            None => {
                // A small size is suppressed whether or not it is also too close; only a size
                // the guard alone withholds counts as a refusal (and towards the alert).
                let outcome = if count.size < min_size {
                    SUPPRESSED
                } else if sketches.iter().any(|(_, d)| *d < min_size) {
                    REFUSED
                } else {
                    REVEALED
                };
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
                        outcome: outcome.to_owned(),
                    },
                )?;
                if outcome == REFUSED {
                    let refusals = segment_store::outcomes_since(conn, &key_id, &[REFUSED], since)?;
                    let every = i64::from(limits.alert_refusals);
                    if refusals % every == 0 {
                        entries.push(
                            Entry::new(actor, ACTION_PROBE_ALERT)
                                .purpose(policy, &purpose.id)
                                .target(format!("key:{key_id}"))
                                .records(refusals as usize),
                        );
                    }
                }
                outcome.to_owned()
            }
        };
        let entry = if outcome == REFUSED {
            entry.denied("differencing_refused")
        } else {
            entry
        };
        entries.insert(0, entry);
        let answer = if outcome == REVEALED {
            Answer::Revealed(count.size)
        } else {
            Answer::Withheld
        };
        audit::append(conn, policy.sha256(), entries)?;
        Ok(answer)
    })
}
