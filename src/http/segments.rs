//! `/v1/segments`: previews, saved segments, and their members (activation lists).

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit_trail;
use super::{ApiError, AppState};
use crate::audit::{Actor, Entry};
use crate::auth::Principal;
use crate::policy::{Action, Policy};
use crate::rejection::Rejection;
use crate::segments::filter::Filter;
use crate::segments::{self, Answer, ACTION_CREATE, ACTION_EXPORT, ACTION_LIST, ACTION_PREVIEW};
use crate::store::segments::{self as segment_store, SegmentRow};
use crate::subjects;

/// The most members one page lists.
pub const MAX_MEMBERS_PAGE: i64 = 1_000;

/// A filter to count for a purpose.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The purpose the people are counted for (the role must hold it).
    pub purpose: String,
    /// The filter tree (see `docs/segments.md`).
    #[schema(value_type = Object)]
    pub filter: Value,
}

/// A count as a marketer may see it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SizeBody {
    /// How many people; `null` when withheld.
    pub size: Option<i64>,
    /// Whether the size is withheld: below `min_size`, or too close to another question this
    /// key asked in the last 24 hours (the answer does not say which).
    pub suppressed: bool,
    /// The policy's k.
    pub min_size: u32,
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
        }),
        Answer::Withheld => body(SizeBody {
            size: None,
            suppressed: true,
            min_size,
        }),
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

/// Counts, then answers under suppression and the differencing guard.
async fn count_and_answer(
    state: &AppState,
    actor: Actor,
    purpose: String,
    filter: Filter,
    target: Option<String>,
) -> Result<Answer, ApiError> {
    let policy = state.policy.clone();
    let (counted_purpose, counted_filter) = (purpose.clone(), filter.clone());
    let turn = super::limits::population_turn(&state.population_queries).await?;
    let count = state
        .db
        .run(move |conn| {
            let declared = policy
                .purpose(&counted_purpose)
                .expect("an authorized purpose is declared");
            segments::count(conn, &policy, declared, &counted_filter)
        })
        .await?;
    drop(turn);
    let policy = state.policy.clone();
    Ok(state
        .db
        .run_write(move |conn| {
            let declared = policy
                .purpose(&purpose)
                .expect("an authorized purpose is declared");
            segments::answer(
                conn,
                &policy,
                &actor,
                declared,
                &filter,
                &count,
                ACTION_PREVIEW,
                target,
            )
        })
        .await?)
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
pub async fn preview(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    body: web::Json<PreviewRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let declared = segments::authorize(
        &state.policy,
        principal.role.as_str(),
        Action::SegmentsQuery,
        &body.purpose,
    )?;
    let purpose = declared.id.to_string();
    let filter = Filter::parse(&state.policy, declared, &body.filter)?;
    let answer = count_and_answer(&state, actor, purpose, filter, None).await?;
    Ok(respond(&state.policy, answer, |size| {
        HttpResponse::Ok().json(size)
    }))
}

/// A segment to save.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSegment {
    /// A name for people (1 to 200 characters).
    pub name: String,
    /// The purpose it is evaluated for.
    pub purpose: String,
    /// The filter tree.
    #[schema(value_type = Object)]
    pub filter: Value,
}

/// A saved segment.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentBody {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The purpose.
    pub purpose: String,
    /// The filter, in canonical form.
    #[schema(value_type = Object)]
    pub filter: Value,
    /// When it was saved.
    pub created_at: DateTime<Utc>,
}

fn segment_body(row: &SegmentRow) -> SegmentBody {
    SegmentBody {
        id: row.id.clone(),
        name: row.name.clone(),
        purpose: row.purpose.clone(),
        filter: serde_json::from_str(&row.filter).unwrap_or(Value::Null),
        created_at: row.created_at.and_utc(),
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
pub async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    body: web::Json<CreateSegment>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ApiError::unprocessable(
            "invalid_name",
            "a segment's name has 1 to 200 characters",
        ));
    }
    let declared = segments::authorize(
        &state.policy,
        principal.role.as_str(),
        Action::SegmentsQuery,
        &body.purpose,
    )?;
    let filter = Filter::parse(&state.policy, declared, &body.filter)?;
    let row = SegmentRow {
        id: uuid::Uuid::now_v7().to_string(),
        name,
        purpose: declared.id.to_string(),
        filter: filter.canonical(),
        created_by: actor.key_id.clone(),
        created_at: Utc::now().naive_utc().trunc_subsecs(6),
    };
    let (policy, saved) = (state.policy.clone(), row.clone());
    state
        .db
        .run_write(move |conn| {
            crate::store::write_transaction(conn, |conn| {
                segment_store::insert_segment(conn, &saved)?;
                let purpose = crate::policy::PurposeId::parse(&saved.purpose)
                    .expect("a declared purpose parses");
                let entry = Entry::new(&actor, ACTION_CREATE)
                    .purpose(&policy, &purpose)
                    .target(saved.id.clone());
                crate::audit::append(conn, policy.sha256(), vec![entry])
            })
        })
        .await?;
    Ok(HttpResponse::Created().json(segment_body(&row)))
}

/// Paging of lists.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// At most this many (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// From `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// Paging of a segment's members.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    /// At most this many (default 100, at most 1,000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// From `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub cursor: Option<String>,
}

