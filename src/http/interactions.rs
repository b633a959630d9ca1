//! `POST /v1/interactions`, `POST /v1/interactions/batch`,
//! `GET /v1/subjects/{subject_id}/interactions`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::audit_trail;
use super::consents::has_gpc;
use super::{ApiError, AppState};
use crate::app::interactions as app;
use crate::audit::Actor;
use crate::auth::Principal;
use crate::interactions::{
    parse_purpose, Cursor, Outcome, PurposeRejection, RawInteraction, DEFAULT_PAGE, MAX_BATCH,
};
use crate::rejection::describe_serde_message;
use crate::rejection::Rejection;
use crate::subjects::SubjectId;

/// The largest batch body accepted, in bytes.
pub(crate) const BATCH_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// One interaction.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct InteractionRequest {
    /// The app's id for this interaction; re-sending it for the same subject is harmless.
    pub(crate) id: String,
    /// The app's id for the person; an unknown one creates the subject.
    pub(crate) subject_id: String,
    /// What happened (`purchase`, `support_chat` …): lowercase letters, digits, `_ . -`.
    #[serde(rename = "type")]
    pub(crate) interaction_type: String,
    /// Through which channel (`web`, `email` …).
    pub(crate) channel: String,
    /// When it happened, RFC 3339.
    pub(crate) occurred_at: String,
    /// The purposes it is collected for.
    pub(crate) purposes: Vec<String>,
    /// Declared fields only; strings or numbers.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub(crate) data: Map<String, Value>,
}

impl From<InteractionRequest> for RawInteraction {
    fn from(request: InteractionRequest) -> Self {
        RawInteraction {
            id: request.id,
            subject_id: request.subject_id,
            anonymous: false,
            interaction_type: request.interaction_type,
            channel: request.channel,
            occurred_at: request.occurred_at,
            purposes: request.purposes,
            data: request.data,
        }
    }
}

/// A purpose that was not accepted.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RejectionBody {
    /// The purpose.
    pub(crate) purpose: String,
    /// The reason code (`no_consent`, `objected`, …).
    pub(crate) reason: &'static str,
}

/// What happened to one interaction.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InteractionResult {
    /// The app's id.
    pub(crate) id: String,
    /// Purposes it is stored with.
    pub(crate) purposes_accepted: Vec<String>,
    /// Purposes that had no legal basis.
    pub(crate) purposes_rejected: Vec<String>,
    /// Why each rejected purpose was rejected.
    pub(crate) rejections: Vec<RejectionBody>,
    /// Whether it had already been stored (nothing new was written).
    pub(crate) duplicate: bool,
}

fn rejections(rejected: &[PurposeRejection]) -> Vec<RejectionBody> {
    rejected
        .iter()
        .map(|r| RejectionBody {
            purpose: r.purpose.to_string(),
            reason: r.reason.code(),
        })
        .collect()
}

fn no_legal_basis(rejected: &[PurposeRejection]) -> ApiError {
    let reasons: Vec<String> = rejected
        .iter()
        .map(|r| format!("{} ({})", r.purpose, r.reason.code()))
        .collect();
    ApiError::unprocessable(
        "no_legal_basis",
        format!(
            "nothing was stored: no purpose has a legal basis for this person now: {}",
            reasons.join(", ")
        ),
    )
}

fn result_of(outcome: Outcome) -> Result<InteractionResult, ApiError> {
    match outcome {
        Outcome::Stored {
            client_id,
            accepted,
            rejected,
            duplicate,
        } => Ok(InteractionResult {
            id: client_id,
            purposes_accepted: accepted.iter().map(ToString::to_string).collect(),
            purposes_rejected: rejected.iter().map(|r| r.purpose.to_string()).collect(),
            rejections: rejections(&rejected),
            duplicate,
        }),
        Outcome::NoLegalBasis { rejected } => Err(no_legal_basis(&rejected)),
        Outcome::Suppressed => Err(super::problem::suppressed()),
    }
}

/// Records one interaction.
#[utoipa::path(post, operation_id = "interactions_create", path = "/v1/interactions", tag = "interactions", security(("bearer" = [])),
    request_body = InteractionRequest,
    responses(
        (status = 201, description = "Stored", body = InteractionResult),
        (status = 200, description = "Already stored earlier (same id for the same subject)", body = InteractionResult),
        (status = 422, description = "Invalid, or no purpose has a legal basis; nothing stored",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "The role may not collect for a purpose",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    body: web::Json<InteractionRequest>,
) -> Result<HttpResponse, ApiError> {
    let gpc = has_gpc(request.headers());
    let item = Ok(body.into_inner().into());
    let mut results = app::collect(&state.services, &principal, &actor, vec![item], gpc).await?;
    let outcome = audit_trail::settle(&request, results.remove(0))?;
    if matches!(outcome, Outcome::Suppressed) {
        // Refused before storing, and audited so.
        audit_trail::denial_recorded(&request);
    }
    let result = result_of(outcome)?;
    Ok(if result.duplicate {
        HttpResponse::Ok().json(result)
    } else {
        HttpResponse::Created().json(result)
    })
}

/// A batch of interactions.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchRequest {
    /// Up to 1,000 interactions, each shaped like the body of `POST /v1/interactions`
    /// (`InteractionRequest`). Each item is validated on its own: a malformed item is reported
    /// in its result and does not fail the others.
    #[schema(value_type = Vec<serde_json::Value>, max_items = 1000)]
    pub(crate) interactions: Vec<Box<RawValue>>,
}

/// One item's error.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ItemError {
    /// The status this item alone would have had.
    pub(crate) status: u16,
    /// The problem code.
    pub(crate) code: &'static str,
    /// What is wrong.
    pub(crate) detail: String,
}

