//! `POST/GET /v1/keys`, `DELETE /v1/keys/{id}`: API key management (action `keys.manage`).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::app::keys;
use crate::audit::Actor;
use crate::auth::KeyInfo;

/// A request to create a key.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateKeyRequest {
    /// A human name for the key (1–100 characters).
    pub(crate) name: String,
    /// A role defined in the loaded policy.
    pub(crate) role: String,
}

/// A key as shown to administrators; never its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct KeyBody {
    /// The key id.
    pub(crate) id: String,
    /// The key's name.
    pub(crate) name: String,
    /// The key's role.
    pub(crate) role: String,
    /// When the key was created.
    pub(crate) created_at: DateTime<Utc>,
    /// The key id that created it; `null` when created with the CLI.
    pub(crate) created_by: Option<String>,
    /// When the key was revoked, if it was.
    pub(crate) revoked_at: Option<DateTime<Utc>>,
}

/// A new key: shown with its full API key, exactly once.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedKeyBody {
    /// The stored key.
    #[serde(flatten)]
    pub(crate) key: KeyBody,
    /// The API key to give to the app, `ck_<id>_<secret>`. It cannot be shown again.
    pub(crate) api_key: String,
}

/// The key list.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct KeyListBody {
    /// Every key, oldest first, revoked ones included.
    pub(crate) keys: Vec<KeyBody>,
}

fn utc(time: NaiveDateTime) -> DateTime<Utc> {
    time.and_utc()
}

impl From<KeyInfo> for KeyBody {
    fn from(info: KeyInfo) -> Self {
        KeyBody {
            id: info.id,
            name: info.name,
            role: info.role,
            created_at: utc(info.created_at),
            created_by: info.created_by,
            revoked_at: info.revoked_at.map(utc),
        }
    }
}

/// Creates an API key for a role.
#[utoipa::path(post, operation_id = "keys_create", path = "/v1/keys", tag = "keys", security(("bearer" = [])),
    request_body = CreateKeyRequest,
    responses(
        (status = 201, description = "The key, with its secret shown once", body = CreatedKeyBody),
        (status = 422, description = "Unknown role or bad name", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    state: web::Data<AppState>,
    actor: Actor,
    body: web::Json<CreateKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let created = keys::create(&state.services, &actor, request.name, request.role).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(CreatedKeyBody {
            key: created.info.into(),
            api_key: created.api_key.to_string(),
        }))
}

/// Lists every API key.
#[utoipa::path(get, operation_id = "keys_list", path = "/v1/keys", tag = "keys", security(("bearer" = [])),
    responses((status = 200, description = "All keys", body = KeyListBody)))]
pub(crate) async fn list(
    state: web::Data<AppState>,
    actor: Actor,
) -> Result<HttpResponse, ApiError> {
    let keys = keys::list(&state.services, &actor).await?;
    Ok(HttpResponse::Ok().json(KeyListBody {
        keys: keys.into_iter().map(KeyBody::from).collect(),
    }))
}

/// Revokes an API key; its tokens stop working within seconds in every process.
#[utoipa::path(delete, operation_id = "keys_revoke", path = "/v1/keys/{id}", tag = "keys", security(("bearer" = [])),
    params(("id" = String, Path, description = "The key id")),
    responses(
        (status = 200, description = "The revoked key", body = KeyBody),
        (status = 404, description = "No such key", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn revoke(
    state: web::Data<AppState>,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let revoked = keys::revoke(&state.services, &actor, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(KeyBody::from(revoked)))
}
