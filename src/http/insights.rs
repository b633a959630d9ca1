//! `/v1/insights`: differentially private aggregates over time, and the privacy budget they
//! draw on (`docs/insights.md`).

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, AppState};
use crate::app::insights::{self, Answered, InsightError};
use crate::audit::Actor;
use crate::auth::Principal;
use crate::insights::Asked;
use crate::policy::{DELTA_UNITS, EPSILON_UNITS};

/// How much one person may contribute.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BoundRequest {
    /// Cells one person may count in (default: the number of time buckets, or 1).
    pub(crate) cells: Option<u32>,
    /// Interactions one person may add to one cell (interactions only; default 10).
    pub(crate) per_cell: Option<u32>,
}

/// A question.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InsightRequest {
    /// The purpose (the role must hold `insights.query` for it).
    pub(crate) purpose: String,
    /// A segment filter (SPEC §6) narrowing the people counted.
    #[schema(value_type = Option<Object>)]
    pub(crate) filter: Option<Value>,
    /// The first day counted (`YYYY-MM-DD`, UTC).
    pub(crate) from: String,
    /// The last day counted (included).
    pub(crate) to: String,
    /// `people` (with at least one usable interaction in the cell) or `interactions`.
    pub(crate) measure: String,
    /// Up to two of `day`, `week`, `month`, `type`, `channel`, `trait:<field>`.
    #[serde(default)]
    pub(crate) group_by: Vec<String>,
    /// The ε this question spends (default 0.1).
    pub(crate) epsilon: Option<f64>,
    /// Each person's contribution bound.
    pub(crate) bound: Option<BoundRequest>,
}

/// A released cell.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CellBody {
    /// The values of the group keys, by key.
    pub(crate) key: BTreeMap<String, String>,
    /// The noisy value.
    pub(crate) value: i64,
    /// Its 95 % interval.
    pub(crate) interval: [i64; 2],
}

/// What is left of the budgets a question drew on (the least of them).
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LeftBody {
    /// ε left today.
    pub(crate) epsilon_left: f64,
    /// δ left today.
    pub(crate) delta_left: f64,
    /// When the budgets start again (midnight UTC).
    pub(crate) resets_at: DateTime<Utc>,
}

/// The bound applied.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BoundBody {
    /// Cells per person.
    pub(crate) cells: u32,
    /// Per person and cell.
    pub(crate) per_cell: u32,
}

/// An answer.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InsightBody {
    /// The released cells; with keys from the data, the cells of values not selected are absent.
    pub(crate) cells: Vec<CellBody>,
    /// ε this answer spent (0: the answer released earlier today to the same question).
    pub(crate) epsilon_spent: f64,
    /// δ this answer spent.
    pub(crate) delta_spent: f64,
    /// Whether this is the answer released earlier today to the same question.
    pub(crate) repeated: bool,
    /// The least noisy number of people with a value for its cells to be released (`null`: no
    /// key from the data, every cell is).
    pub(crate) threshold: Option<i64>,
    /// The scale of the discrete Laplace noise.
    pub(crate) noise_scale: f64,
    /// The contribution bound applied.
    pub(crate) bound: BoundBody,
    /// The budget left.
    pub(crate) budget: LeftBody,
}

fn insight_body(Answered { question, release }: Answered) -> InsightBody {
    InsightBody {
        cells: release
            .released
            .cells
            .into_iter()
            .map(|cell| CellBody {
                key: cell.key,
                value: cell.value,
                interval: cell.interval,
            })
            .collect(),
        epsilon_spent: release.epsilon_spent,
        delta_spent: release.delta_spent,
        repeated: release.repeated,
        threshold: release.released.threshold,
        noise_scale: release.released.noise_scale,
        bound: BoundBody {
            cells: question.bound.cells,
            per_cell: question.bound.per_cell,
        },
        budget: LeftBody {
            epsilon_left: release.left.epsilon,
            delta_left: release.left.delta,
            resets_at: release.left.resets_at.and_utc(),
        },
    }
}

/// A differentially private aggregate over time for one purpose.
#[utoipa::path(post, operation_id = "insights_query", path = "/v1/insights", tag = "insights", security(("bearer" = [])),
    request_body = InsightRequest,
    responses(
        (status = 200, description = "The noisy cells with their intervals, and the budget left", body = InsightBody),
        (status = 403, description = "Purpose not permitted, or no budget declared for it",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "A bad question (naming what)",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "`privacy_budget_exhausted`: a budget the question draws on is spent until `Retry-After`",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn query(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    body: web::Json<InsightRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let asked = Asked {
        purpose: body.purpose,
        filter: body.filter,
        from: body.from,
        to: body.to,
        measure: body.measure,
        group_by: body.group_by,
        epsilon: body.epsilon,
        cells: body.bound.as_ref().and_then(|b| b.cells),
        per_cell: body.bound.as_ref().and_then(|b| b.per_cell),
    };
    match insights::ask(&state.services, &actor, principal.role.as_str(), asked).await {
        Ok(answered) => Ok(HttpResponse::Ok().json(insight_body(answered))),
        Err(InsightError::Exhausted {
            resets_at,
            retry_after,
        }) => Ok(super::limits::too_many(
            std::time::Duration::from_secs(retry_after.unsigned_abs()),
            "privacy_budget_exhausted",
            format!(
                "the privacy budget this question draws on is spent for today; it resets at {}",
                resets_at.and_utc().format("%Y-%m-%dT%H:%M:%SZ")
            ),
        )),
        Err(error) => Err(error.into()),
    }
}

/// One purpose's budget today.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BudgetBody {
    /// The purpose that declares it (its insights, and its descendants', draw on it).
    pub(crate) purpose: String,
    /// ε per day.
    pub(crate) epsilon_per_day: f64,
    /// ε spent today.
    pub(crate) epsilon_spent: f64,
    /// ε left today.
    pub(crate) epsilon_left: f64,
    /// δ per day.
    pub(crate) delta_per_day: f64,
    /// δ left today.
    pub(crate) delta_left: f64,
    /// When it starts again (midnight UTC).
    pub(crate) resets_at: DateTime<Utc>,
}

/// The budgets.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BudgetsBody {
    /// One per purpose the role may ask insights for that declares a budget.
    pub(crate) budgets: Vec<BudgetBody>,
}

/// The privacy budgets the caller's insights draw on, and what is left of them today.
#[utoipa::path(get, operation_id = "insights_budget", path = "/v1/insights/budget", tag = "insights", security(("bearer" = [])),
    responses(
        (status = 200, description = "Each budget and what is left today", body = BudgetsBody),
    ))]
pub(crate) async fn budget(
    state: web::Data<AppState>,
    principal: Principal,
) -> Result<HttpResponse, ApiError> {
    let budgets = insights::budgets_today(&state.services, principal.role.as_str()).await?;
    Ok(HttpResponse::Ok().json(BudgetsBody {
        budgets: budgets
            .into_iter()
            .map(|state| {
                let epsilon_per_day = state.budget.epsilon_per_day_micros as f64 / EPSILON_UNITS;
                let delta_per_day = state.budget.delta_per_day_picos as f64 / DELTA_UNITS;
                BudgetBody {
                    purpose: state.purpose.to_string(),
                    epsilon_per_day,
                    epsilon_spent: state.epsilon_spent,
                    epsilon_left: (epsilon_per_day - state.epsilon_spent).max(0.0),
                    delta_per_day,
                    delta_left: (delta_per_day - state.delta_spent).max(0.0),
                    resets_at: state.resets_at.and_utc(),
                }
            })
            .collect(),
    }))
}
