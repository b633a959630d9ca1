//! Who a request acts as (its [`Actor`], from the authenticated caller and the request id), and
//! whether the service it called audited its refusal itself (then the authorization middleware
//! adds no entry of its own). Every other audit entry is written by the services.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use super::ApiError;
use crate::app::Failed;
use crate::audit::Actor;
use crate::auth::Principal;

/// The request's id (from `X-Request-Id` when it is a UUID, or new), put in the request by
/// the `observe` middleware.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub String);

/// The domain has recorded the denial this request is answered with: the middleware adds no
/// generic one.
#[derive(Debug, Clone, Copy)]
pub(super) struct DenialRecorded;

/// Marks a request whose refusal the domain service audited itself.
pub(crate) fn denial_recorded(request: &HttpRequest) {
    request.extensions_mut().insert(DenialRecorded);
}

/// A service's answer as the handler returns it: a refusal the service audited itself is marked
/// so (the middleware adds no generic entry for it).
pub(crate) fn settle<T, E>(
    request: &HttpRequest,
    result: Result<T, Failed<E>>,
) -> Result<T, ApiError>
where
    ApiError: From<E>,
{
    result.map_err(|failed| {
        if matches!(failed, Failed::Refused(_)) {
            denial_recorded(request);
        }
        <ApiError as From<Failed<E>>>::from(failed)
    })
}

/// Whether the domain audited this request's refusal.
pub(super) fn has_recorded_denial(request: &HttpRequest) -> bool {
    request.extensions().get::<DenialRecorded>().is_some()
}

/// The actor of a request: the authenticated caller and the request id.
pub(crate) fn actor_of(request: &HttpRequest) -> Option<Actor> {
    let extensions = request.extensions();
    let principal = extensions.get::<Principal>()?;
    let request_id = extensions.get::<RequestId>().map(|id| id.0.clone());
    Some(principal.actor(request_id))
}

/// Extracting an [`Actor`] on a route whose table entry is public fails with 401.
impl FromRequest for Actor {
    type Error = ApiError;
    type Future = Ready<Result<Actor, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(actor_of(req).ok_or_else(|| {
            ApiError::unauthorized("missing_token", "this route needs a bearer token")
        }))
    }
}
