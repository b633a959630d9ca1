//! Insights as the API offers them (`docs/insights.md`): a question is checked, its exact
//! bounded aggregate computed (from the population index, or the database without one), the
//! noise added by OpenDP, and the answer released in one transaction that charges every budget
//! it draws on, records the release and appends the audit entry — or, when a budget is spent,
//! records only the refusal.

use std::collections::{BTreeMap, HashMap};

use chrono::{Days, NaiveDate, NaiveDateTime, SubsecRound};
use serde::{Deserialize, Serialize};

use super::segments::population_turn;
use super::Services;
use crate::audit::{self, Actor, Entry};
use crate::insights::mechanism::{self, MechanismError, Noisy};
use crate::insights::tally::random_seed;
use crate::insights::{budgets, Asked, GroupKey, Question, ACTION_QUERY, DELTA_SHARE};
use crate::policy::{
    Action, DecisionRequest, InsightBudget, Policy, PurposeId, DELTA_UNITS, EPSILON_UNITS,
};
use crate::rejection::Rejection;
use crate::segments::authorize;
use crate::segments::index::InsightTotals;
use crate::store::insights::{self as store, ReleaseRow};
use crate::store::{write_transaction, StoreError};

/// Why an insight was not answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InsightError {
    /// Refused as asked.
    #[error("refused: {}", .0.code)]
    Rejected(Rejection),
    /// Too many population queries are running.
    #[error("too many population queries are running")]
    Busy,
    /// A budget the question draws on cannot pay for it today (the refusal is audited).
    #[error("privacy budget exhausted")]
    Exhausted {
        /// When the budgets start again (the next midnight, UTC).
        resets_at: NaiveDateTime,
        /// Seconds until then.
        retry_after: i64,
    },
    /// The data cannot be numbered for a tally (more than 65,536 combinations of type,
    /// channel and purposes).
    #[error("insights cannot be computed over this data")]
    Unavailable,
    /// OpenDP refused the mechanism's parameters.
    #[error(transparent)]
    Mechanism(#[from] MechanismError),
    /// A released answer stored earlier does not parse.
    #[error("a released insight does not parse")]
    Corrupt,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Rejection> for InsightError {
    fn from(rejection: Rejection) -> Self {
        InsightError::Rejected(rejection)
    }
}

/// A released cell.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct CellAnswer {
    /// The group keys' values, by key name.
    pub(crate) key: BTreeMap<String, String>,
    /// The noisy value.
    pub(crate) value: i64,
    /// Its 95 % interval.
    pub(crate) interval: [i64; 2],
}

/// What is stored of a release, and given again to a repeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Released {
    /// The cells released (cells of values not selected are absent).
    pub(crate) cells: Vec<CellAnswer>,
    /// The threshold the number of people with a value had to reach for its cells to be
    /// released (`None`: no key from the data, every cell released).
    pub(crate) threshold: Option<i64>,
    /// The noise's scale (discrete Laplace).
    pub(crate) noise_scale: f64,
}

/// What is left of the budgets a question draws on (the least of them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Left {
    pub(crate) epsilon: f64,
    pub(crate) delta: f64,
    pub(crate) resets_at: NaiveDateTime,
}

/// An answer: the question as checked, and its release.
#[derive(Debug, Clone)]
pub(crate) struct Answered {
    pub(crate) question: Question,
    pub(crate) release: Release,
}

/// The budget day of an instant, and when it ends.
fn day_of(now: NaiveDateTime) -> (NaiveDate, NaiveDateTime) {
    let day = now.date();
    let resets_at = (day + Days::new(1)).and_time(chrono::NaiveTime::MIN);
    (day, resets_at)
}

/// What each budget of the chain may spend on one question: ε as asked; δ (for thresholds)
/// a tenth of the smallest daily δ of the chain.
fn delta_of(chain: &[(PurposeId, InsightBudget)], question: &Question) -> u64 {
    if !question.keys_from_data() {
        return 0;
    }
    chain
        .iter()
        .map(|(_, budget)| budget.delta_per_day_picos / DELTA_SHARE)
        .min()
        .unwrap_or(0)
}

/// What a release is charged and recorded as: the purpose asked for, the audit action, the
/// question's identity (a repeat that day gets the same answer), the filter's hash, the budgets
/// of the purpose's chain and what it costs each.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    pub(crate) purpose: PurposeId,
    pub(crate) action: &'static str,
    pub(crate) question_sha256: String,
    pub(crate) filter_sha256: String,
    /// Written before the rest of the audit target (a saved segment's id).
    pub(crate) target_prefix: Option<String>,
    pub(crate) chain: Vec<(PurposeId, InsightBudget)>,
    pub(crate) epsilon_micros: i64,
    pub(crate) delta_picos: i64,
}

