//! `GET /v1/audit`, `GET /v1/audit/verify`, `GET /v1/audit/checkpoint` (action `audit.read`)
//! and `GET /v1/audit/checkpoint-key` (public).

use actix_web::{web, HttpResponse};
use chrono::DateTime;
use serde::{Deserialize, Serialize};

use super::consents::JwkSet;
use super::{ApiError, AppState};
use crate::app::trail::{self, LoggedEntry, TrailQuery};
use crate::audit::{Actor, Checkpoint, VerifyReport};
use crate::interactions::subject_not_found;
use crate::rejection::Rejection;
use crate::subjects::SubjectId;

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 500;

/// Filters of `GET /v1/audit`; all optional, combined with AND.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Entries about this person (the app's subject id, resolved to the person's pseudonym).
    #[param(min_length = 1)]
    pub(crate) subject_id: Option<String>,
    /// Entries by this API key id.
    #[param(min_length = 1)]
    pub(crate) actor: Option<String>,
    /// Entries of this action (`interactions.read` …).
    #[param(min_length = 1)]
    pub(crate) action: Option<String>,
    /// Entries naming this purpose.
    #[param(min_length = 1)]
    pub(crate) purpose: Option<String>,
    /// `allow` or `deny`.
    #[param(pattern = "^(allow|deny)$")]
    pub(crate) decision: Option<String>,
    /// At or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub(crate) from: Option<String>,
    /// Before this time (RFC 3339).
    #[param(format = DateTime)]
    pub(crate) to: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub(crate) limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub(crate) cursor: Option<String>,
}

/// A page of entries.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuditPage {
    /// Newest first.
    pub(crate) entries: Vec<LoggedEntry>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub(crate) next_cursor: Option<String>,
}

fn decode_cursor(text: &str) -> Result<i64, Rejection> {
    trail::seq_of(&crate::page::decode_cursor(text)?).ok_or_else(crate::page::invalid_cursor)
}

fn parse_time(name: &str, raw: Option<&str>) -> Result<Option<chrono::NaiveDateTime>, Rejection> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|time| time.naive_utc())
            .map_err(|_| {
                Rejection::bad_request(
                    "invalid_query",
                    format!("`{name}` must be an RFC 3339 time such as 2026-11-01T10:00:00Z"),
                )
            })
    })
    .transpose()
}

/// A token-like filter value: short, printable, no wildcards needed.
fn parse_token(name: &str, raw: Option<String>) -> Result<Option<String>, Rejection> {
    match raw {
        Some(value)
            if value.is_empty()
                || value.len() > 128
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) =>
        {
            Err(Rejection::bad_request(
                "invalid_query",
                format!("`{name}` must be 1 to 128 letters, digits, `.`, `_` or `-`"),
            ))
        }
        other => Ok(other),
    }
}

/// Queries the audit log, newest first.
#[utoipa::path(get, operation_id = "audit_list", path = "/v1/audit", tag = "audit", security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries", body = AuditPage),
        (status = 400, description = "A bad filter or cursor", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
        (status = 404, description = "No subject has this subject_id (or it was erased)",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    state: web::Data<AppState>,
    actor: Actor,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = crate::page::limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let decision = match query.decision.as_deref() {
        None => None,
        Some(value @ ("allow" | "deny")) => Some(value.to_owned()),
        Some(_) => {
            return Err(Rejection::bad_request(
                "invalid_query",
                "`decision` must be `allow` or `deny`",
            )
            .into())
        }
    };
    let before = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let subject_id = query
        .subject_id
        .as_deref()
        .map(|raw| SubjectId::parse(raw).map_err(|_| subject_not_found()))
        .transpose()?;
    let wanted = TrailQuery {
        subject_id,
        actor_key_id: parse_token("actor", query.actor)?,
        action: parse_token("action", query.action)?,
        purpose: parse_token("purpose", query.purpose)?,
        decision,
        from: parse_time("from", query.from.as_deref())?,
        to: parse_time("to", query.to.as_deref())?,
    };
    let page = trail::page(&state.services, &actor, wanted, limit, before).await?;
    Ok(HttpResponse::Ok().json(AuditPage {
        entries: page.items,
        next_cursor: page.next_cursor,
    }))
}

/// Verifies the whole chain: every hash, the sequence without gaps, the head, and every stored
/// signed checkpoint.
#[utoipa::path(get, operation_id = "audit_verify", path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "The verification's result (also when it fails)",
        body = VerifyReport)))]
pub(crate) async fn verify(
    state: web::Data<AppState>,
    actor: Actor,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(trail::verify(&state.services, &actor).await?))
}

/// Signs the chain's current head: keep the answer outside Custodia, and give it to
/// `custodia audit verify --checkpoint FILE` later to prove nothing it covers was removed or
/// rewritten.
#[utoipa::path(get, operation_id = "audit_checkpoint", path = "/v1/audit/checkpoint", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "A signed checkpoint", body = Checkpoint)))]
pub(crate) async fn checkpoint(
    state: web::Data<AppState>,
    actor: Actor,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(trail::checkpoint(&state.services, &actor).await?))
}

/// The public key (JWK set) that verifies audit checkpoints.
#[utoipa::path(get, operation_id = "audit_checkpoint_key", path = "/v1/audit/checkpoint-key", tag = "audit",
    responses((status = 200, description = "The checkpoint key", body = JwkSet)))]
pub(crate) async fn checkpoint_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(JwkSet {
        keys: vec![state.services.checkpoints.jwk()],
    })
}
