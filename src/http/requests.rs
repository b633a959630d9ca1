//! `/v1/requests`: data-subject requests with their legal deadlines.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit_trail;
use super::export::{parse_format, respond, ExportQuery};
use super::{ApiError, AppState};
use crate::app::requests::{self, ListFilter, Step, Viewer, OPEN_STATUSES};
use crate::audit::Actor;
use crate::auth::Principal;
use crate::export::Format;
use crate::rejection::Rejection;
use crate::requests::{Draft, Identity, Kind, Request, RequestError, Status};

/// The most requests one page lists.
pub(crate) const MAX_PAGE: i64 = 200;

/// A new request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateRequest {
    /// `access`, `portability`, `erasure`, `restriction`, `objection` or `rectification`.
    #[serde(rename = "type")]
    #[schema(pattern = "^(access|portability|erasure|restriction|objection|rectification)$")]
    pub(crate) kind: String,
    /// `gdpr` (one calendar month, extendable to three) or `ccpa` (45 days, extendable to 90).
    #[schema(pattern = "^(gdpr|ccpa)$")]
    pub(crate) regulation: String,
    /// The person, by the app's subject id …
    pub(crate) subject_id: Option<String>,
    /// … or by the anonymous id a tracking SDK gave their browser or device (the person it
    /// belongs to, linked or not: docs/tracking.md) …
    pub(crate) anonymous_id: Option<String>,
    /// … or by e-mail address.
    pub(crate) email: Option<String>,
    /// Objections: the purposes objected to.
    pub(crate) purposes: Option<Vec<String>>,
    /// Rectifications: `{"identifiers": {…}, "traits": {…}}` with the corrected values.
    #[schema(value_type = Option<Object>)]
    pub(crate) changes: Option<Value>,
    /// When the request was received, if earlier than now (RFC 3339).
    pub(crate) received_at: Option<DateTime<Utc>>,
}

/// A reason, for extending or rejecting.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReasonRequest {
    /// Why (at most 2,000 characters; stored encrypted, never in the audit log).
    pub(crate) reason: String,
}

/// When and why.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Annotated {
    /// When.
    pub(crate) at: DateTime<Utc>,
    /// Why.
    pub(crate) reason: String,
}

/// A request as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RequestBody {
    /// Its id.
    pub(crate) id: String,
    /// What is asked.
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    /// `gdpr` or `ccpa`.
    pub(crate) regulation: &'static str,
    /// `received`, `verified`, `in_progress`, `completed` or `rejected`.
    pub(crate) status: &'static str,
    /// The person as the request named them (`subject_id` or `email`); `null` once erased.
    #[schema(value_type = Option<Object>)]
    pub(crate) subject: Option<Value>,
    /// Objections: the purposes.
    pub(crate) purposes: Vec<String>,
    /// Rectifications: the corrected values (`null` once the person is erased).
    #[schema(value_type = Option<Object>)]
    pub(crate) changes: Option<Value>,
    /// When it was received.
    pub(crate) received_at: DateTime<Utc>,
    /// When it must be answered.
    pub(crate) due_at: DateTime<Utc>,
    /// Open and past its deadline.
    pub(crate) overdue: bool,
    /// Calendar days until the deadline (negative when past).
    pub(crate) days_left: i64,
    /// When and why the deadline was extended.
    pub(crate) extended: Option<Annotated>,
    /// When the requester's identity was verified.
    pub(crate) verified_at: Option<DateTime<Utc>>,
    /// When it was completed.
    pub(crate) completed_at: Option<DateTime<Utc>>,
    /// When and why it was rejected.
    pub(crate) rejected: Option<Annotated>,
    /// What execution did: `subject_found`, and the export link, erasure id and counts,
    /// purposes objected to or fields rectified.
    #[schema(value_type = Option<Object>)]
    pub(crate) result: Option<Value>,
}

fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}

/// A request as `viewer` may see it (identifiers and changes masked unless the role may export
/// the person's data).
fn shown(viewer: &Viewer, request: &Request, now: NaiveDateTime) -> RequestBody {
    let mut body = body_of(request, now);
    body.subject = request
        .identity
        .as_ref()
        .map(|identity| viewer.identity(identity));
    body.changes = request
        .changes
        .as_ref()
        .map(|changes| viewer.changes(changes));
    body
}

