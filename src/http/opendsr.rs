//! The OpenDSR 2.0 routes (`/opendsr/v2/…`): discovery and the certificate (public), and
//! requests — receive, status, cancel — for API keys whose role holds `requests.manage`.
//! Every answer is signed over its exact body (`X-OpenDSR-Signature`, with
//! `X-OpenDSR-Processor-Domain`); every error on these routes has the specification's shape
//! (`{"error": {"code", "message", "errors": [...]}}`, see [`spec_errors`]).

use actix_web::body::{to_bytes, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Value};

use super::{ApiError, AppState};
use crate::app::opendsr as app;
use crate::audit::Actor;
use crate::requests::opendsr::{
    self, ErrorDetail, IncomingRequest, OpenDsrError, StatusBody, API_VERSION,
    SUPPORTED_IDENTITIES, SUPPORTED_TYPES,
};

/// The path prefix of these routes.
pub(crate) const PREFIX: &str = "/opendsr/";

/// The header carrying a signature (ours on answers and callbacks; a controller's on requests
/// when controllers must sign).
pub(crate) const SIGNATURE: &str = "X-OpenDSR-Signature";
/// The header naming the processor's domain.
pub(crate) const PROCESSOR_DOMAIN: &str = "X-OpenDSR-Processor-Domain";
/// The header naming a signing controller's domain.
pub(crate) const CONTROLLER_DOMAIN: &str = "X-OpenDSR-Controller-Domain";

/// An error in the specification's shape.
fn spec_error(status: StatusCode, message: &str, errors: Vec<ErrorDetail>) -> HttpResponse {
    let body = json!({"error": {"code": status.as_u16(), "message": message, "errors": errors}});
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body.to_string())
}

impl From<OpenDsrError> for ApiError {
    fn from(error: OpenDsrError) -> Self {
        let conflict = |code: &'static str, detail: String| ApiError::Problem {
            status: StatusCode::CONFLICT,
            code,
            detail,
        };
        match error {
            OpenDsrError::NotFound => ApiError::not_found(
                "request_not_found",
                "no request with this subject_request_id",
            ),
            OpenDsrError::IdConflict => conflict(
                "subject_request_id_conflict",
                "this subject_request_id was already used for another request".into(),
            ),
            OpenDsrError::NotPending(status) => conflict(
                "not_pending",
                format!("only a pending request can be cancelled; this one is {status}"),
            ),
            OpenDsrError::Request(error) => error.into(),
        }
    }
}

/// Answers `body` signed: `X-OpenDSR-Signature` over the exact bytes sent.
fn signed(state: &AppState, status: StatusCode, body: &impl Serialize) -> HttpResponse {
    let bytes = serde_json::to_vec(body).expect("a response encodes");
    HttpResponse::build(status)
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((PROCESSOR_DOMAIN, state.opendsr.identity.domain()))
        .insert_header((SIGNATURE, state.opendsr.identity.sign(&bytes)))
        .body(bytes)
}

/// The discovery document.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DiscoveryBody {
    /// The version spoken.
    pub(crate) api_version: &'static str,
    /// Identity type and format pairs accepted.
    #[schema(value_type = Vec<Object>)]
    pub(crate) supported_identities: Vec<Value>,
    /// Request types accepted.
    pub(crate) supported_subject_request_types: Vec<&'static str>,
    /// Where the certificate that signs answers and callbacks can be downloaded.
    pub(crate) processor_certificate: String,
}

/// What this processor supports, and where its certificate is.
#[utoipa::path(get, operation_id = "opendsr_discovery", path = "/opendsr/v2/discovery", tag = "opendsr",
    responses((status = 200, description = "The discovery document (signed)", body = DiscoveryBody)))]
pub(crate) async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    signed(
        &state,
        StatusCode::OK,
        &DiscoveryBody {
            api_version: API_VERSION,
            supported_identities: SUPPORTED_IDENTITIES
                .iter()
                .map(|(kind, format)| json!({"identity_type": kind, "identity_format": format}))
                .collect(),
            supported_subject_request_types: SUPPORTED_TYPES.to_vec(),
            processor_certificate: format!("{}/opendsr/v2/certificate", state.web.public_url),
        },
    )
}