/// One item's result: `id` and purposes when stored, `error` when not.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum BatchItem {
    /// Stored (or already stored): the item's position and its outcome.
    Stored {
        /// The item's position in the request.
        index: usize,
        /// The outcome.
        #[serde(flatten)]
        result: InteractionResult,
    },
    /// Not stored: the item's position and why.
    Failed {
        /// The item's position in the request.
        index: usize,
        /// Why the item was not stored.
        error: ItemError,
    },
}

/// The batch's results, in request order.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct BatchResponse {
    /// One result per item.
    pub(crate) results: Vec<BatchItem>,
    /// Items stored now.
    pub(crate) stored: usize,
    /// Items already stored earlier.
    pub(crate) duplicates: usize,
    /// Items refused.
    pub(crate) failed: usize,
}

fn item_error(error: ApiError) -> ItemError {
    let (status, code, detail) = error.into_parts();
    ItemError {
        status: status.as_u16(),
        code,
        detail,
    }
}

/// Records up to 1,000 interactions: the valid ones in one transaction, a result per item.
#[utoipa::path(post, operation_id = "interactions_batch", path = "/v1/interactions/batch", tag = "interactions", security(("bearer" = [])),
    request_body = BatchRequest,
    responses(
        (status = 200, description = "A result per item", body = BatchResponse),
        (status = 422, description = "More than 1,000 items", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn batch(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    body: web::Json<BatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let items = body.into_inner().interactions;
    if items.len() > MAX_BATCH {
        return Err(ApiError::unprocessable(
            "batch_too_large",
            format!(
                "a batch holds at most {MAX_BATCH} interactions, not {}",
                items.len()
            ),
        ));
    }
    let parsed = items
        .iter()
        .map(|raw| {
            serde_json::from_str::<InteractionRequest>(raw.get())
                .map(RawInteraction::from)
                .map_err(|error| {
                    Rejection::invalid("invalid_body", describe_serde_message(&error.to_string()))
                })
        })
        .collect();
    let gpc = has_gpc(request.headers());
    let outcomes = app::collect(&state.services, &principal, &actor, parsed, gpc).await?;
    let results: Vec<BatchItem> = outcomes
        .into_iter()
        .enumerate()
        .map(
            |(index, outcome)| match outcome.map_err(ApiError::from).and_then(result_of) {
                Ok(result) => BatchItem::Stored { index, result },
                Err(error) => BatchItem::Failed {
                    index,
                    error: item_error(error),
                },
            },
        )
        .collect();
    let duplicates = results
        .iter()
        .filter(|item| matches!(item, BatchItem::Stored { result, .. } if result.duplicate))
        .count();
    let failed = results
        .iter()
        .filter(|item| matches!(item, BatchItem::Failed { .. }))
        .count();
    Ok(HttpResponse::Ok().json(BatchResponse {
        stored: results.len() - duplicates - failed,
        duplicates,
        failed,
        results,
    }))
}

/// Query of a read.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    /// The purpose the data will be used for.
    pub(crate) purpose: String,
    /// Page size, 1–500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub(crate) limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
}

/// One interaction as read for a purpose.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InteractionBody {
    /// The app's id.
    pub(crate) id: String,
    /// The interaction type.
    #[serde(rename = "type")]
    pub(crate) interaction_type: String,
    /// The channel.
    pub(crate) channel: String,
    /// When it happened.
    pub(crate) occurred_at: DateTime<Utc>,
    /// The purposes it was collected for.
    pub(crate) purposes: Vec<String>,
    /// The fields this purpose may use, decrypted.
    #[schema(value_type = Object)]
    pub(crate) data: Map<String, Value>,
    /// Fields present but not usable for this purpose (names only).
    pub(crate) withheld: Vec<String>,
}

/// A page of interactions.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct InteractionPage {
    /// Newest first.
    pub(crate) interactions: Vec<InteractionBody>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// A person's interactions usable for a purpose, minimised to the fields it may use.
#[utoipa::path(get, operation_id = "interactions_list_for_subject", path = "/v1/subjects/{subject_id}/interactions", tag = "interactions",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person"), ReadQuery),
    responses(
        (status = 200, description = "A page of interactions", body = InteractionPage),
        (status = 403, description = "The role may not read for this purpose, or the person gave no legal basis",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such subject", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn list_for_subject(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ReadQuery>,
) -> Result<HttpResponse, ApiError> {
    let subject_id = SubjectId::parse(&path.into_inner())
        .map_err(|_| crate::interactions::subject_not_found())?;
    let query = query.into_inner();
    let purpose = parse_purpose(&state.services.policy, &query.purpose)?;
    let cursor = query.cursor.as_deref().map(Cursor::decode).transpose()?;
    let limit = crate::page::limit(query.limit, DEFAULT_PAGE, crate::interactions::MAX_PAGE)?;
    let read = app::read(
        &state.services,
        &principal,
        &actor,
        subject_id,
        purpose,
        limit,
        cursor,
    )
    .await;
    let page = audit_trail::settle(&request, read)?;
    Ok(HttpResponse::Ok().json(InteractionPage {
        next_cursor: page.next_cursor,
        interactions: page
            .interactions
            .into_iter()
            .map(|item| InteractionBody {
                id: item.client_id,
                interaction_type: item.interaction_type,
                channel: item.channel,
                occurred_at: item.occurred_at.and_utc(),
                purposes: item.purposes,
                data: item
                    .data
                    .into_iter()
                    .map(|(name, value)| (name, value.to_json()))
                    .collect(),
                withheld: item.withheld,
            })
            .collect(),
    }))
}
