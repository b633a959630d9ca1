//! `/v1/segments`: previews, saved segments, and their members (activation lists).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit_trail;
use super::{ApiError, AppState};
use crate::app::segments::{self, NewSegment, Segment, SegmentError, MAX_MEMBERS_PAGE};
use crate::audit::Actor;
use crate::auth::Principal;
use crate::policy::Policy;
use crate::rejection::Rejection;
use crate::segments::Answer;

/// A filter to count for a purpose.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewRequest {
    /// The purpose the people are counted for (the role must hold it).
    pub(crate) purpose: String,
    /// The filter tree (see `docs/segments.md`).
    #[schema(value_type = Object)]
    pub(crate) filter: Value,
}

/// A count as a marketer may see it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SizeBody {
    /// How many people; `null` when withheld.
    pub(crate) size: Option<i64>,
    /// Whether the size is withheld: below `min_size`, or too close to another question this
    /// key asked in the last 24 hours (the answer does not say which).
    pub(crate) suppressed: bool,
    /// The policy's k.
    pub(crate) min_size: u32,
    /// Whether the size is noisy (`[segments] counts = "noisy"`: differentially private,
    /// drawn from the purpose's insights budget; never suppressed).
    pub(crate) noisy: bool,
    /// A noisy size's 95 % interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) interval: Option<[i64; 2]>,
    /// ε a noisy size spent (0: the size given earlier today for the same filter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) epsilon_spent: Option<f64>,
}

/// The answer: `body` with the size (or withheld), or the 429 of a key past its withheld
/// answers.
fn respond(
    policy: &Policy,
    answer: Answer,
    body: impl FnOnce(SizeBody) -> HttpResponse,
) -> HttpResponse {
    let min_size = policy.segment_limits().min_size;
    match answer {
        Answer::Revealed(size) => body(SizeBody {
            size: Some(size),
            suppressed: false,
            min_size,
            noisy: false,
            interval: None,
            epsilon_spent: None,
        }),
        Answer::Withheld => body(SizeBody {
            size: None,
            suppressed: true,
            min_size,
            noisy: false,
            interval: None,
            epsilon_spent: None,
        }),
        Answer::Noisy {
            size,
            interval,
            epsilon_spent,
        } => body(SizeBody {
            size: Some(size),
            suppressed: false,
            min_size,
            noisy: true,
            interval: Some(interval),
            epsilon_spent: Some(epsilon_spent),
        }),
        Answer::BudgetExhausted { retry_after } => super::limits::too_many(
            std::time::Duration::from_secs(retry_after.unsigned_abs()),
            "privacy_budget_exhausted",
            "the privacy budget of this purpose is spent for today; noisy sizes resume at midnight UTC (Retry-After)".to_owned(),
        ),
        Answer::Limited { retry_after } => super::limits::too_many(
            std::time::Duration::from_secs(retry_after.unsigned_abs()),
            "segment_probe_limit",
            format!(
                "this key was given {} withheld counts in the last 24 hours; no more counts until the time in Retry-After",
                policy.segment_limits().max_withheld
            ),
        ),
    }
}

/// How many people with a legal basis for the purpose match the filter (k-anonymous: below
/// `min_size` the size is suppressed).
#[utoipa::path(post, operation_id = "segments_preview", path = "/v1/segments/preview", tag = "segments", security(("bearer" = [])),
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "The size, or withheld (suppressed)", body = SizeBody),
        (status = 403, description = "Purpose not permitted",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 429, description = "The key was given `max_withheld` withheld counts in 24 hours",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 422, description = "Bad filter (naming where) or unknown purpose",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn preview(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    body: web::Json<PreviewRequest>,
) -> Result<HttpResponse, ApiError> {
    let services = &state.services;
    let answer = segments::preview(
        services,
        &actor,
        principal.role.as_str(),
        &body.purpose,
        &body.filter,
    )
    .await?;
    Ok(respond(&services.policy, answer, |size| {
        HttpResponse::Ok().json(size)
    }))
}

/// A segment to save.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSegment {
    /// A name for people (1 to 200 characters).
    pub(crate) name: String,
    /// The purpose it is evaluated for.
    pub(crate) purpose: String,
    /// The filter tree.
    #[schema(value_type = Object)]
    pub(crate) filter: Value,
}

/// A saved segment.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SegmentBody {
    /// Its id.
    pub(crate) id: String,
    /// Its name.
    pub(crate) name: String,
    /// The purpose.
    pub(crate) purpose: String,
    /// The filter, in canonical form.
    #[schema(value_type = Object)]
    pub(crate) filter: Value,
    /// When it was saved.
    pub(crate) created_at: DateTime<Utc>,
}

fn segment_body(segment: Segment) -> SegmentBody {
    SegmentBody {
        id: segment.id,
        name: segment.name,
        purpose: segment.purpose,
        filter: segment.filter,
        created_at: segment.created_at.and_utc(),
    }
}

