//! Audit entries of requests that wrote nothing (reads, lookups, denials): a handler adds them
//! to its request, and the authorization middleware commits them before the response leaves.
//! If they cannot be committed, the caller gets a 503 instead of the data.
//!
//! Writes do not use this: their entries are appended in their own transaction.

use std::future::{ready, Ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

use super::ApiError;
use crate::app::Failed;
use crate::audit::{Actor, Entry};
use crate::auth::Principal;

/// The request's id (from `X-Request-Id` when it is a UUID, or new), put in the request by
/// the `observe` middleware.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Entries waiting for the response, each with the subject id it is about when the handler
/// knows one but not the person's pseudonym (a denial decided before the person was looked
/// at).
#[derive(Debug, Default)]
pub(super) struct Pending(pub Vec<(Entry, Option<String>)>);

fn push(request: &HttpRequest, entry: Entry, about: Option<String>) {
    let mut extensions = request.extensions_mut();
    match extensions.get_mut::<Pending>() {
        Some(pending) => pending.0.push((entry, about)),
        None => {
            extensions.insert(Pending(vec![(entry, about)]));
        }
    }
}

/// Adds an entry to be committed before this request's response is sent.
pub fn record(request: &HttpRequest, entry: Entry) {
    push(request, entry, None);
}

/// Adds a denial about the person with this subject id (named in the body): the middleware
/// adds their pseudonym when they exist, before committing it.
pub fn record_about(request: &HttpRequest, entry: Entry, subject_id: &str) {
    push(request, entry, Some(subject_id.to_owned()));
}

/// The domain has recorded the denial this request is answered with: the middleware adds no
/// generic one.
#[derive(Debug, Clone, Copy)]
pub(super) struct DenialRecorded;

/// Marks a request whose refusal the domain service audited itself.
pub fn denial_recorded(request: &HttpRequest) {
    request.extensions_mut().insert(DenialRecorded);
}

/// A service's answer as the handler returns it: a refusal the service audited itself is marked
/// so (the middleware adds no generic entry for it).
pub fn settle<T, E>(request: &HttpRequest, result: Result<T, Failed<E>>) -> Result<T, ApiError>
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

/// Takes the entries waiting in a request.
pub(super) fn take(request: &HttpRequest) -> Vec<(Entry, Option<String>)> {
    request
        .extensions_mut()
        .remove::<Pending>()
        .map(|pending| pending.0)
        .unwrap_or_default()
}

/// The actor of a request: the authenticated caller and the request id.
pub fn actor_of(request: &HttpRequest) -> Option<Actor> {
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
