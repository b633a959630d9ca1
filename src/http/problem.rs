//! The one API error type, rendered as RFC 9457 `application/problem+json`.
//!
//! Details are written for the caller and never contain personal data: request values are not
//! echoed (serde messages are rewritten to name the field or type, not the value), and internal
//! errors are logged with their cause chain but answered with an opaque body.

use std::fmt;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::app::access::AccessError;
use crate::app::insights::InsightError;
use crate::app::reports::ReportError;
use crate::app::segments::SegmentError;
use crate::app::trail::TrailError;
use crate::app::Failed;
use crate::auth::KeyError;
use crate::interactions::ReadError;
use crate::rejection::{Outage, Rejection, RejectionKind};
use crate::subjects::SubjectError;
use crate::vault::VaultError;

/// The problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ProblemBody {
    /// A URI naming the kind of problem: `urn:custodia:problem:<code>`.
    #[serde(rename = "type")]
    pub(crate) problem_type: String,
    /// A short summary of the kind of problem.
    pub(crate) title: String,
    /// The HTTP status.
    pub(crate) status: u16,
    /// What went wrong with this request, in words.
    pub(crate) detail: String,
    /// The stable, machine-readable problem code (also the end of `type`).
    pub(crate) code: String,
}

/// An error answered to an API caller.
pub enum ApiError {
    /// A problem the caller can act on (4xx) or a temporary unavailability (503).
    Problem {
        /// The HTTP status.
        status: StatusCode,
        /// The stable code.
        code: &'static str,
        /// The explanation.
        detail: String,
    },
    /// A bug or an unexpected failure: logged in full, answered as an opaque 500.
    Internal(anyhow::Error),
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Problem {
                status,
                code,
                detail,
            } => write!(f, "{} {code}: {detail}", status.as_u16()),
            ApiError::Internal(error) => write!(f, "internal error: {error:#}"),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl ApiError {
    fn problem(status: StatusCode, code: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::Problem {
            status,
            code,
            detail: detail.into(),
        }
    }

    /// 400: the request is malformed.
    pub(crate) fn bad_request(code: &'static str, detail: impl Into<String>) -> ApiError {
        Self::problem(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401: no valid credentials.
    pub(crate) fn unauthorized(code: &'static str, detail: impl Into<String>) -> ApiError {
        Self::problem(StatusCode::UNAUTHORIZED, code, detail)
    }

    /// 403: valid credentials, but the policy denies this.
    pub(crate) fn forbidden(code: &'static str, detail: impl Into<String>) -> ApiError {
        Self::problem(StatusCode::FORBIDDEN, code, detail)
    }

    /// 404: nothing here.
    pub(crate) fn not_found(code: &'static str, detail: impl Into<String>) -> ApiError {
        Self::problem(StatusCode::NOT_FOUND, code, detail)
    }

    /// 422: well-formed JSON that breaks a rule.
    pub(crate) fn unprocessable(code: &'static str, detail: impl Into<String>) -> ApiError {
        Self::problem(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
    }

    /// 503: a dependency (the database) is unavailable.
    pub(crate) fn unavailable(code: &'static str, detail: impl Into<String>) -> ApiError {
        Self::problem(StatusCode::SERVICE_UNAVAILABLE, code, detail)
    }

    /// Status, code and detail, for answers that carry problems inside another body (batch
    /// items, coalesced groups). An internal error is logged here and its detail left opaque.
    pub(crate) fn into_parts(self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::Problem {
                status,
                code,
                detail,
            } => (status, code, detail),
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an internal error occurred; it has been logged".to_owned(),
                )
            }
        }
    }

    /// The stable problem code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::Problem { code, .. } => code,
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// Maps a rejected JSON body to a precise problem (413, 415, 400 or 422).
    pub(crate) fn from_json(error: &JsonPayloadError) -> ApiError {
        match error {
            JsonPayloadError::OverflowKnownLength { length, limit } => Self::problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is {length} bytes; the limit is {limit} bytes"),
            ),
            JsonPayloadError::Overflow { limit } => Self::problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body is larger than the limit of {limit} bytes"),
            ),
            JsonPayloadError::ContentType => Self::problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, sent with Content-Type: application/json",
            ),
            JsonPayloadError::Deserialize(error) => match error.classify() {
                serde_json::error::Category::Data => Self::unprocessable(
                    "invalid_body",
                    format!(
                        "{} (line {}, column {})",
                        crate::rejection::describe_serde_message(&error.to_string()),
                        error.line(),
                        error.column()
                    ),
                ),
                _ => Self::bad_request(
                    "malformed_json",
                    format!("the body is not valid JSON: {error}"),
                ),
            },
            _ => Self::bad_request("unreadable_body", "the request body could not be read"),
        }
    }

    /// Maps a rejected query string to a 400.
    pub(crate) fn from_query(error: &QueryPayloadError) -> ApiError {
        let detail = match error {
            QueryPayloadError::Deserialize(error) => {
                crate::rejection::describe_serde_message(&error.to_string())
            }
            _ => "the query string could not be read".to_owned(),
        };
        Self::bad_request("invalid_query", format!("invalid query string: {detail}"))
    }

    /// Maps a rejected path parameter to a 404: no resource has such an address.
    pub(crate) fn from_path(_error: &PathError) -> ApiError {
        Self::not_found("not_found", "no resource has this address")
    }
}