/// A released answer, what it cost, and what is left.
#[derive(Debug, Clone)]
pub(crate) struct Release {
    pub(crate) released: Released,
    /// Whether this is the answer released earlier today to the same question.
    pub(crate) repeated: bool,
    /// ε charged to each budget (0 for a repeat).
    pub(crate) epsilon_spent: f64,
    /// δ charged to each budget (0 for a repeat).
    pub(crate) delta_spent: f64,
    /// What is left of the budgets.
    pub(crate) left: Left,
}

/// The chain of budgets for `purpose`, or the refusal when it has none.
pub(crate) fn chain_of(
    policy: &Policy,
    purpose: &PurposeId,
) -> Result<Vec<(PurposeId, InsightBudget)>, Rejection> {
    let chain = budgets(policy, purpose);
    if chain.is_empty() {
        return Err(Rejection::forbidden(
            "no_privacy_budget",
            format!(
                "purpose `{purpose}` has no insights budget in the policy: nothing noisy is answered for it"
            ),
        ));
    }
    Ok(chain)
}

/// Releases the answer of `ticket` once: the answer released earlier today to the same question
/// if there is one (free), otherwise `compute`'s, charged to every budget of the chain in the
/// transaction that records and audits it.
pub(crate) async fn release_once<F, Fut>(
    services: &Services,
    actor: &Actor,
    ticket: Ticket,
    compute: F,
) -> Result<Release, InsightError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<Released, InsightError>>,
{
    let now = services.clock.now_naive();
    let (day, resets_at) = day_of(now);
    let day = day.to_string();
    let earlier = {
        let (purpose, day, sha) = (
            ticket.purpose.to_string(),
            day.clone(),
            ticket.question_sha256.clone(),
        );
        services
            .db
            .run(move |conn| store::release(conn, &purpose, &day, &sha))
            .await?
    };
    let fresh = match earlier {
        Some(_) => None,
        None => Some(compute().await?),
    };
    let (policy, actor) = (services.policy.clone(), actor.clone());
    let released = services
        .db
        .run_write(move |conn| {
            write_transaction(conn, |conn| {
                release(conn, &policy, &actor, &ticket, (&day, resets_at), fresh)
            })
        })
        .await?;
    released.ok_or(InsightError::Exhausted {
        resets_at,
        retry_after: (resets_at - now).num_seconds().max(1),
    })
}

/// Answers a question for the caller's role.
pub(crate) async fn ask(
    services: &Services,
    actor: &Actor,
    role: &str,
    asked: Asked,
) -> Result<Answered, InsightError> {
    let policy = services.policy.clone();
    let declared = authorize(&policy, role, Action::InsightsQuery, &asked.purpose)?;
    let question = Question::parse(&policy, declared, &asked)?;
    let chain = chain_of(&policy, &question.purpose)?;
    let delta_picos = delta_of(&chain, &question);
    if question.keys_from_data() && delta_picos == 0 {
        return Err(Rejection::forbidden(
            "no_delta_budget",
            "grouping by type, channel or a trait releases only cells above a threshold, which spends δ; the policy gives this purpose's insights no δ (insights.delta_per_day)",
        )
        .into());
    }
    let ticket = Ticket {
        purpose: question.purpose.clone(),
        action: ACTION_QUERY,
        question_sha256: question.sha256(),
        filter_sha256: question.filter_sha256(),
        target_prefix: None,
        chain,
        epsilon_micros: question.epsilon_micros as i64,
        delta_picos: delta_picos as i64,
    };
    let release = release_once(services, actor, ticket, || {
        compute(services, &question, delta_picos as f64 / DELTA_UNITS)
    })
    .await?;
    Ok(Answered { question, release })
}

/// The noisy answer to a question, not yet released.
async fn compute(
    services: &Services,
    question: &Question,
    delta: f64,
) -> Result<Released, InsightError> {
    let (policy, index, asked) = (
        services.policy.clone(),
        services.population_index.clone(),
        question.clone(),
    );
    let turn = population_turn(services)
        .await
        .map_err(|_| InsightError::Busy)?;
    let now = services.clock.now_naive().trunc_subsecs(0);
    let totals = services
        .db
        .run(move |conn| {
            let declared = policy
                .purpose(asked.purpose.as_str())
                .expect("an authorized purpose is declared");
            let rule = policy.population_rule(declared);
            let seed = random_seed();
            match index.insight_totals(conn, &rule, &asked, now, seed)? {
                Some(totals) => Ok::<_, StoreError>(Some(totals)),
                None => crate::segments::index::insight_totals_from_database(
                    conn, &policy, &rule, &asked, now, seed,
                ),
            }
        })
        .await?;
    drop(turn);
    let totals = totals.ok_or(InsightError::Unavailable)?;
    noisy(question, totals, delta)
}