/// The certificate (PEM) whose key signs answers and callbacks.
#[utoipa::path(get, operation_id = "opendsr_certificate", path = "/opendsr/v2/certificate", tag = "opendsr",
    responses((status = 200, description = "The processor's certificate, PEM",
        content_type = "application/x-pem-file", body = String)))]
pub(crate) async fn certificate(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .body(state.opendsr.identity.certificate_pem().to_owned())
}

/// The answer to a received request.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedBody {
    /// The controller's identity here (its API key's id).
    pub(crate) controller_id: String,
    /// When the processor received it.
    pub(crate) received_time: String,
    /// When it is expected to be fulfilled (its deadline).
    pub(crate) expected_completion_time: String,
    /// The controller's id for it.
    pub(crate) subject_request_id: String,
    /// The request body as received, base64.
    pub(crate) encoded_request: String,
    /// The version spoken.
    pub(crate) api_version: &'static str,
    /// The processor's signature (base64) of the request body exactly as received (the bytes
    /// of `encoded_request`): a receipt the controller can keep and verify with the published
    /// certificate. (The whole answer is signed in `X-OpenDSR-Signature`.)
    pub(crate) processor_signature: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes))
}

/// Receives a data-subject request from a controller. Idempotent on `subject_request_id`.
#[utoipa::path(post, operation_id = "opendsr_create", path = "/opendsr/v2/requests", tag = "opendsr", security(("bearer" = [])),
    request_body = IncomingRequest,
    responses(
        (status = 201, description = "Received (signed)", body = CreatedBody),
        (status = 400, description = "Not a valid request", body = Object),
        (status = 403, description = "A required controller signature is missing or wrong", body = Object),
        (status = 409, description = "The subject_request_id was used for another request", body = Object),
    ))]
pub(crate) async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    actor: Actor,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    if let Some(controllers) = &state.opendsr.controllers {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
        };
        let verified = match (header(CONTROLLER_DOMAIN), header(SIGNATURE)) {
            (Some(domain), Some(signature)) => controllers.verify(domain, signature, &body),
            _ => false,
        };
        if !verified {
            return Ok(spec_error(
                StatusCode::FORBIDDEN,
                "the request must be signed by an allowed controller",
                vec![ErrorDetail {
                    domain: "Authentication",
                    reason: "invalid_controller_signature",
                    message: format!(
                        "{SIGNATURE} must be the signature of the body by the controller named in {CONTROLLER_DOMAIN}"
                    ),
                }],
            ));
        }
    }
    let incoming: IncomingRequest = match serde_json::from_slice(&body) {
        Ok(incoming) => incoming,
        Err(error) => {
            // serde's message names the field or the position, never a value.
            let message = match error.classify() {
                serde_json::error::Category::Data => {
                    format!("the request does not have the specification's shape: {error}")
                }
                _ => format!(
                    "the body is not valid JSON (line {}, column {})",
                    error.line(),
                    error.column()
                ),
            };
            return Ok(spec_error(
                StatusCode::BAD_REQUEST,
                "the request is not valid",
                vec![ErrorDetail {
                    domain: "Validation",
                    reason: "invalid_body",
                    message,
                }],
            ));
        }
    };
    let validated = match incoming.validate() {
        Ok(validated) => validated,
        Err(errors) => {
            let message = errors
                .first()
                .map(|error| error.message.clone())
                .unwrap_or_default();
            return Ok(spec_error(StatusCode::BAD_REQUEST, &message, errors));
        }
    };
    let refused =
        opendsr::check_callback_urls(&validated.callback_urls, state.opendsr.private_callbacks)
            .await;
    if let Some(first) = refused.first() {
        let message = first.message.clone();
        return Ok(spec_error(StatusCode::BAD_REQUEST, &message, refused));
    }
    let body_sha256 = sha256_hex(&body);
    let base = state.web.public_url.to_string();
    let receipt = app::receive(&state.services, &actor, validated, body_sha256, base).await?;
    let created = CreatedBody {
        controller_id: receipt.row.controller_id.clone(),
        received_time: opendsr::rfc3339(receipt.row.received_at),
        expected_completion_time: opendsr::rfc3339(receipt.request.due_at),
        subject_request_id: receipt.row.subject_request_id.clone(),
        encoded_request: STANDARD.encode(&body),
        api_version: API_VERSION,
        processor_signature: state.opendsr.identity.sign(&body),
    };
    Ok(signed(&state, StatusCode::CREATED, &created))
}

