//! What erasures keep under a legal hold: read only for a holding purpose.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::audit_trail;
use super::{ApiError, AppState};
use crate::audit::{Actor, Entry};
use crate::auth::Principal;
use crate::interactions::parse_purpose;
use crate::policy::Action;
use crate::rejection::Rejection;
use crate::subjects::holds::{self, HeldInteraction};

/// The purpose a held record is read for.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HeldQuery {
    /// A purpose with a legal hold that holds the records (or a descendant of one); the
    /// caller's role must have `interactions.read` for it.
    pub purpose: String,
}

/// An erasure's held records usable for one purpose.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HeldPage {
    /// The erasure that kept them.
    pub erasure_id: String,
    /// The purpose they were read for.
    pub purpose: String,
    /// Oldest first, minimised to the fields the purpose may use.
    pub interactions: Vec<HeldInteraction>,
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
pub async fn held(
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
    let entry = Entry::new(&actor, holds::ACTION_READ)
        .purpose(&state.services.policy, &purpose)
        .target(path.as_str());
    if let Err(denial) = state.services.policy.authorize_purpose(
        principal.role.as_str(),
        Action::InteractionsRead,
        &purpose,
    ) {
        audit_trail::record(&request, entry.denied(denial.code()));
        return Err(Rejection::forbidden(
            denial.code(),
            format!(
                "role `{}` may not read data for purpose `{purpose}`",
                principal.role
            ),
        )
        .into());
    }
    let declared = state
        .services
        .policy
        .purpose(purpose.as_str())
        .cloned()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("a parsed purpose is not declared")))?;
    let erasure_id = path.into_inner();
    let (vault, policy, id) = (
        state.services.vault.clone(),
        state.services.policy.clone(),
        erasure_id.clone(),
    );
    let read = state
        .services
        .db
        .run(move |conn| {
            holds::read(
                conn,
                &vault,
                &policy,
                &id,
                &declared,
                Utc::now().naive_utc(),
            )
        })
        .await;
    let read = read?;
    let Some(records) = read else {
        return Err(not_found());
    };
    let entry = entry.pseudonym(Some(records.pseudonym.clone()));
    if !records.held_for_purpose {
        audit_trail::record(&request, entry.denied("purpose_not_held"));
        return Err(Rejection::forbidden(
            "purpose_not_held",
            format!("this erasure holds nothing for purpose `{purpose}`: held records may be used only for the purpose that holds them"),
        )
        .into());
    }
    let mut entry = entry.records(records.interactions.len());
    let categories: std::collections::BTreeSet<&str> = records
        .interactions
        .iter()
        .flat_map(|item| item.data.keys())
        .filter_map(|name| state.services.policy.field(name))
        .map(|field| field.category.as_str())
        .collect();
    for category in categories {
        entry.add_category(category);
    }
    audit_trail::record(&request, entry);
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(HeldPage {
            erasure_id,
            purpose: purpose.to_string(),
            interactions: records.interactions,
        }))
}