/// Adds the noise. Without keys from the data: every cell of the grid the question fixes
/// (time buckets, or the one cell), zeros included, with all of ε. With them, in two steps that
/// share ε half and half: the values of those keys are selected by the noisy number of people
/// who have them reaching a threshold (what spends δ; a value only one person has is not
/// selected but with probability δ), then every cell of the time buckets × the selected values
/// is released, zeros included.
fn noisy(question: &Question, totals: InsightTotals, delta: f64) -> Result<Released, InsightError> {
    let names: Vec<String> = question.group_by.iter().map(|k| k.name()).collect();
    let key_of = |values: &[String]| -> BTreeMap<String, String> {
        names.iter().cloned().zip(values.iter().cloned()).collect()
    };
    let epsilon = question.epsilon_micros as f64 / EPSILON_UNITS;
    let buckets: Vec<String> = match question.time_axis() {
        Some(axis) => (0..axis.buckets() as u32).map(|b| axis.label(b)).collect(),
        None => Vec::new(),
    };
    let time_at = question
        .group_by
        .iter()
        .position(|key| matches!(key, GroupKey::Time(_)));
    // The cells to release, each as its keys' values in the question's order.
    let (keys, threshold, cell_epsilon): (Vec<Vec<String>>, Option<i64>, f64) =
        if question.keys_from_data() {
            let values: Vec<Vec<String>> = totals.values.iter().map(|(v, _)| v.clone()).collect();
            let counts: HashMap<u32, i64> = totals
                .values
                .iter()
                .enumerate()
                .map(|(i, (_, n))| (i as u32, *n))
                .collect();
            let (selected, spent) = mechanism::select_above_threshold(
                &counts,
                question.selection_bound(),
                epsilon / 2.0,
                delta,
            )?;
            let mut selected: Vec<&Vec<String>> =
                selected.iter().map(|i| &values[*i as usize]).collect();
            selected.sort();
            let keys = match time_at {
                None => selected.into_iter().cloned().collect(),
                Some(at) => buckets
                    .iter()
                    .flat_map(|bucket| {
                        selected.iter().map(move |value| {
                            let mut key = (*value).clone();
                            key.insert(at, bucket.clone());
                            key
                        })
                    })
                    .collect(),
            };
            (keys, spent.threshold, epsilon / 2.0)
        } else if buckets.is_empty() {
            (vec![Vec::new()], None, epsilon)
        } else {
            (
                buckets.iter().map(|b| vec![b.clone()]).collect(),
                None,
                epsilon,
            )
        };
    let by_key: HashMap<Vec<String>, i64> = totals.cells.into_iter().collect();
    let counts: Vec<i64> = keys
        .iter()
        .map(|key| by_key.get(key).copied().unwrap_or(0))
        .collect();
    if counts.is_empty() {
        // Nothing selected: nothing to release (the selection already spent its share).
        let scale = question.bound.sensitivity() as f64 / cell_epsilon;
        return Ok(Released {
            cells: Vec::new(),
            threshold,
            noise_scale: scale,
        });
    }
    let (values, spent) = mechanism::release_all(&counts, question.bound, cell_epsilon)?;
    Ok(Released {
        cells: keys
            .iter()
            .zip(values)
            .map(|(key, Noisy { value, interval })| CellAnswer {
                key: key_of(key),
                value,
                interval,
            })
            .collect(),
        threshold,
        noise_scale: spent.scale,
    })
}