/// A request's status: `pending`, `in_progress`, `completed` (with `results_url` and
/// `results_count`) or `cancelled`.
#[utoipa::path(get, operation_id = "opendsr_status", path = "/opendsr/v2/requests/{subject_request_id}", tag = "opendsr",
    security(("bearer" = [])),
    params(("subject_request_id" = String, Path, description = "The controller's id for the request")),
    responses(
        (status = 200, description = "Its status (signed)", body = StatusBody),
        (status = 404, description = "No such request from this controller", body = Object),
    ))]
pub(crate) async fn status(
    state: web::Data<AppState>,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let receipt = app::status(&state.services, &actor, path.into_inner()).await?;
    Ok(signed(
        &state,
        StatusCode::OK,
        &opendsr::status_body(&receipt.row, &receipt.request),
    ))
}

/// The answer to a cancellation.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CancelledBody {
    /// The controller's identity here.
    pub(crate) controller_id: String,
    /// The controller's id for the request.
    pub(crate) subject_request_id: String,
    /// When the cancellation was received.
    pub(crate) received_time: String,
    /// The version spoken.
    pub(crate) api_version: &'static str,
}

/// Cancels a pending request.
#[utoipa::path(delete, operation_id = "opendsr_cancel", path = "/opendsr/v2/requests/{subject_request_id}", tag = "opendsr",
    security(("bearer" = [])),
    params(("subject_request_id" = String, Path, description = "The controller's id for the request")),
    responses(
        (status = 202, description = "Cancelled (signed)", body = CancelledBody),
        (status = 404, description = "No such request from this controller", body = Object),
        (status = 409, description = "The request is no longer pending", body = Object),
    ))]
pub(crate) async fn cancel(
    state: web::Data<AppState>,
    actor: Actor,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let receipt = app::cancel(&state.services, &actor, path.into_inner()).await?;
    Ok(signed(
        &state,
        StatusCode::ACCEPTED,
        &CancelledBody {
            controller_id: receipt.row.controller_id.clone(),
            subject_request_id: receipt.row.subject_request_id.clone(),
            received_time: opendsr::rfc3339(state.services.clock.now_naive()),
            api_version: API_VERSION,
        },
    ))
}

/// On `/opendsr/` routes, every problem (from authentication, routing, extraction or a handler)
/// is answered in the specification's error shape instead of RFC 9457:
/// `{"error": {"code": <status>, "message": <detail>, "errors": [{"domain", "reason": <code>,
/// "message": <detail>}]}}`.
pub(crate) async fn spec_errors(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let ours = request.path().starts_with(PREFIX);
    let response = next.call(request).await?;
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/problem+json"));
    if !ours || !is_problem {
        return Ok(response.map_into_boxed_body());
    }
    let (request, response) = response.into_parts();
    let status = response.status();
    let kept: Vec<(header::HeaderName, header::HeaderValue)> =
        [header::WWW_AUTHENTICATE, header::ALLOW, header::RETRY_AFTER]
            .into_iter()
            .filter_map(|name| {
                let value = response.headers().get(&name).cloned()?;
                Some((name, value))
            })
            .collect();
    let bytes = to_bytes(response.into_body()).await.unwrap_or_default();
    let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let detail = problem["detail"].as_str().unwrap_or("the request failed");
    let reason = problem["code"].as_str().unwrap_or("error");
    let domain = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "Authentication",
        status if status.is_server_error() => "Server",
        _ => "Validation",
    };
    let body = json!({"error": {"code": status.as_u16(), "message": detail,
        "errors": [{"domain": domain, "reason": reason, "message": detail}]}});
    let mut converted = HttpResponse::build(status);
    converted
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"));
    for (name, value) in kept {
        converted.insert_header((name, value));
    }
    Ok(ServiceResponse::new(request, converted.body(body.to_string())).map_into_boxed_body())
}