/// A request as the API shows it; whether it is overdue and the days left are as of `now`
/// (the service's clock).
fn body_of(request: &Request, now: NaiveDateTime) -> RequestBody {
    let subject = request.identity.as_ref().map(Identity::revealed);
    let annotated = |(at, reason): &(NaiveDateTime, String)| Annotated {
        at: utc(*at),
        reason: reason.clone(),
    };
    RequestBody {
        id: request.id.clone(),
        kind: request.kind.as_str(),
        regulation: request.regulation.as_str(),
        status: request.status.as_str(),
        subject,
        purposes: request.purposes.clone(),
        changes: request.changes.clone(),
        received_at: utc(request.received_at),
        due_at: utc(request.due_at),
        overdue: request.overdue(now),
        days_left: request.days_left(now),
        extended: request.extended.as_ref().map(annotated),
        verified_at: request.verified_at.map(utc),
        completed_at: request.completed_at.map(utc),
        rejected: request.rejected.as_ref().map(annotated),
        result: request.result.clone(),
    }
}

impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::NotFound => request_not_found(),
            RequestError::Transition { action, status } => ApiError::Problem {
                status: actix_web::http::StatusCode::CONFLICT,
                code: "invalid_transition",
                detail: format!("cannot {action}: the request is {status}"),
            },
            RequestError::AlreadyExtended => ApiError::Problem {
                status: actix_web::http::StatusCode::CONFLICT,
                code: "already_extended",
                detail: "the deadline may be extended once, and it was".into(),
            },
            RequestError::Ambiguous(n) => ApiError::Problem {
                status: actix_web::http::StatusCode::CONFLICT,
                code: "ambiguous_subject",
                detail: format!(
                    "the e-mail address belongs to {n} subjects: file the request by subject_id"
                ),
            },
            RequestError::IdentityErased => ApiError::Problem {
                status: actix_web::http::StatusCode::CONFLICT,
                code: "subject_erased",
                detail: "the person this request named has been erased; nothing is held".into(),
            },
            RequestError::Invalid(rejection) => rejection.into(),
            RequestError::NotPermitted { code, needed, kind } => ApiError::forbidden(
                code,
                format!(
                    "executing a {kind} request needs `{needed}`, as doing it directly does; this role does not hold it"
                ),
            ),
            RequestError::Unrecorded => super::middleware::audit_unavailable(),
            RequestError::Subject(error) => error.into(),
        }
    }
}

fn request_not_found() -> ApiError {
    ApiError::not_found("request_not_found", "no request has this id")
}

/// Files a data-subject request; its deadline runs from `received_at`.
#[utoipa::path(post, operation_id = "requests_create", path = "/v1/requests", tag = "requests", security(("bearer" = [])),
    request_body = CreateRequest,
    responses(
        (status = 201, description = "Received", body = RequestBody),
        (status = 422, description = "Bad type, regulation, person, purposes or changes; nothing stored",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn create(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    body: web::Json<CreateRequest>,
) -> Result<HttpResponse, ApiError> {
    let services = &state.services;
    let viewer = Viewer::of(&services.policy, &principal);
    let body = body.into_inner();
    let draft = Draft::parse(
        &services.policy,
        &body.kind,
        &body.regulation,
        body.subject_id.as_deref(),
        body.anonymous_id.as_deref(),
        body.email.as_deref(),
        body.purposes.as_deref(),
        body.changes.as_ref(),
        body.received_at.map(|at| at.naive_utc()),
    )?;
    let request = requests::create_request(services, &actor, draft).await?;
    Ok(HttpResponse::Created().json(shown(&viewer, &request, state.services.clock.now_naive())))
}

/// Filters of the queue.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only this status; `open`: received, verified or in progress.
    #[param(pattern = "^(open|received|verified|in_progress|completed|rejected)$")]
    pub(crate) status: Option<String>,
    /// Only this type.
    #[serde(rename = "type")]
    #[param(pattern = "^(access|portability|erasure|restriction|objection|rectification)$")]
    pub(crate) kind: Option<String>,
    /// `true`: only open requests past their deadline; `false`: all others.
    pub(crate) overdue: Option<bool>,
    /// At most this many (default 50, at most 200).
    #[param(minimum = 1, maximum = 200)]
    pub(crate) limit: Option<i64>,
    /// From `next_cursor` of the previous page.
    #[param(min_length = 1)]
    pub(crate) cursor: Option<String>,
}

/// A page of the queue.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RequestPage {
    /// By deadline, soonest first.
    pub(crate) requests: Vec<RequestBody>,
    /// Give it as `cursor` for the next page; `null` on the last.
    pub(crate) next_cursor: Option<String>,
}

