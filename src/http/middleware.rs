//! Middleware run on every request: `observe` (request id, access log, metrics) and
//! `authorize` (bearer token, key status, role → action), plus the [`Principal`] extractor.
//!
//! Logs carry the route pattern, never the raw path or query: paths contain subject ids.

use std::future::{ready, Ready};
use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, Error, FromRequest, HttpMessage, HttpRequest};
use tracing::Instrument;

use super::audit_trail::{self, RequestId};
use super::limits::too_many_requests;
use super::problem::ProblemCode;
use super::{access_for, Access, ApiError, AppState};
use crate::audit::Entry;
use crate::auth::{KeyId, Principal, TokenError};
use crate::policy::{Action, RoleId};

/// The header carrying the request id, on requests (optional) and every response.
pub(crate) const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Gives every request an id (a caller's UUID is kept, anything else replaced), logs one line
/// per request and records metrics.
pub(crate) async fn observe(
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
    // Matching the path against the route table runs every pattern's regular expression: it is
    // done once here, and `authorize` reads the result.
    let pattern = req.match_pattern();
    let route = pattern.clone().unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    req.extensions_mut().insert(RequestId(request_id.clone()));
    req.extensions_mut().insert(RoutePattern(pattern));
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
            .web
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

/// The route pattern `observe` matched the request to (`None`: no route).
#[derive(Clone)]
struct RoutePattern(Option<String>);

/// The route pattern of a request: as `observe` matched it, or matched now.
fn pattern_of(req: &HttpRequest) -> Option<String> {
    if let Some(RoutePattern(pattern)) = req.extensions().get::<RoutePattern>() {
        return pattern.clone();
    }
    req.match_pattern()
}

/// The route that exchanges API keys for tokens.
const TOKEN_ROUTE: &str = "/v1/auth/token";

/// Runs a route only if the route table allows the caller: public routes for anyone, others
/// for a valid bearer token whose (still active) key's role holds the route's action.
///
/// It also keeps the audit promise for refusals the services do not see: a refusal by the role
/// check is recorded (about the person of the route, by pseudonym), and so is any other 403 the
/// handler answers without its service having audited it; when that cannot be written, the
/// response becomes a 503. Reads and writes are audited by the services themselves.
///
/// Rate limits come first: a key past its rate, or an address past its rate of token
/// exchanges, gets 429 with `Retry-After` (`http::limits`).
pub(crate) async fn authorize(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let pattern = pattern_of(req.request());
    let access = pattern
        .as_deref()
        .and_then(|pattern| access_for(req.method(), pattern));
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let error = ApiError::Internal(anyhow::anyhow!("application state is missing"));
        return Ok(req.error_response(error).map_into_right_body());
    };
    let Some(actions) = access.and_then(|access| access.actions()) else {
        // Each token exchange costs an argon2id hash: a rate per client address.
        if pattern.as_deref() == Some(TOKEN_ROUTE) {
            if let Err(wait) = charge_key_check(&state, &req) {
                let response = too_many_requests(wait, "token requests from this address");
                return Ok(req.into_response(response).map_into_right_body());
            }
        }
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let write_key = matches!(access, Some(Access::WriteKey(_)));
    let basic = if write_key {
        basic_credentials(req.headers())
    } else {
        None
    };
    let authenticated = match basic {
        Some(Err(error)) => Err(error),
        Some(Ok(presented)) => {
            match crate::app::access::remembered_write_key(&state.services, &presented).await {
                Ok(Some(principal)) => Ok(principal),
                Ok(None) => match charge_key_check(&state, &req) {
                    // A key not checked before costs an argon2id hash, like a token exchange.
                    Err(wait) => {
                        let response = too_many_requests(wait, "API key checks from this address");
                        return Ok(req.into_response(response).map_into_right_body());
                    }
                    Ok(()) => crate::app::access::check_write_key(&state.services, presented)
                        .await
                        .map_err(ApiError::from),
                },
                Err(error) => Err(ApiError::from(error)),
            }
        }
        None => authenticate(&state, req.headers()).await,
    };
    let principal = match authenticated {
        Ok(principal) => principal,
        Err(error) => return Ok(req.error_response(error).map_into_right_body()),
    };
    if let Err(wait) = state.limits.check_key(principal.key_id.as_str()) {
        let response = too_many_requests(wait, "requests with this API key");
        return Ok(req.into_response(response).map_into_right_body());
    }
    let request_id = req.extensions().get::<RequestId>().map(|id| id.0.clone());
    let actor = principal.actor(request_id);
    if let Err(error) = permit(&state, &principal.role, actions) {
        let code = error.code();
        tracing::info!(action = %actions[0], reason = code, "request denied");
        let subject = subject_in_path(pattern.as_deref(), req.uri());
        let entry = Entry::new(&actor, actions[0].as_str()).denied(code);
        if let Err(failure) = record_refusal(&state, entry, subject.as_deref()).await {
            return Ok(req.error_response(failure).map_into_right_body());
        }
        return Ok(req.error_response(error).map_into_right_body());
    }
    req.extensions_mut().insert(principal);
    let response = next.call(req).await?;
    // A refusal the handler's service did not audit (a role-level one it reached, a purpose
    // the request named): audited here, about the person of the route.
    if response.status() == StatusCode::FORBIDDEN
        && !audit_trail::has_recorded_denial(response.request())
    {
        let code = response
            .response()
            .extensions()
            .get::<ProblemCode>()
            .map_or("forbidden", |code| code.0);
        let entry = Entry::new(&actor, actions[0].as_str()).denied(code);
        let subject = subject_in_path(pattern.as_deref(), response.request().uri());
        if let Err(failure) = record_refusal(&state, entry, subject.as_deref()).await {
            let (request, _) = response.into_parts();
            let failed = actix_web::ResponseError::error_response(&failure);
            return Ok(ServiceResponse::new(request, failed).map_into_right_body());
        }
    }
    Ok(response.map_into_left_body())
}

/// The compiled patterns of the routes that name a person in their path (compiling one builds
/// a regular expression: once per process, not per request).
static SUBJECT_ROUTES: std::sync::LazyLock<
    std::collections::HashMap<&'static str, actix_web::dev::ResourceDef>,
> = std::sync::LazyLock::new(|| {
    super::endpoints()
        .iter()
        .filter(|endpoint| endpoint.path.contains("{subject_id}"))
        .map(|endpoint| {
            (
                endpoint.path,
                actix_web::dev::ResourceDef::new(endpoint.path),
            )
        })
        .collect()
});

/// The `{subject_id}` of a route that names a person in its path, decoded as the router does.
fn subject_in_path(pattern: Option<&str>, uri: &actix_web::http::Uri) -> Option<String> {
    let resource = SUBJECT_ROUTES.get(pattern?)?;
    let mut path = actix_web::dev::Path::new(actix_web::dev::Url::new(uri.clone()));
    if !resource.capture_match_info(&mut path) {
        return None;
    }
    path.get("subject_id").map(str::to_owned)
}

/// Audits a refusal about the person of the route (by pseudonym, when they exist); when that
/// cannot be written, the caller gets a 503 instead of the refusal.
async fn record_refusal(
    state: &AppState,
    entry: Entry,
    about: Option<&str>,
) -> Result<(), ApiError> {
    crate::app::record_refusal(&state.services, entry, about)
        .await
        .map_err(|error| {
            tracing::error!(error = %error, "could not audit a refusal; the response is withheld");
            audit_unavailable()
        })
}

/// The 503 of a response withheld because its audit entries could not be written.
pub(crate) fn audit_unavailable() -> ApiError {
    ApiError::unavailable(
        "audit_unavailable",
        "the audit log could not be written, so nothing is answered; try again shortly",
    )
}

/// Rule 1 for the route: the role holds one of the route's actions.
fn permit(state: &AppState, role: &RoleId, actions: &[Action]) -> Result<(), ApiError> {
    let mut denial = crate::policy::Denial::ActionNotPermitted;
    for action in actions {
        match state
            .services
            .policy
            .authorize_action(role.as_str(), *action)
        {
            Ok(_) => return Ok(()),
            Err(refused) => denial = refused,
        }
    }
    let names: Vec<&str> = actions.iter().map(|action| action.as_str()).collect();
    Err(ApiError::forbidden(
        denial.code(),
        format!("role `{role}` may not perform `{}`", names.join("` or `")),
    ))
}

/// Charges the client address's rate of key checks (argon2id hashes: token exchanges, write
/// keys not checked before); how long to wait when it is spent.
fn charge_key_check(state: &AppState, req: &ServiceRequest) -> Result<(), std::time::Duration> {
    let Some(peer) = req.peer_addr().map(|peer| peer.ip()) else {
        return Ok(());
    };
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .collect();
    let address = state.web.trusted_proxies.client(peer, &forwarded);
    state.limits.check_token_exchange(address)
}

/// The API key of an `Authorization: Basic` header (the username; the password when the
/// username is empty, as some clients send it): `None` when the header is not Basic.
fn basic_credentials(
    headers: &header::HeaderMap,
) -> Option<Result<zeroize::Zeroizing<String>, ApiError>> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let invalid = || {
        ApiError::unauthorized(
            "invalid_credentials",
            "the Authorization header must be `Basic base64(<API key>:)`",
        )
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return Some(Err(invalid()));
    };
    let decoded = zeroize::Zeroizing::new(decoded);
    let Ok(text) = std::str::from_utf8(&decoded) else {
        return Some(Err(invalid()));
    };
    let (user, password) = text.split_once(':').unwrap_or((text, ""));
    let key = if user.is_empty() { password } else { user };
    if key.is_empty() {
        return Some(Err(invalid()));
    }
    Some(Ok(zeroize::Zeroizing::new(key.to_owned())))
}

/// The caller of a valid bearer token whose API key is still active.
async fn authenticate(
    state: &AppState,
    headers: &header::HeaderMap,
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
    let claims = state
        .services
        .tokens
        .verify(token)
        .map_err(|error| match error {
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
    let active_role = crate::app::access::active_role(&state.services, &key_id)
        .await
        .map_err(super::problem::failure)?;
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
    let role = RoleId::parse(&role).map_err(|_| invalid())?;
    Ok(Principal { key_id, role })
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