/// The answer to a failure of what the service stands on: 503 `database_unavailable` (with
/// `Retry-After`) for an outage, else an internal error (logged, opaque to the caller).
pub(crate) fn failure<E: Outage>(error: E) -> ApiError {
    if error.is_outage() {
        tracing::error!(error = %error, "database unavailable");
        ApiError::unavailable(
            "database_unavailable",
            "the database is unavailable; try again shortly",
        )
    } else {
        ApiError::Internal(error.into())
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        let status = match rejection.kind {
            RejectionKind::BadRequest => StatusCode::BAD_REQUEST,
            RejectionKind::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
            RejectionKind::Forbidden => StatusCode::FORBIDDEN,
            RejectionKind::NotFound => StatusCode::NOT_FOUND,
        };
        Self::problem(status, rejection.code, rejection.detail)
    }
}

impl From<SubjectError> for ApiError {
    fn from(error: SubjectError) -> Self {
        match error {
            SubjectError::Store(error) => failure(error),
            SubjectError::Vault(VaultError::Store(error)) => failure(error),
            SubjectError::Suppressed => suppressed(),
            SubjectError::Vault(VaultError::Erased) => {
                crate::interactions::subject_not_found().into()
            }
            SubjectError::Contended => ApiError::Problem {
                status: StatusCode::CONFLICT,
                code: "write_conflict",
                detail:
                    "other requests kept writing the same subjects; nothing was stored, try again"
                        .into(),
            },
            other => ApiError::Internal(other.into()),
        }
    }
}

/// 403: the subject id was erased with suppression.
pub(crate) fn suppressed() -> ApiError {
    ApiError::forbidden(
        "subject_suppressed",
        "this subject_id was erased with suppression: nothing about it is accepted until a compliance officer lifts the suppression",
    )
}

impl From<ReportError> for ApiError {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::Rejected(rejection) => rejection.into(),
            ReportError::Store(error) => failure(error),
        }
    }
}

impl From<InsightError> for ApiError {
    fn from(error: InsightError) -> Self {
        match error {
            InsightError::Rejected(rejection) => rejection.into(),
            InsightError::Busy => ApiError::unavailable(
                "busy",
                "too many population queries are running; retry after the time in Retry-After",
            ),
            // Answered by the handler (429 with Retry-After); kept total here.
            InsightError::Exhausted { .. } => ApiError::problem(
                StatusCode::TOO_MANY_REQUESTS,
                "privacy_budget_exhausted",
                "the privacy budget this question draws on is spent for today",
            ),
            InsightError::Unavailable => ApiError::unavailable(
                "insights_unavailable",
                "insights cannot be computed over this data: more than 65,536 combinations of interaction type, channel and purposes",
            ),
            InsightError::Mechanism(error) => ApiError::Internal(error.into()),
            InsightError::Corrupt => {
                ApiError::Internal(anyhow::anyhow!("a released insight does not parse"))
            }
            InsightError::Store(error) => failure(error),
        }
    }
}

