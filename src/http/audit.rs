//! `GET /v1/audit`, `GET /v1/audit/verify`, `GET /v1/audit/checkpoint` (action `audit.read`)
//! and `GET /v1/audit/checkpoint-key` (public).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::audit_trail;
use super::consents::JwkSet;
use super::{ApiError, AppState};
use crate::audit::{self, Actor, Checkpoint, Entry, VerifyReport};
use crate::interactions::subject_not_found;
use crate::rejection::Rejection;
use crate::store::audit::{self as audit_store, AuditFilter, AuditRow};
use crate::store::{write_transaction, StoreError};
use crate::subjects::{self, SubjectId};

/// The audit action of querying the log.
pub const ACTION_READ: &str = "audit.read";
/// The audit action of verifying the log.
pub const ACTION_VERIFY: &str = "audit.verify";
/// The audit action of signing a checkpoint on request.
pub const ACTION_CHECKPOINT: &str = "audit.checkpoint";

const DEFAULT_PAGE: i64 = 100;
const MAX_PAGE: i64 = 500;

/// Filters of `GET /v1/audit`; all optional, combined with AND.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Entries about this person (the app's subject id, resolved to the person's pseudonym).
    #[param(min_length = 1)]
    pub subject_id: Option<String>,
    /// Entries by this API key id.
    #[param(min_length = 1)]
    pub actor: Option<String>,
    /// Entries of this action (`interactions.read` …).
    #[param(min_length = 1)]
    pub action: Option<String>,
    /// Entries naming this purpose.
    #[param(min_length = 1)]
    pub purpose: Option<String>,
    /// `allow` or `deny`.
    #[param(pattern = "^(allow|deny)$")]
    pub decision: Option<String>,
    /// At or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// One audit entry.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditEntryBody {
    /// Position in the chain, from 1.
    pub seq: i64,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// The API key that acted (`null` for the command line).
    pub actor_key_id: Option<String>,
    /// That key's name, as whoever created it named it (`null` for the command line).
    pub actor_name: Option<String>,
    /// Its role (`operator` for the command line).
    pub role: Option<String>,
    /// What was done.
    pub action: String,
    /// What it was done to, when not a person (an API key id).
    pub target: Option<String>,
    /// The purposes.
    pub purposes: Vec<String>,
    /// Their legal bases.
    pub legal_bases: Vec<String>,
    /// The pseudonyms of the people it is about (never an identifier); several for a batch
    /// written in one request.
    pub subjects: Vec<String>,
    /// Data categories touched.
    pub categories: Vec<String>,
    /// How many records.
    pub records: i64,
    /// `allow` or `deny`.
    pub decision: String,
    /// The reason code of a denial.
    pub reason: Option<String>,
    /// SHA-256 of the policy in force.
    pub policy_hash: String,
    /// The request's id.
    pub request_id: Option<String>,
    /// The entry's chain hash.
    pub hash: String,
}

impl From<AuditRow> for AuditEntryBody {
    fn from(row: AuditRow) -> Self {
        let list = |text: &str| serde_json::from_str::<Vec<String>>(text).unwrap_or_default();
        AuditEntryBody {
            seq: row.seq,
            at: row.at.and_utc(),
            purposes: list(&row.purposes),
            legal_bases: list(&row.legal_bases),
            categories: list(&row.categories),
            subjects: list(&row.subjects),
            actor_key_id: row.actor_key_id,
            actor_name: None,
            role: row.role,
            action: row.action,
            target: row.target,
            records: row.records,
            decision: row.decision,
            reason: row.reason,
            policy_hash: row.policy_hash,
            request_id: row.request_id,
            hash: row.hash,
        }
    }
}

/// A page of entries.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntryBody>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

fn decode_cursor(text: &str) -> Result<i64, Rejection> {
    let invalid_cursor = crate::page::invalid_cursor;
    crate::page::decode_cursor(text)?
        .strip_prefix("seq:")
        .and_then(|seq| seq.parse::<i64>().ok())
        .filter(|seq| *seq > 0)
        .ok_or_else(invalid_cursor)
}

