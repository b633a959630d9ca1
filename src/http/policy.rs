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

/// The record of processing activities (GDPR Art. 30(1)), generated from the loaded policy: per
/// purpose its legal basis, data categories and fields, retention and recipients.
#[utoipa::path(get, operation_id = "policy_ropa", path = "/v1/ropa", tag = "policy", security(("bearer" = [])),
    responses((status = 200, description = "The record of processing activities",
        body = RecordOfProcessing)))]
pub(crate) async fn ropa(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.services.policy.record_of_processing())
}