/// A page of saved segments.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentPage {
    /// Newest first.
    pub segments: Vec<SegmentBody>,
    /// For the next page; `null` on the last.
    pub next_cursor: Option<String>,
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
pub async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = crate::page::limit(query.limit, 50, 200)?;
    let before = query.cursor.as_deref().map(segment_after).transpose()?;
    let purposes: Vec<String> = state
        .policy
        .purposes()
        .filter(|purpose| {
            segments::authorize(
                &state.policy,
                principal.role.as_str(),
                Action::SegmentsQuery,
                purpose.id.as_str(),
            )
            .is_ok()
        })
        .map(|purpose| purpose.id.to_string())
        .collect();
    let mut rows = state
        .db
        .run(move |conn| {
            segment_store::list_segments(conn, &purposes, before.as_deref(), limit + 1)
        })
        .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|row| crate::page::encode_cursor(&row.id))
    } else {
        None
    };
    audit_trail::record(
        &request,
        Entry::new(&actor, ACTION_LIST).records(rows.len()),
    );
    Ok(HttpResponse::Ok().json(SegmentPage {
        segments: rows.iter().map(segment_body).collect(),
        next_cursor,
    }))
}

fn segment_not_found() -> ApiError {
    ApiError::not_found("segment_not_found", "no segment has this id")
}

/// Loads a saved segment the role may use with `action`.
async fn load(
    state: &AppState,
    principal: &Principal,
    action: Action,
    raw_id: &str,
) -> Result<(SegmentRow, Filter), ApiError> {
    let id = uuid::Uuid::parse_str(raw_id)
        .map_err(|_| segment_not_found())?
        .to_string();
    let row = state
        .db
        .run(move |conn| segment_store::find_segment(conn, &id))
        .await?
        .ok_or_else(segment_not_found)?;
    let declared =
        segments::authorize(&state.policy, principal.role.as_str(), action, &row.purpose)?;
    let stored: Value = serde_json::from_str(&row.filter)
        .map_err(|error| ApiError::Internal(anyhow::anyhow!("stored filter: {error}")))?;
    // A filter saved under an earlier policy may no longer be valid (a trait no longer
    // segmentable): it is refused, never evaluated loosely.
    let filter = Filter::parse(&state.policy, declared, &stored)?;
    Ok((row, filter))
}

/// A saved segment and its current size.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentWithSize {
    /// The segment.
    #[serde(flatten)]
    pub segment: SegmentBody,
    /// Its size now.
    #[serde(flatten)]
    pub size: SizeBody,
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
pub async fn show(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (row, filter) = load(&state, &principal, Action::SegmentsQuery, &path).await?;
    let answer = count_and_answer(
        &state,
        actor,
        row.purpose.clone(),
        filter,
        Some(row.id.clone()),
    )
    .await?;
    Ok(respond(&state.policy, answer, |size| {
        HttpResponse::Ok().json(SegmentWithSize {
            segment: segment_body(&row),
            size,
        })
    }))
}

/// A page of a segment's members.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MembersPage {
    /// The app's subject ids of the members, in a stable order.
    pub members: Vec<String>,
    /// For the next page; `null` on the last.
    pub next_cursor: Option<String>,
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
pub async fn members(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<MembersQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = crate::page::limit(query.limit, 100, MAX_MEMBERS_PAGE)?;
    let after = query.cursor.as_deref().map(member_after).transpose()?;
    let (row, filter) = load(&state, &principal, Action::SegmentsExport, &path).await?;
    let (policy, vault) = (state.policy.clone(), state.vault.clone());
    let purpose_id = row.purpose.clone();
    let turn = super::limits::population_turn(&state.population_queries).await?;
    let (size, members) = state
        .db
        .run(move |conn| {
            crate::store::export::snapshot(conn, |conn| {
                let declared = policy
                    .purpose(&purpose_id)
                    .expect("an authorized purpose is declared");
                let size = segments::count(conn, &policy, declared, &filter)?.size;
                if size < i64::from(policy.segment_limits().min_size) {
                    return Ok::<_, crate::subjects::SubjectError>((size, Vec::new()));
                }
                let rule = policy.population_rule(declared);
                let pks = segment_store::members_page(
                    conn,
                    &rule,
                    &filter,
                    Utc::now().naive_utc(),
                    after.as_deref(),
                    limit + 1,
                )?;
                let mut members = Vec::with_capacity(pks.len());
                for pk in pks {
                    let (subject_id, pseudonym) = subjects::reveal_subject_id(conn, &vault, &pk)?;
                    members.push((pk, subject_id, pseudonym));
                }
                Ok((size, members))
            })
        })
        .await?;
    drop(turn);
    let min_size = state.policy.segment_limits().min_size;
    let purpose = crate::policy::PurposeId::parse(&row.purpose).expect("a declared purpose");
    let mut entry = Entry::new(&actor, ACTION_EXPORT)
        .purpose(&state.policy, &purpose)
        .target(row.id.clone());
    if size < i64::from(min_size) {
        audit_trail::record(&request, entry.denied("segment_too_small"));
        return Err(ApiError::forbidden(
            "segment_too_small",
            format!("the segment has fewer than min_size ({min_size}) people: its members are not given"),
        ));
    }
    let mut members = members;
    let next_cursor = if members.len() as i64 > limit {
        members.truncate(limit as usize);
        members
            .last()
            .map(|(pk, _, _)| crate::page::encode_cursor(pk))
    } else {
        None
    };
    for (_, _, pseudonym) in &members {
        entry = entry.pseudonym(Some(pseudonym.clone()));
    }
    audit_trail::record(&request, entry.records(members.len()));
    Ok(HttpResponse::Ok().json(MembersPage {
        members: members
            .into_iter()
            .map(|(_, subject_id, _)| subject_id)
            .collect(),
        next_cursor,
    }))
}