fn encode_cursor(seq: i64) -> String {
    crate::page::encode_cursor(&format!("seq:{seq}"))
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
pub async fn list(
    state: web::Data<AppState>,
    actor: Actor,
    request: HttpRequest,
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
    let mut filter = AuditFilter {
        subject: None,
        actor_key_id: parse_token("actor", query.actor)?,
        action: parse_token("action", query.action)?,
        purpose: parse_token("purpose", query.purpose)?,
        decision,
        from: parse_time("from", query.from.as_deref())?,
        to: parse_time("to", query.to.as_deref())?,
    };
    let vault = state.services.vault.clone();
    let (rows, pseudonym, names) = state
        .services
        .db
        .run(move |conn| -> Result<_, ApiError> {
            let mut pseudonym = None;
            if let Some(subject_id) = &subject_id {
                let subject =
                    subjects::find(conn, &vault, subject_id)?.ok_or_else(subject_not_found)?;
                pseudonym = Some(subject.key.pseudonym().to_owned());
                filter.subject.clone_from(&pseudonym);
            }
            let rows = audit_store::page(conn, &filter, before, limit + 1)?;
            let mut actors: Vec<&str> = rows
                .iter()
                .filter_map(|row| row.actor_key_id.as_deref())
                .collect();
            actors.sort_unstable();
            actors.dedup();
            let names: std::collections::HashMap<String, String> =
                crate::store::api_keys::names_of(conn, &actors)?
                    .into_iter()
                    .collect();
            Ok((rows, pseudonym, names))
        })
        .await?;
    let mut entries: Vec<AuditEntryBody> = rows
        .into_iter()
        .map(|row| {
            let name = row
                .actor_key_id
                .as_ref()
                .and_then(|id| names.get(id))
                .cloned();
            AuditEntryBody {
                actor_name: name,
                ..AuditEntryBody::from(row)
            }
        })
        .collect();
    let next_cursor = if entries.len() as i64 > limit {
        entries.truncate(limit as usize);
        entries.last().map(|entry| encode_cursor(entry.seq))
    } else {
        None
    };
    audit_trail::record(
        &request,
        Entry::new(&actor, ACTION_READ)
            .pseudonym(pseudonym)
            .records(entries.len()),
    );
    Ok(HttpResponse::Ok().json(AuditPage {
        entries,
        next_cursor,
    }))
}

/// Verifies the whole chain: every hash, the sequence without gaps, the head, and every stored
/// signed checkpoint.
#[utoipa::path(get, operation_id = "audit_verify", path = "/v1/audit/verify", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "The verification's result (also when it fails)",
        body = VerifyReport)))]
pub async fn verify(
    state: web::Data<AppState>,
    actor: Actor,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let state_for_work = state.clone();
    let report = state
        .services
        .db
        .run(move |conn| audit::verify(conn, &state_for_work.services.checkpoints, &[]))
        .await?;
    let entries = usize::try_from(report.entries).unwrap_or(0);
    audit_trail::record(&request, Entry::new(&actor, ACTION_VERIFY).records(entries));
    Ok(HttpResponse::Ok().json(report))
}

/// Signs the chain's current head: keep the answer outside Custodia, and give it to
/// `custodia audit verify --checkpoint FILE` later to prove nothing it covers was removed or
/// rewritten.
#[utoipa::path(get, operation_id = "audit_checkpoint", path = "/v1/audit/checkpoint", tag = "audit", security(("bearer" = [])),
    responses((status = 200, description = "A signed checkpoint", body = Checkpoint)))]
pub async fn checkpoint(
    state: web::Data<AppState>,
    actor: Actor,
    request: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let state_for_work = state.clone();
    let checkpoint = state
        .services
        .db
        .run_write(move |conn| {
            write_transaction(conn, |conn| {
                audit::sign_head(conn, &state_for_work.services.checkpoints)
            })
        })
        .await
        .map_err(|error: StoreError| ApiError::from(error))?;
    audit_trail::record(
        &request,
        Entry::new(&actor, ACTION_CHECKPOINT)
            .records(usize::try_from(checkpoint.size).unwrap_or(0)),
    );
    Ok(HttpResponse::Ok().json(checkpoint))
}

/// The public key (JWK set) that verifies audit checkpoints.
#[utoipa::path(get, operation_id = "audit_checkpoint_key", path = "/v1/audit/checkpoint-key", tag = "audit",
    responses((status = 200, description = "The checkpoint key", body = JwkSet)))]
pub async fn checkpoint_key(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(JwkSet {
        keys: vec![state.services.checkpoints.jwk()],
    })
}