fn invalid_query(message: String) -> Rejection {
    Rejection::bad_request("invalid_query", message)
}

fn decode_cursor(text: &str) -> Result<(NaiveDateTime, String), Rejection> {
    let invalid = crate::page::invalid_cursor;
    let text = crate::page::decode_cursor(text)?;
    let (micros, id) = text.split_once('|').ok_or_else(invalid)?;
    let due = micros
        .parse::<i64>()
        .ok()
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    let id = uuid::Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok((due.naive_utc(), id.to_string()))
}

/// The queue of requests, soonest deadline first.
#[utoipa::path(get, operation_id = "requests_list", path = "/v1/requests", tag = "requests", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of requests", body = RequestPage),
        (status = 400, description = "Bad filter or cursor", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn list(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let viewer = Viewer::of(&state.services.policy, &principal);
    let query = query.into_inner();
    let status = query
        .status
        .map(|raw| match raw.as_str() {
            OPEN_STATUSES => Ok(OPEN_STATUSES.to_owned()),
            _ => Status::parse(&raw)
                .map(|s| s.as_str().to_owned())
                .ok_or_else(|| {
                    invalid_query(format!(
                        "`status` is `{OPEN_STATUSES}` or one of {}",
                        Status::ALL.join(", ")
                    ))
                }),
        })
        .transpose()?;
    let kind = query
        .kind
        .map(|raw| {
            Kind::parse(&raw)
                .map(|k| k.as_str().to_owned())
                .ok_or_else(|| invalid_query(format!("`type` is one of {}", Kind::ALL.join(", "))))
        })
        .transpose()?;
    let limit = crate::page::limit(query.limit, 50, MAX_PAGE)?;
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let wanted = ListFilter {
        status,
        kind,
        overdue: query.overdue,
    };
    let page =
        requests::list_requests(&state.services, &actor, &viewer, wanted, limit, after).await?;
    Ok(HttpResponse::Ok().json(RequestPage {
        requests: page
            .items
            .iter()
            .map(|found| shown(&viewer, found, state.services.clock.now_naive()))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One request.
#[utoipa::path(get, operation_id = "requests_show", path = "/v1/requests/{id}", tag = "requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The request", body = RequestBody),
        (status = 404, description = "No such request", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn show(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let viewer = Viewer::of(&state.services.policy, &principal);
    let found = requests::show_request(&state.services, &actor, &viewer, &path).await?;
    Ok(HttpResponse::Ok().json(shown(&viewer, &found, state.services.clock.now_naive())))
}

/// Records that the requester's identity was verified (`received` → `verified`).
#[utoipa::path(post, operation_id = "requests_verify", path = "/v1/requests/{id}/verify", tag = "requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "Verified", body = RequestBody),
        (status = 409, description = "Not in `received`", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn verify(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    step(&state, &principal, &actor, &path, Step::Verify).await
}

/// Runs one lifecycle step on the writer and answers with the request.
async fn step(
    state: &AppState,
    principal: &Principal,
    actor: &Actor,
    raw_id: &str,
    step: Step,
) -> Result<HttpResponse, ApiError> {
    let viewer = Viewer::of(&state.services.policy, principal);
    let request = requests::take_step(&state.services, actor, &viewer, raw_id, step).await?;
    Ok(HttpResponse::Ok().json(shown(&viewer, &request, state.services.clock.now_naive())))
}

/// Extends the deadline once, with a reason (GDPR: three months from receipt; CCPA: 90 days).
#[utoipa::path(post, operation_id = "requests_extend", path = "/v1/requests/{id}/extend", tag = "requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")),
    request_body = ReasonRequest,
    responses(
        (status = 200, description = "Extended", body = RequestBody),
        (status = 409, description = "Closed, or extended already", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
        (status = 422, description = "No reason, or too long", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn extend(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    path: web::Path<String>,
    body: web::Json<ReasonRequest>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.into_inner().reason;
    step(&state, &principal, &actor, &path, Step::Extend(reason)).await
}

/// Rejects an open request, with a reason.
#[utoipa::path(post, operation_id = "requests_reject", path = "/v1/requests/{id}/reject", tag = "requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")),
    request_body = ReasonRequest,
    responses(
        (status = 200, description = "Rejected", body = RequestBody),
        (status = 409, description = "Closed already", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub(crate) async fn reject(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    path: web::Path<String>,
    body: web::Json<ReasonRequest>,
) -> Result<HttpResponse, ApiError> {
    let reason = body.into_inner().reason;
    step(&state, &principal, &actor, &path, Step::Reject(reason)).await
}

/// The answer to executing a request.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ExecutedBody {
    /// The request, completed.
    #[serde(flatten)]
    pub(crate) request: RequestBody,
    /// Erasure: the signed receipt (verifiable with `GET /v1/consents/receipt-key`). It names
    /// the subject_id; the request keeps it sealed for 30 days, for `GET
    /// /v1/requests/{id}/receipt`, then retention shreds it.
    pub(crate) erasure_receipt: Option<String>,
}

/// Executes a verified request: access and portability make the export available at
/// `result.export.url`; erasure, restriction, objection and rectification are carried out.
#[utoipa::path(post, operation_id = "requests_execute", path = "/v1/requests/{id}/execute", tag = "requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "Completed", body = ExecutedBody),
        (status = 403, description = "The role lacks the action of the direct route (subjects.erase, subjects.export, subjects.rectify)",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 404, description = "No such request (or one this key may not see)",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Not verified, closed, ambiguous, or the person is erased",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn execute(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let viewer = Viewer::of(&state.services.policy, &principal);
    let role = principal.role.as_str();
    let executed = requests::execute_request(&state.services, &actor, role, &viewer, &path)
        .await
        .inspect_err(|error| {
            if matches!(error, RequestError::NotPermitted { .. }) {
                audit_trail::denial_recorded(&request);
            }
        })?;
    Ok(HttpResponse::Ok().json(ExecutedBody {
        request: shown(&viewer, &executed.request, state.services.clock.now_naive()),
        erasure_receipt: executed.erasure_receipt,
    }))
}

/// An executed erasure request's kept receipt.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct ReceiptBody {
    /// The signed receipt the execution answered with (a compact JWS, verifiable with `GET
    /// /v1/consents/receipt-key`).
    pub(crate) erasure_receipt: String,
    /// When retention shreds it.
    pub(crate) kept_until: DateTime<Utc>,
}

/// The signed receipt of an executed erasure request, kept sealed for 30 days so that it can be
/// handed to the person later. Needs `subjects.erase` (the action that produced it); audited as
/// `requests.receipt` with the request as target.
#[utoipa::path(get, operation_id = "requests_receipt", path = "/v1/requests/{id}/receipt", tag = "requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id")),
    responses(
        (status = 200, description = "The receipt", body = ReceiptBody),
        (status = 404, description = "No such request, or it keeps no receipt (not an executed erasure that found the person, or past its 30 days)",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn receipt(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let viewer = Viewer::of(&state.services.policy, &principal);
    let kept = requests::kept_receipt_of(&state.services, &actor, &viewer, &path).await?;
    let Some((receipt, until)) = kept else {
        return Err(ApiError::not_found(
            "receipt_not_found",
            "this request keeps no erasure receipt: it is not an executed erasure that found the person, or its 30 days are over",
        ));
    };
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(ReceiptBody {
            erasure_receipt: receipt,
            kept_until: until.and_utc(),
        }))
}

/// The export of a completed access (JSON) or portability (zip of CSV files) request; `format`
/// overrides. Audited as `subjects.export` with the request as target.
#[utoipa::path(get, operation_id = "requests_export", path = "/v1/requests/{id}/export", tag = "requests", security(("bearer" = [])),
    params(("id" = String, Path, description = "The request's id"), ExportQuery),
    responses(
        (status = 200, description = "The export", content_type = "application/json"),
        (status = 404, description = "No such request, or it found nobody",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
        (status = 409, description = "Not a completed access or portability request",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn export(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let viewer = Viewer::of(&state.services.policy, &principal);
    let explicit = query.format.as_deref().map(Some).map(parse_format);
    let (found, subject) = requests::export_target_of(&state.services, &viewer, &path).await?;
    let format = match explicit {
        Some(format) => format?,
        None if found.kind == Kind::Portability => Format::CsvZip,
        None => Format::Json,
    };
    let no_data = || {
        ApiError::not_found(
            "subject_not_found",
            "the request found no data about the person",
        )
    };
    let subject = subject.ok_or_else(no_data)?;
    let target = Some(found.id.clone());
    let streaming = crate::app::exports::start(&state.services, &actor, subject, format, target)
        .await?
        .ok_or_else(no_data)?;
    Ok(respond(streaming, format))
}
