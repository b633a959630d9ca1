//! `GET /v1/policy`: the loaded policy and its SHA-256; `GET /v1/ropa`: the record of
//! processing activities generated from it (action `policy.read`).

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::AppState;
use crate::policy::ropa::RecordOfProcessing;
use crate::policy::{Field, Notice, Purpose, Role, SegmentLimits, Tracking};

/// The loaded policy.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct PolicyBody<'a> {
    /// SHA-256 of the policy files, as stored with every audit entry.
    pub(crate) sha256: &'a str,
    /// The files it was loaded from.
    pub(crate) files: &'a [String],
    /// Purposes, with effective categories.
    pub(crate) purposes: Vec<&'a Purpose>,
    /// Declared fields.
    pub(crate) fields: Vec<&'a Field>,
    /// Roles.
    pub(crate) roles: Vec<&'a Role>,
    /// Consent notices.
    pub(crate) notices: &'a [Notice],
    /// Segment limits.
    pub(crate) segments: SegmentLimits,
    /// How tracking-protocol messages get their purposes (`null`: no `[tracking]` table, the
    /// tracking routes collect nothing).
    pub(crate) tracking: Option<&'a Tracking>,
}

/// Shows the loaded policy.
#[utoipa::path(get, operation_id = "policy_show", path = "/v1/policy", tag = "policy", security(("bearer" = [])),
    responses((status = 200, description = "The loaded policy", body = PolicyBody)))]
pub(crate) async fn show(state: web::Data<AppState>) -> HttpResponse {
    let policy = &state.services.policy;
    HttpResponse::Ok().json(PolicyBody {
        sha256: policy.sha256(),
        files: policy.files(),
        purposes: policy.purposes().collect(),
        fields: policy.fields().collect(),
        roles: policy.roles().collect(),
        notices: policy.notices(),
        segments: policy.segment_limits(),
        tracking: policy.tracking(),
    })
}

/// How the record of processing is given.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct RopaQuery {
    /// `json` (the default) or `dpv`: W3C DPV JSON-LD (a `dpv:ROPA` of `dpv:Process`es; needs
    /// the policy's `[controller]`).
    pub(crate) format: Option<String>,
}

/// The record of processing activities (GDPR Art. 30(1)), generated from the loaded policy: per
/// purpose its legal basis, data categories and fields, retention and recipients.
#[utoipa::path(get, operation_id = "policy_ropa", path = "/v1/ropa", tag = "policy", security(("bearer" = [])),
    params(RopaQuery),
    responses((status = 200, description = "The record of processing activities (with `format=dpv`, as DPV JSON-LD)",
        content((RecordOfProcessing = "application/json"), (Object = "application/ld+json"))),
        (status = 422, description = "An unknown format, or `dpv` without a [controller] in the policy",
            body = super::problem::ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn ropa(
    state: web::Data<AppState>,
    query: web::Query<RopaQuery>,
) -> Result<HttpResponse, super::ApiError> {
    let policy = &state.services.policy;
    match query.format.as_deref() {
        None | Some("json") => Ok(HttpResponse::Ok().json(policy.record_of_processing())),
        Some("dpv") => {
            let record = crate::standards::iso27560::record_of_processing(policy).map_err(|_| {
                crate::rejection::Rejection::invalid(
                    "consent_records_not_configured",
                    "the DPV record of processing names the controller: the policy declares no [controller] (docs/standards.md)",
                )
            })?;
            Ok(HttpResponse::Ok()
                .content_type("application/ld+json")
                .json(record))
        }
        Some(_) => Err(crate::rejection::Rejection::invalid(
            "invalid_query",
            "`format` must be `json` or `dpv`",
        )
        .into()),
    }
}

/// The Global Privacy Control support resource (GPC specification §3.4), from the policy's
/// `[gpc]` table.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub(crate) struct GpcSupport {
    /// Always `true`: the site honours GPC signals.
    pub(crate) gpc: bool,
    /// When the controller last changed how it honours them (`YYYY-MM-DD`).
    #[serde(rename = "lastUpdate")]
    pub(crate) last_update: String,
}

/// Whether and since when the site honours Global Privacy Control, as the GPC specification
/// defines the resource; 404 when the policy has no `[gpc]` table.
#[utoipa::path(get, operation_id = "gpc_support", path = "/.well-known/gpc.json", tag = "policy",
    responses((status = 200, description = "GPC support", body = GpcSupport),
        (status = 404, description = "The policy declares no [gpc] table",
            body = super::problem::ProblemBody, content_type = "application/problem+json")))]
pub(crate) async fn gpc_support(
    state: web::Data<AppState>,
) -> Result<HttpResponse, super::ApiError> {
    let Some(gpc) = state.services.policy.standards().gpc.as_ref() else {
        return Err(crate::rejection::Rejection::not_found(
            "gpc_not_declared",
            "the policy declares no [gpc] table",
        )
        .into());
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "max-age=86400"))
        .json(GpcSupport {
            gpc: true,
            last_update: gpc.last_update.format("%Y-%m-%d").to_string(),
        }))
}
