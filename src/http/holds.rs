//! What erasures keep under a legal hold: read only for a holding purpose.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::audit_trail;
use super::{ApiError, AppState};
use crate::app::holds as app;
use crate::audit::Actor;
use crate::auth::Principal;
use crate::interactions::parse_purpose;
use crate::subjects::holds::HeldInteraction;

/// The purpose a held record is read for.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeldQuery {
    /// A purpose with a legal hold that holds the records (or a descendant of one); the
    /// caller's role must have `interactions.read` for it.
    pub(crate) purpose: String,
}

/// An erasure's held records usable for one purpose.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct HeldPage {
    /// The erasure that kept them.
    pub(crate) erasure_id: String,
    /// The purpose they were read for.
    pub(crate) purpose: String,
    /// Oldest first, minimised to the fields the purpose may use.
    pub(crate) interactions: Vec<HeldInteraction>,
}

/// The interactions an erasure kept under a legal hold, for a holding purpose only: they name
/// no identifier, are minimised to the fields the purpose may use, and are gone once the hold
/// ends. Audited as `holds.read` under the erased person's pseudonym.
#[utoipa::path(get, operation_id = "holds_held", path = "/v1/erasures/{id}/held", tag = "subjects", security(("bearer" = [])),
    params(("id" = String, Path, description = "The erasure's id (the receipt's `jti`)"), HeldQuery),
    responses(
        (status = 200, description = "The held records usable for the purpose", body = HeldPage),
        (status = 403, description = "The role may not read for this purpose, or the hold does not hold anything for it",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No erasure with this id holds anything",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Unknown purpose",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn held(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<HeldQuery>,
) -> Result<HttpResponse, ApiError> {
    let not_found = || {
        ApiError::not_found(
            "hold_not_found",
            "no erasure with this id holds anything (it kept nothing, or its holds ended)",
        )
    };
    // Erasure ids are UUIDs in 32 hex digits: anything else names no erasure.
    if path.len() != 32 || !path.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let purpose = parse_purpose(&state.services.policy, &query.purpose)?;
    let erasure_id = path.into_inner();
    let role = principal.role.as_str();
    let read = app::read(
        &state.services,
        &actor,
        role,
        erasure_id.clone(),
        purpose.clone(),
    )
    .await;
    let interactions = audit_trail::settle(&request, read)?.ok_or_else(not_found)?;
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(HeldPage {
            erasure_id,
            purpose: purpose.to_string(),
            interactions,
        }))
}