impl From<SegmentError> for ApiError {
    fn from(error: SegmentError) -> Self {
        match error {
            SegmentError::Rejected(rejection) => rejection.into(),
            SegmentError::NotFound => {
                ApiError::not_found("segment_not_found", "no segment has this id")
            }
            SegmentError::Busy => ApiError::unavailable(
                "busy",
                "too many segment queries are running; retry after the time in Retry-After",
            ),
            SegmentError::TooSmall { min_size } => ApiError::forbidden(
                "segment_too_small",
                format!("the segment has fewer than min_size ({min_size}) people: its members are not given"),
            ),
            SegmentError::Unrecorded(_) => super::middleware::audit_unavailable(),
            SegmentError::Store(error) => failure(error),
            SegmentError::Subject(error) => error.into(),
            SegmentError::Corrupt => ApiError::Internal(anyhow::anyhow!("a stored filter does not parse")),
            SegmentError::Noise(error) => ApiError::Internal(anyhow::anyhow!(error)),
        }
    }
}

impl<E> From<Failed<E>> for ApiError
where
    ApiError: From<E>,
{
    fn from(failed: Failed<E>) -> Self {
        match failed {
            Failed::Domain(error) => error.into(),
            Failed::Refused(rejection) => rejection.into(),
            Failed::Unrecorded(_) => super::middleware::audit_unavailable(),
        }
    }
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Key(error) => error.into(),
            AccessError::Busy => ApiError::unavailable(
                "busy",
                "too many API keys are being checked; retry after the time in Retry-After",
            ),
        }
    }
}

impl From<TrailError> for ApiError {
    fn from(error: TrailError) -> Self {
        match error {
            TrailError::SubjectNotFound => crate::interactions::subject_not_found().into(),
            TrailError::Unrecorded(_) => super::middleware::audit_unavailable(),
            TrailError::Store(error) => failure(error),
            TrailError::Subject(error) => error.into(),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Rejected(rejection) | ReadError::Refused { rejection, .. } => {
                rejection.into()
            }
            ReadError::Failed(error) => error.into(),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(error: KeyError) -> Self {
        match error {
            KeyError::InvalidApiKey => ApiError::unauthorized(
                "invalid_api_key",
                "the API key is not valid (unknown, revoked or mistyped)",
            ),
            KeyError::UnknownRole(role) => ApiError::unprocessable(
                "unknown_role",
                format!("unknown role `{role}`: the loaded policy does not define it"),
            ),
            KeyError::InvalidName(message) => ApiError::unprocessable("invalid_key_name", message),
            KeyError::NotFound => ApiError::not_found("key_not_found", "no API key has this id"),
            KeyError::Store(error) => failure(error),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Problem { status, .. } => *status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = match self {
            ApiError::Problem { detail, .. } => detail.clone(),
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "internal error");
                "an internal error occurred; it has been logged".to_owned()
            }
        };
        problem_response(status, self.code(), detail)
    }
}

/// The problem code of an error response, kept in the response's extensions for the middleware
/// that audits denials.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProblemCode(pub &'static str);

/// Builds a problem+json response.
pub(crate) fn problem_response(
    status: StatusCode,
    code: &'static str,
    detail: String,
) -> HttpResponse {
    let body = ProblemBody {
        problem_type: format!("urn:custodia:problem:{code}"),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.to_owned(),
    };
    let mut response = HttpResponse::build(status);
    response.content_type("application/problem+json");
    if status == StatusCode::UNAUTHORIZED {
        response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"custodia\""));
    }
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, "5"));
    }
    let mut response = response.json(body);
    response.extensions_mut().insert(ProblemCode(code));
    response
}
