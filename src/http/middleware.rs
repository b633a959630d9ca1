//! Middleware run on every request: `observe` (request id, access log, metrics) and
//! `authorize` (bearer token, key status, role → action), plus the [`Principal`] extractor.
//!
//! Logs carry the route pattern, never the raw path or query: paths contain subject ids.

use std::future::{ready, Ready};
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument;

use super::{access_for, Access, ApiError, AppState};
use crate::auth::{active_key_role, KeyId, Principal, TokenError};
use crate::policy::Action;

/// The header carrying the request id, on requests (optional) and every response.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request an id (a caller's UUID is kept, anything else replaced), logs one line
/// per request and records metrics.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| uuid::Uuid::parse_str(value).ok())
        .unwrap_or_else(uuid::Uuid::new_v4)
        .to_string();
    let route = req
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let span =
        tracing::info_span!("request", request_id = %request_id, method = %method, route = %route);
    let result = next.call(req).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let status = match &result {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    if let Some(state) = &state {
        state
            .metrics
            .observe(&method, &route, status.as_u16(), elapsed.as_secs_f64());
    }
    let key_id = result.as_ref().ok().and_then(|response| {
        response
            .request()
            .extensions()
            .get::<Principal>()
            .map(|principal| principal.key_id.to_string())
    });
    span.in_scope(|| {
        let latency_ms = elapsed.as_secs_f64() * 1000.0;
        let key_id = key_id.as_deref().unwrap_or("-");
        if status.is_server_error() {
            tracing::error!(
                status = status.as_u16(),
                latency_ms,
                key_id,
                "request failed"
            );
        } else {
            tracing::info!(
                status = status.as_u16(),
                latency_ms,
                key_id,
                "request answered"
            );
        }
    });
    let mut response = result?;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    Ok(response)
}

/// Runs a route only if the route table allows the caller: public routes for anyone, others
/// for a valid bearer token whose (still active) key's role holds the route's action.
pub async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let access = req
        .match_pattern()
        .and_then(|pattern| access_for(req.method(), &pattern));
    if let Some(Access::Requires(actions)) = access {
        let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
            let error = ApiError::Internal(anyhow::anyhow!("application state is missing"));
            return Ok(req.error_response(error).map_into_right_body());
        };
        match authenticate(&state, req.headers(), actions).await {
            Ok(principal) => {
                req.extensions_mut().insert(principal);
            }
            Err(error) => {
                if let ApiError::Problem { code, .. } = &error {
                    tracing::info!(action = %actions[0], reason = code, "request denied");
                }
                return Ok(req.error_response(error).map_into_right_body());
            }
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

async fn authenticate(
    state: &AppState,
    headers: &header::HeaderMap,
    actions: &[Action],
) -> Result<Principal, ApiError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthorized(
            "missing_token",
            "this route needs an Authorization: Bearer <token> header; get a token from POST /v1/auth/token",
        )
    })?;
    let token = value
        .to_str()
        .ok()
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            ApiError::unauthorized(
                "invalid_token",
                "the Authorization header must be `Bearer <token>`",
            )
        })?;
    let claims = state.tokens.verify(token).map_err(|error| match error {
        TokenError::Expired => ApiError::unauthorized(
            "token_expired",
            "the access token has expired; get a new one from POST /v1/auth/token",
        ),
        TokenError::Invalid(_) => {
            ApiError::unauthorized("invalid_token", "the access token is not valid")
        }
    })?;
    let invalid = || ApiError::unauthorized("invalid_token", "the access token is not valid");
    let key_id = KeyId::parse(&claims.sub).ok_or_else(invalid)?;
    let active_role = match state.key_status.cached(key_id.as_str()) {
        Some(role) => role,
        None => {
            let lookup_id = key_id.clone();
            let role = state
                .db
                .run(move |conn| active_key_role(conn, lookup_id.as_str()))
                .await?;
            state.key_status.remember(key_id.as_str(), role.clone());
            role
        }
    };
    let role = match active_role {
        Some(role) if role == claims.role => role,
        Some(_) => return Err(invalid()),
        None => {
            return Err(ApiError::unauthorized(
                "key_revoked",
                "the API key behind this token has been revoked",
            ))
        }
    };
    let mut denial = crate::policy::Denial::ActionNotPermitted;
    let mut granted = None;
    for action in actions {
        match state.policy.authorize_action(&role, *action) {
            Ok(found) => {
                granted = Some(found);
                break;
            }
            Err(refused) => denial = refused,
        }
    }
    let role = granted.ok_or_else(|| {
        let names: Vec<&str> = actions.iter().map(|action| action.as_str()).collect();
        ApiError::forbidden(
            denial.code(),
            format!("role `{role}` may not perform `{}`", names.join("` or `")),
        )
    })?;
    Ok(Principal {
        key_id,
        role: role.id.clone(),
    })
}

/// The authenticated caller, put in the request by [`authorize`]. Extracting it on a route
/// whose table entry is public fails with 401.
impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Principal, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(req.extensions().get::<Principal>().cloned().ok_or_else(|| {
            ApiError::unauthorized("missing_token", "this route needs a bearer token")
        }))
    }
}
