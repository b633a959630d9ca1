//! `POST /v1/auth/token`: an API key in, a short-lived bearer token out.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::app::access::{self, Exchanged};
use crate::policy::{Action, PurposeId};

/// The token request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenRequest {
    /// The API key, `ck_<key-id>_<secret>`.
    pub(crate) api_key: String,
}

/// The token response.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenResponse {
    /// The bearer token (a JWT carrying the key id and role).
    pub(crate) access_token: String,
    /// Always `Bearer`.
    pub(crate) token_type: &'static str,
    /// Seconds until the token expires.
    pub(crate) expires_in: u64,
    /// The key's role.
    pub(crate) role: String,
    /// What the role may do (a client such as the console shows only these).
    pub(crate) actions: Vec<Action>,
    /// The purposes the role may act for (each covers its descendants).
    #[schema(value_type = Vec<String>)]
    pub(crate) purposes: Vec<PurposeId>,
}

/// Exchanges an API key for a bearer token. Unknown, revoked and wrong keys all get the same
/// 401 after the same work.
#[utoipa::path(post, operation_id = "auth_issue_token", path = "/v1/auth/token", tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "A bearer token", body = TokenResponse),
        (status = 401, description = "The API key is not valid", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn issue_token(
    state: web::Data<AppState>,
    body: web::Json<TokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let api_key = zeroize::Zeroizing::new(body.into_inner().api_key);
    let Exchanged {
        token: issued,
        role,
    } = access::exchange(&state.services, api_key).await?;
    // The key was just checked against the loaded policy, so its role is in it.
    let (actions, purposes) = state
        .services
        .policy
        .role(role.as_str())
        .map(|held| (held.actions.clone(), held.purposes.clone()))
        .unwrap_or_default();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TokenResponse {
            access_token: issued.token,
            token_type: "Bearer",
            expires_in: issued.expires_in,
            role: role.to_string(),
            actions,
            purposes,
        }))
}
