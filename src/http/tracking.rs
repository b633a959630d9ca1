//! The tracking protocol of Segment's and RudderStack's SDKs (`docs/tracking.md`):
//! `POST /v1/batch`, `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/identify`, `/v1/alias` and
//! `/v1/group` (accepted, nothing kept). An API key of a collecting role is the write key, sent
//! with HTTP Basic; bodies may be gzip-compressed.

use std::io::Read as _;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;

use super::audit_trail;
use super::consents::has_gpc;
use super::{ApiError, AppState};
use crate::app::tracking::{self as app, TrackingError};
use crate::audit::Actor;
use crate::auth::Principal;
use crate::tracking::{Call, MAX_BATCH_BYTES, MAX_MESSAGE_BYTES};

/// The protocol's answer to a request it took.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct Accepted {
    /// Always `true`: the messages were read; each was stored or refused by the policy (see
    /// the metrics and the audit log).
    pub(crate) success: bool,
}

/// The body, decompressed when it is gzip, of at most `limit` bytes either way.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::bad_request(
            "body_too_large",
            format!("the body may be at most {} KiB", limit / 1024),
        )
    };
    let mut raw = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        })?;
        if raw.len() + chunk.len() > limit {
            return Err(too_large());
        }
        raw.extend_from_slice(&chunk);
    }
    let encoding = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("identity") => Ok(raw),
        Some("gzip") => {
            let mut body = Vec::new();
            let read = flate2::read::GzDecoder::new(raw.as_slice())
                .take(limit as u64 + 1)
                .read_to_end(&mut body);
            match read {
                Ok(_) if body.len() > limit => Err(too_large()),
                Ok(_) => Ok(body),
                Err(_) => Err(ApiError::bad_request(
                    "invalid_body",
                    "the body is not valid gzip",
                )),
            }
        }
        Some(_) => Err(ApiError::bad_request(
            "unsupported_encoding",
            "the body may be sent as is or gzip-compressed (Content-Encoding: gzip)",
        )),
    }
}

async fn receive(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    payload: web::Payload,
    call: Option<Call>,
) -> Result<HttpResponse, ApiError> {
    let limit = if call.is_some() {
        MAX_MESSAGE_BYTES
    } else {
        MAX_BATCH_BYTES
    };
    let body = read_body(&request, payload, limit).await?;
    let gpc = has_gpc(request.headers());
    let tracked = match app::collect(&state.services, &principal, &actor, call, &body, gpc).await {
        Ok(tracked) => tracked,
        Err(TrackingError::Malformed(rejection)) => return Err(rejection.into()),
        Err(TrackingError::Failed(failed)) => {
            return audit_trail::settle(&request, Err::<HttpResponse, _>(failed))
        }
    };
    let metrics = &state.web.metrics;
    metrics.tracked("stored", tracked.stored);
    metrics.tracked("duplicate", tracked.duplicates);
    metrics.tracked("refused", tracked.refused);
    metrics.tracked("no_purpose", tracked.no_purpose);
    metrics.tracked("properties_dropped", tracked.properties_dropped);
    metrics.tracked("identified", tracked.identified);
    metrics.tracked("ignored", tracked.ignored);
    metrics.tracked("consented", tracked.consented);
    for link in &tracked.links {
        metrics.linked(link.outcome(), 1);
    }
    Ok(HttpResponse::Ok().json(Accepted { success: true }))
}

/// Messages of several calls at once, as the SDKs send them.
#[utoipa::path(post, operation_id = "tracking_batch", path = "/v1/batch", tag = "tracking",
    security(("basic" = []), ("bearer" = [])),
    request_body(content = Object, description = "`{\"batch\": [message, …], \"sentAt\": …}`, at most 500 KiB (before or after gzip), each message at most 32 KiB, at most 1,000 messages"),
    responses(
        (status = 200, description = "Read; each message stored or refused by the policy", body = Accepted),
        (status = 400, description = "A malformed message; nothing of the request stored",
            body = super::problem::ProblemBody, content_type = "application/problem+json"),
    ))]
pub(crate) async fn batch(
    state: web::Data<AppState>,
    principal: Principal,
    actor: Actor,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    receive(state, principal, actor, request, payload, None).await
}

macro_rules! single_call {
    ($name:ident, $call:expr, $path:literal, $operation:literal, $what:literal) => {
        #[doc = $what]
        #[utoipa::path(post, operation_id = $operation, path = $path, tag = "tracking",
            security(("basic" = []), ("bearer" = [])),
            request_body(content = Object, description = "One message of the call, at most 32 KiB"),
            responses(
                (status = 200, description = "Read; stored or refused by the policy", body = Accepted),
                (status = 400, description = "Malformed; nothing stored",
                    body = super::problem::ProblemBody, content_type = "application/problem+json"),
            ))]
        pub(crate) async fn $name(
            state: web::Data<AppState>,
            principal: Principal,
            actor: Actor,
            request: HttpRequest,
            payload: web::Payload,
        ) -> Result<HttpResponse, ApiError> {
            receive(state, principal, actor, request, payload, Some($call)).await
        }
    };
}

single_call!(
    track,
    Call::Track,
    "/v1/track",
    "tracking_track",
    "An event (`track`)."
);
single_call!(
    page,
    Call::Page,
    "/v1/page",
    "tracking_page",
    "A page view (`page`)."
);
single_call!(
    screen,
    Call::Screen,
    "/v1/screen",
    "tracking_screen",
    "A screen view (`screen`)."
);
single_call!(
    identify,
    Call::Identify,
    "/v1/identify",
    "tracking_identify",
    "Who the user is (`identify`): identifiers and declared traits."
);
single_call!(
    alias,
    Call::Alias,
    "/v1/alias",
    "tracking_alias",
    "An anonymous id (`previousId`) linked to the user (`alias`): identity resolution."
);
single_call!(
    group,
    Call::Group,
    "/v1/group",
    "tracking_group",
    "A user's group (`group`): accepted, nothing of it kept."
);