/// Saves a segment; it is evaluated whenever it is read.
#[utoipa::path(post, operation_id = "segments_create", path = "/v1/segments", tag = "segments", security(("bearer" = [])),
    request_body = CreateSegment,
    responses(
        (status = 201, description = "Saved", body = SegmentBody),
        (status = 403, description = "Purpose not permitted", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
        (status = 422, description = "Bad name, purpose or filter", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    body: web::Json<CreateSegment>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let new = NewSegment {
        name: body.name,
        purpose: body.purpose,
        filter: body.filter,
    };
    let saved = segments::create(&state.services, &actor, principal.role.as_str(), new).await?;
    Ok(HttpResponse::Created().json(segment_body(saved)))
}

/// Paging of lists.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    /// At most this many (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub(crate) limit: Option<i64>,
    /// From `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub(crate) cursor: Option<String>,
}

/// Paging of a segment's members.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct MembersQuery {
    /// At most this many (default 100, at most 1,000).
    #[param(minimum = 1, maximum = 1000)]
    pub(crate) limit: Option<i64>,
    /// From `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub(crate) cursor: Option<String>,
}

/// A page of saved segments.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SegmentPage {
    /// Newest first.
    pub(crate) segments: Vec<SegmentBody>,
    /// For the next page; `null` on the last.
    pub(crate) next_cursor: Option<String>,
}

/// A saved segments page's position: the last segment's id.
fn segment_after(cursor: &str) -> Result<String, Rejection> {
    let id = crate::page::decode_cursor(cursor)?;
    uuid::Uuid::try_parse(&id)
        .map(|_| id)
        .map_err(|_| crate::page::invalid_cursor())
}

/// A members page's position: the last member's internal id (base64url characters).
fn member_after(cursor: &str) -> Result<String, Rejection> {
    let pk = crate::page::decode_cursor(cursor)?;
    let internal = pk.len() <= 64
        && pk
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if internal {
        Ok(pk)
    } else {
        Err(crate::page::invalid_cursor())
    }
}

/// The saved segments for the purposes the role may query.
#[utoipa::path(get, operation_id = "segments_list", path = "/v1/segments", tag = "segments", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, description = "Saved segments", body = SegmentPage)))]
pub(crate) async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = crate::page::limit(query.limit, 50, 200)?;
    let before = query.cursor.as_deref().map(segment_after).transpose()?;
    let page = segments::list(
        &state.services,
        &actor,
        principal.role.as_str(),
        limit,
        before,
    )
    .await?;
    Ok(HttpResponse::Ok().json(SegmentPage {
        segments: page.items.into_iter().map(segment_body).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A saved segment and its current size.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct SegmentWithSize {
    /// The segment.
    #[serde(flatten)]
    pub(crate) segment: SegmentBody,
    /// Its size now.
    #[serde(flatten)]
    pub(crate) size: SizeBody,
}

/// A saved segment with its size now (under suppression and the differencing guard).
#[utoipa::path(get, operation_id = "segments_show", path = "/v1/segments/{id}", tag = "segments", security(("bearer" = [])),
    params(("id" = String, Path, description = "The segment's id")),
    responses(
        (status = 200, description = "The segment and its size", body = SegmentWithSize),
        (status = 429, description = "The key was given `max_withheld` withheld counts in 24 hours",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such segment", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn show(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let services = &state.services;
    let (segment, answer) =
        segments::show(services, &actor, principal.role.as_str(), &path).await?;
    Ok(respond(&services.policy, answer, |size| {
        HttpResponse::Ok().json(SegmentWithSize {
            segment: segment_body(segment),
            size,
        })
    }))
}

/// A page of a segment's members.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct MembersPage {
    /// The app's subject ids of the members, in a stable order.
    pub(crate) members: Vec<String>,
    /// Members known only by the anonymous id a tracking SDK gave them (not yet linked to a
    /// user id), in the same order.
    pub(crate) anonymous_members: Vec<String>,
    /// For the next page; `null` on the last.
    pub(crate) next_cursor: Option<String>,
}

/// The members of a saved segment, evaluated now: only people with a legal basis for its
/// purpose; refused while the segment is smaller than `min_size`.
#[utoipa::path(get, operation_id = "segments_members", path = "/v1/segments/{id}/members", tag = "segments", security(("bearer" = [])),
    params(("id" = String, Path, description = "The segment's id"), MembersQuery),
    responses(
        (status = 200, description = "A page of members", body = MembersPage),
        (status = 403, description = "Purpose not permitted, or the segment is below min_size",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such segment", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn members(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<MembersQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = crate::page::limit(query.limit, 100, MAX_MEMBERS_PAGE)?;
    let after = query.cursor.as_deref().map(member_after).transpose()?;
    let page = segments::members(
        &state.services,
        &actor,
        principal.role.as_str(),
        &path,
        limit,
        after,
    )
    .await
    .inspect_err(|error| {
        if matches!(error, SegmentError::TooSmall { .. }) {
            audit_trail::denial_recorded(&request);
        }
    })?;
    let (anonymous, known): (Vec<_>, Vec<_>) =
        page.items.into_iter().partition(|id| id.is_anonymous());
    Ok(HttpResponse::Ok().json(MembersPage {
        members: known.iter().map(|id| id.as_str().to_owned()).collect(),
        anonymous_members: anonymous.iter().map(|id| id.as_str().to_owned()).collect(),
        next_cursor: page.next_cursor,
    }))
}
