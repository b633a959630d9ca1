//! Operations endpoints: liveness, readiness and metrics. Public, and free of personal data.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::{ApiError, AppState};

/// The answer of `/healthz` and `/readyz`.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HealthBody {
    /// `ok` or `ready`.
    pub(crate) status: &'static str,
    /// The database backend (`sqlite` or `postgres`); only on `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) database: Option<&'static str>,
}

/// The process is up.
#[utoipa::path(get, operation_id = "ops_healthz", path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = HealthBody)))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(HealthBody {
        status: "ok",
        database: None,
    })
}

/// The service can answer requests: the database is reachable.
#[utoipa::path(get, operation_id = "ops_readyz", path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = HealthBody),
        (status = 503, description = "The database is unreachable", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let backend = crate::app::ready(&state.services)
        .await
        .map_err(super::problem::failure)?;
    Ok(HttpResponse::Ok().json(HealthBody {
        status: "ready",
        database: Some(backend),
    }))
}

/// Prometheus text exposition of request counts and latencies.
#[utoipa::path(get, operation_id = "ops_metrics", path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.web.metrics.render())
}
