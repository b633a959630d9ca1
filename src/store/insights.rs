//! Insights' privacy budget and released answers (migration 000022, `docs/insights.md`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{insight_budget, insight_releases};
use super::{DbConnection, StoreError};
use crate::policy::{InsightBudget, PurposeId};

/// An answer released for a question on a day.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = insight_releases)]
pub struct ReleaseRow {
    /// The purpose asked for.
    pub purpose: String,
    /// The day (UTC, `YYYY-MM-DD`) of the budget it was charged to.
    pub day: String,
    /// SHA-256 (hex) of the question's canonical form.
    pub question_sha256: String,
    /// The answer as released (JSON: cells, intervals, bounds).
    pub answer: String,
    /// ε it spent, in millionths.
    pub epsilon_micros: i64,
    /// δ it spent, in 10⁻¹².
    pub delta_picos: i64,
    /// When.
    pub released_at: NaiveDateTime,
}

/// The answer released for this question on this day, if any.
pub(crate) fn release(
    conn: &mut DbConnection,
    purpose: &str,
    day: &str,
    question_sha256: &str,
) -> Result<Option<ReleaseRow>, StoreError> {
    Ok(insight_releases::table
        .find((purpose, day, question_sha256))
        .select(ReleaseRow::as_select())
        .first(conn)
        .optional()?)
}

/// Records a released answer.
pub(crate) fn insert_release(conn: &mut DbConnection, row: &ReleaseRow) -> Result<(), StoreError> {
    diesel::insert_into(insight_releases::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// What the purpose spent on `day`: (ε in millionths, δ in 10⁻¹²).
pub(crate) fn spent(
    conn: &mut DbConnection,
    purpose: &str,
    day: &str,
) -> Result<(i64, i64), StoreError> {
    Ok(insight_budget::table
        .find((purpose, day))
        .select((insight_budget::epsilon_micros, insight_budget::delta_picos))
        .first(conn)
        .optional()?
        .unwrap_or((0, 0)))
}

/// Spends `epsilon` and `delta` of the purpose's budget for `day` if the day's spending stays
/// within the caps; `false` (nothing spent) otherwise. One conditional update: on PostgreSQL a
/// concurrent charge waits for the row and the condition is checked again on what it committed,
/// so parallel charges can never overspend; SQLite has one writer at a time.
pub(crate) fn charge(
    conn: &mut DbConnection,
    purpose: &str,
    day: &str,
    (epsilon, delta): (i64, i64),
    (epsilon_cap, delta_cap): (i64, i64),
) -> Result<bool, StoreError> {
    let fresh = (
        insight_budget::purpose.eq(purpose),
        insight_budget::day.eq(day),
        insight_budget::epsilon_micros.eq(0i64),
        insight_budget::delta_picos.eq(0i64),
    );
    // `ON CONFLICT DO NOTHING` exists on both backends; `MultiConnection` cannot express it.
    match conn {
        DbConnection::Postgresql(pg) => diesel::insert_into(insight_budget::table)
            .values(fresh)
            .on_conflict_do_nothing()
            .execute(pg)?,
        DbConnection::Sqlite(sqlite) => diesel::insert_into(insight_budget::table)
            .values(fresh)
            .on_conflict_do_nothing()
            .execute(sqlite)?,
    };
    let charged = diesel::update(
        insight_budget::table
            .find((purpose, day))
            .filter((insight_budget::epsilon_micros + epsilon).le(epsilon_cap))
            .filter((insight_budget::delta_picos + delta).le(delta_cap)),
    )
    .set((
        insight_budget::epsilon_micros.eq(insight_budget::epsilon_micros + epsilon),
        insight_budget::delta_picos.eq(insight_budget::delta_picos + delta),
    ))
    .execute(conn)?;
    Ok(charged == 1)
}

/// Why a charge of several budgets stopped.
enum Stopped {
    Exhausted,
    Failed(StoreError),
}

impl From<StoreError> for Stopped {
    fn from(error: StoreError) -> Self {
        Stopped::Failed(error)
    }
}

/// [`charge`]s every budget of `budgets` (a purpose's chain) the same `cost`, all or none: in a
/// savepoint rolled back when one cannot pay; `false` then.
pub(crate) fn charge_all(
    conn: &mut DbConnection,
    day: &str,
    budgets: &[(PurposeId, InsightBudget)],
    cost: (i64, i64),
) -> Result<bool, StoreError> {
    let charged = super::transaction(conn, |conn| {
        for (purpose, budget) in budgets {
            let caps = (
                budget.epsilon_per_day_micros as i64,
                budget.delta_per_day_picos as i64,
            );
            if !charge(conn, purpose.as_str(), day, cost, caps)? {
                return Err(Stopped::Exhausted);
            }
        }
        Ok(())
    });
    match charged {
        Ok(()) => Ok(true),
        Err(Stopped::Exhausted) => Ok(false),
        Err(Stopped::Failed(error)) => Err(error),
    }
}

/// Forgets released answers and spending of days before `day` (`YYYY-MM-DD`): a day's answers
/// are only given again that day, and its budget only counts that day.
pub(crate) fn prune(conn: &mut DbConnection, day: &str) -> Result<usize, StoreError> {
    let releases = diesel::delete(insight_releases::table.filter(insight_releases::day.lt(day)))
        .execute(conn)?;
    let budgets =
        diesel::delete(insight_budget::table.filter(insight_budget::day.lt(day))).execute(conn)?;
    Ok(releases + budgets)
}