/// In the release's transaction: the answer released earlier today to the same question if
/// there is one (it spends nothing); otherwise every budget of the chain is charged (all or
/// none: a savepoint), the release recorded and audited; or, when a budget cannot pay, the
/// refusal audited and `None`.
fn release(
    conn: &mut crate::store::DbConnection,
    policy: &Policy,
    actor: &Actor,
    ticket: &Ticket,
    (day, resets_at): (&str, NaiveDateTime),
    fresh: Option<Released>,
) -> Result<Option<Release>, InsightError> {
    let purpose = ticket.purpose.as_str();
    let target = |epsilon: i64, delta: i64| {
        format!(
            "{}filter:{};question:{};epsilon:{};delta:{}",
            ticket
                .target_prefix
                .as_ref()
                .map(|prefix| format!("{prefix};"))
                .unwrap_or_default(),
            ticket.filter_sha256,
            ticket.question_sha256,
            epsilon as f64 / EPSILON_UNITS,
            delta as f64 / DELTA_UNITS
        )
    };
    let (epsilon_micros, delta_picos) = (ticket.epsilon_micros, ticket.delta_picos);
    let entry = Entry::new(actor, ticket.action).purpose(policy, &ticket.purpose);
    let earlier = store::release(conn, purpose, day, &ticket.question_sha256)?;
    let (released, repeated) = match (earlier, fresh) {
        (Some(row), _) => (
            serde_json::from_str::<Released>(&row.answer).map_err(|_| InsightError::Corrupt)?,
            true,
        ),
        (None, Some(released)) => {
            if !store::charge_all(conn, day, &ticket.chain, (epsilon_micros, delta_picos))? {
                audit::append(
                    conn,
                    policy.sha256(),
                    vec![entry
                        .target(target(epsilon_micros, delta_picos))
                        .denied("privacy_budget_exhausted")],
                )?;
                return Ok(None);
            }
            store::insert_release(
                conn,
                &ReleaseRow {
                    purpose: purpose.to_owned(),
                    day: day.to_owned(),
                    question_sha256: ticket.question_sha256.clone(),
                    answer: serde_json::to_string(&released).expect("an answer encodes"),
                    epsilon_micros,
                    delta_picos,
                    released_at: chrono::Utc::now().naive_utc().trunc_subsecs(6),
                },
            )?;
            (released, false)
        }
        // The release read before was pruned in between (a new day's retention): ask again.
        (None, None) => return Err(InsightError::Busy),
    };
    let (epsilon, delta) = if repeated {
        (0, 0)
    } else {
        (epsilon_micros, delta_picos)
    };
    audit::append(
        conn,
        policy.sha256(),
        vec![entry
            .target(target(epsilon, delta))
            .records(released.cells.len())],
    )?;
    Ok(Some(Release {
        released,
        repeated,
        epsilon_spent: epsilon as f64 / EPSILON_UNITS,
        delta_spent: delta as f64 / DELTA_UNITS,
        left: left_of(conn, &ticket.chain, day, resets_at)?,
    }))
}

/// What is left today of the budgets of a chain: the least of them.
fn left_of(
    conn: &mut crate::store::DbConnection,
    chain: &[(PurposeId, InsightBudget)],
    day: &str,
    resets_at: NaiveDateTime,
) -> Result<Left, StoreError> {
    let mut left = Left {
        epsilon: f64::INFINITY,
        delta: f64::INFINITY,
        resets_at,
    };
    for (purpose, budget) in chain {
        let (epsilon, delta) = store::spent(conn, purpose.as_str(), day)?;
        left.epsilon = left
            .epsilon
            .min((budget.epsilon_per_day_micros as i64 - epsilon).max(0) as f64 / EPSILON_UNITS);
        left.delta = left
            .delta
            .min((budget.delta_per_day_picos as i64 - delta).max(0) as f64 / DELTA_UNITS);
    }
    Ok(left)
}

/// A purpose's budget today, as the budget route shows it.
#[derive(Debug, Clone)]
pub(crate) struct BudgetState {
    pub(crate) purpose: PurposeId,
    pub(crate) budget: InsightBudget,
    pub(crate) epsilon_spent: f64,
    pub(crate) delta_spent: f64,
    pub(crate) resets_at: NaiveDateTime,
}

/// The budgets the role's insights may draw on: every purpose that declares one and that the
/// role may ask insights for.
pub(crate) async fn budgets_today(
    services: &Services,
    role: &str,
) -> Result<Vec<BudgetState>, InsightError> {
    let policy = services.policy.clone();
    let declared: Vec<(PurposeId, InsightBudget)> = policy
        .purposes()
        .filter(|purpose| {
            policy
                .decide(&DecisionRequest {
                    role,
                    action: Action::InsightsQuery,
                    purpose: Some(&purpose.id),
                    categories: &[],
                    subject: None,
                })
                .is_ok()
        })
        .filter_map(|purpose| Some((purpose.id.clone(), purpose.insights?)))
        .collect();
    let (day, resets_at) = day_of(services.clock.now_naive());
    let day = day.to_string();
    Ok(services
        .db
        .run(move |conn| {
            declared
                .into_iter()
                .map(|(purpose, budget)| {
                    let (epsilon, delta) = store::spent(conn, purpose.as_str(), &day)?;
                    Ok(BudgetState {
                        purpose,
                        budget,
                        epsilon_spent: epsilon as f64 / EPSILON_UNITS,
                        delta_spent: delta as f64 / DELTA_UNITS,
                        resets_at,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()
        })
        .await?)
}
