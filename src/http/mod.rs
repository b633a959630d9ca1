//! The HTTP boundary: one file per resource, the request/response types, the route table,
//! and the middleware that observes and authorizes every request.
//!
//! [`endpoints`] is the single route table. `startup` mounts exactly these routes, and the
//! authorization middleware looks up each request's route in it: a route under `/v1` runs only
//! if its entry's action is held by the caller's role. Nothing is mounted outside the table
//! except the `/docs` UI assets.

pub(crate) mod audit;
pub(crate) mod audit_trail;
pub(crate) mod auth;
pub(crate) mod body_deadline;
pub(crate) mod connections;
pub(crate) mod consents;
pub(crate) mod console;
pub(crate) mod export;
pub(crate) mod holds;
pub(crate) mod insights;
pub(crate) mod interactions;
pub(crate) mod keys;
pub(crate) mod limits;
pub(crate) mod metrics;
pub(crate) mod middleware;
pub(crate) mod openapi;
pub(crate) mod opendsr;
pub(crate) mod ops;
pub(crate) mod policy;
pub(crate) mod problem;
pub(crate) mod reports;
pub(crate) mod requests;
pub(crate) mod segments;
pub(crate) mod state;
pub(crate) mod subjects;
pub(crate) mod tracking;

use std::sync::LazyLock;

use actix_web::http::Method;
use actix_web::Route;

pub(crate) use metrics::Metrics;
pub(crate) use problem::ApiError;
pub(crate) use state::{AppState, OpenDsr, Web};

use crate::policy::Action;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// A bearer token whose role holds one of these actions.
    Requires(&'static [Action]),
    /// As `Requires`, or an API key sent with HTTP Basic as the username (the write key of the
    /// tracking SDKs, which cannot exchange it for a token).
    WriteKey(&'static [Action]),
}

impl Access {
    /// The actions one of which the caller's role must hold; `None` for a public route.
    pub fn actions(&self) -> Option<&'static [Action]> {
        match self {
            Access::Public => None,
            Access::Requires(actions) | Access::WriteKey(actions) => Some(actions),
        }
    }
}

/// One row of the route table (public: it is the contract every route is checked against).
pub struct Endpoint {
    /// The HTTP method.
    pub method: Method,
    /// The path pattern, as actix-web writes it (`/v1/keys/{id}`).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Attaches the handler to a route.
    pub(crate) handler: fn(Route) -> Route,
    /// The largest JSON body this route accepts, when it differs from the default.
    pub(crate) body_limit: Option<usize>,
}

macro_rules! endpoint {
    ($method:ident $path:literal, $access:expr, $handler:path) => {
        endpoint!($method $path, $access, $handler, None)
    };
    ($method:ident $path:literal, $access:expr, $handler:path, $limit:expr) => {
        Endpoint {
            method: Method::$method,
            path: $path,
            access: $access,
            handler: |route| route.to($handler),
            body_limit: $limit,
        }
    };
}

static ENDPOINTS: LazyLock<Vec<Endpoint>> = LazyLock::new(|| {
    use Access::{Public, Requires, WriteKey};
    const COLLECT: &[Action] = &[Action::InteractionsWrite];
    vec![
        endpoint!(GET "/healthz", Public, ops::healthz),
        endpoint!(GET "/readyz", Public, ops::readyz),
        endpoint!(GET "/metrics", Public, ops::metrics),
        endpoint!(GET "/openapi.json", Public, openapi::openapi_json),
        endpoint!(GET "/docs", Public, openapi::docs_redirect),
        endpoint!(GET "/console", Public, console::index),
        endpoint!(GET "/console/", Public, console::index),
        endpoint!(GET "/console/{file}", Public, console::asset),
        endpoint!(POST "/v1/auth/token", Public, auth::issue_token),
        endpoint!(POST "/v1/batch", WriteKey(COLLECT), tracking::batch),
        endpoint!(POST "/v1/track", WriteKey(COLLECT), tracking::track),
        endpoint!(POST "/v1/page", WriteKey(COLLECT), tracking::page),
        endpoint!(POST "/v1/screen", WriteKey(COLLECT), tracking::screen),
        endpoint!(POST "/v1/identify", WriteKey(COLLECT), tracking::identify),
        endpoint!(POST "/v1/alias", WriteKey(COLLECT), tracking::alias),
        endpoint!(POST "/v1/group", WriteKey(COLLECT), tracking::group),
        endpoint!(POST "/v1/keys", Requires(&[Action::KeysManage]), keys::create),
        endpoint!(GET "/v1/keys", Requires(&[Action::KeysManage]), keys::list),
        endpoint!(DELETE "/v1/keys/{id}", Requires(&[Action::KeysManage]), keys::revoke),
        endpoint!(GET "/v1/policy", Requires(&[Action::PolicyRead]), policy::show),
        endpoint!(GET "/v1/ropa", Requires(&[Action::PolicyRead]), policy::ropa),
        endpoint!(GET "/.well-known/gpc.json", Public, policy::gpc_support),
        endpoint!(PUT "/v1/subjects/{subject_id}", Requires(&[Action::InteractionsWrite]), subjects::put),
        endpoint!(DELETE "/v1/subjects/{subject_id}", Requires(&[Action::SubjectsErase]), subjects::erase),
        endpoint!(GET "/v1/subjects/{subject_id}", Requires(&[Action::SubjectsExport]), subjects::glance),
        endpoint!(
            GET "/v1/subjects/{subject_id}/erasure-preview",
            Requires(&[Action::SubjectsErase]),
            subjects::erasure_preview
        ),
        endpoint!(
            DELETE "/v1/subjects/{subject_id}/suppression",
            Requires(&[Action::SubjectsErase]),
            subjects::lift_suppression
        ),
        endpoint!(
            GET "/v1/subjects/{subject_id}/export",
            Requires(&[Action::SubjectsExport]),
            export::export_subject
        ),
        endpoint!(POST "/v1/lookup/subjects", Requires(&[Action::SubjectsExport]), subjects::lookup),
        endpoint!(POST "/v1/interactions", Requires(&[Action::InteractionsWrite]), interactions::create),
        endpoint!(
            POST "/v1/subjects/{subject_id}/consents",
            Requires(&[Action::ConsentsWrite]),
            consents::record
        ),
        endpoint!(
            GET "/v1/subjects/{subject_id}/consents",
            Requires(&[Action::ConsentsWrite, Action::SubjectsExport]),
            consents::show
        ),
        endpoint!(
            POST "/v1/subjects/{subject_id}/objections",
            Requires(&[Action::ConsentsWrite]),
            consents::object
        ),
        endpoint!(GET "/v1/consents/receipt-key", Public, consents::receipt_key),
        endpoint!(
            POST "/v1/subjects/{subject_id}/restriction",
            Requires(&[Action::RequestsManage]),
            consents::restrict
        ),
        endpoint!(
            DELETE "/v1/subjects/{subject_id}/restriction",
            Requires(&[Action::RequestsManage]),
            consents::lift_restriction
        ),
        endpoint!(
            POST "/v1/interactions/batch",
            Requires(&[Action::InteractionsWrite]),
            interactions::batch,
            Some(interactions::BATCH_BODY_LIMIT)
        ),
        endpoint!(
            GET "/v1/subjects/{subject_id}/interactions",
            Requires(&[Action::InteractionsRead]),
            interactions::list_for_subject
        ),
        endpoint!(
            GET "/v1/erasures/{id}/held",
            Requires(&[Action::InteractionsRead]),
            holds::held
        ),
        endpoint!(POST "/v1/requests", Requires(&[Action::RequestsManage]), requests::create),
        endpoint!(GET "/v1/requests", Requires(&[Action::RequestsManage]), requests::list),
        endpoint!(GET "/v1/requests/{id}", Requires(&[Action::RequestsManage]), requests::show),
        endpoint!(
            POST "/v1/requests/{id}/verify",
            Requires(&[Action::RequestsManage]),
            requests::verify
        ),
        endpoint!(
            POST "/v1/requests/{id}/extend",
            Requires(&[Action::RequestsManage]),
            requests::extend
        ),
        endpoint!(
            POST "/v1/requests/{id}/execute",
            Requires(&[Action::RequestsManage]),
            requests::execute
        ),
        endpoint!(
            POST "/v1/requests/{id}/reject",
            Requires(&[Action::RequestsManage]),
            requests::reject
        ),
        endpoint!(
            GET "/v1/requests/{id}/receipt",
            Requires(&[Action::SubjectsErase]),
            requests::receipt
        ),
        endpoint!(
            GET "/v1/requests/{id}/export",
            Requires(&[Action::SubjectsExport]),
            requests::export
        ),
        endpoint!(
            POST "/v1/segments/preview",
            Requires(&[Action::SegmentsQuery]),
            segments::preview
        ),
        endpoint!(POST "/v1/segments", Requires(&[Action::SegmentsQuery]), segments::create),
        endpoint!(GET "/v1/segments", Requires(&[Action::SegmentsQuery]), segments::list),
        endpoint!(GET "/v1/segments/{id}", Requires(&[Action::SegmentsQuery]), segments::show),
        endpoint!(
            GET "/v1/segments/{id}/members",
            Requires(&[Action::SegmentsExport]),
            segments::members
        ),
        endpoint!(POST "/v1/insights", Requires(&[Action::InsightsQuery]), insights::query),
        endpoint!(
            GET "/v1/insights/budget",
            Requires(&[Action::InsightsQuery]),
            insights::budget
        ),
        endpoint!(GET "/v1/audit", Requires(&[Action::AuditRead]), audit::list),
        endpoint!(
            GET "/v1/reports/consents",
            Requires(&[Action::AuditRead]),
            reports::consents
        ),
        endpoint!(GET "/v1/audit/verify", Requires(&[Action::AuditRead]), audit::verify),
        endpoint!(GET "/v1/audit/checkpoint", Requires(&[Action::AuditRead]), audit::checkpoint),
        endpoint!(GET "/v1/audit/checkpoint-key", Public, audit::checkpoint_key),
        endpoint!(GET "/opendsr/v2/discovery", Public, opendsr::discovery),
        endpoint!(GET "/opendsr/v2/certificate", Public, opendsr::certificate),
        endpoint!(POST "/opendsr/v2/requests", Requires(&[Action::RequestsManage]), opendsr::create),
        endpoint!(
            GET "/opendsr/v2/requests/{subject_request_id}",
            Requires(&[Action::RequestsManage]),
            opendsr::status
        ),
        endpoint!(
            DELETE "/opendsr/v2/requests/{subject_request_id}",
            Requires(&[Action::RequestsManage]),
            opendsr::cancel
        ),
    ]
});

/// The route table.
pub fn endpoints() -> &'static [Endpoint] {
    &ENDPOINTS
}

/// The access rule of the endpoint with this method and path pattern, if there is one.
pub(crate) fn access_for(method: &Method, pattern: &str) -> Option<Access> {
    endpoints()
        .iter()
        .find(|endpoint| endpoint.method == method && endpoint.path == pattern)
        .map(|endpoint| endpoint.access)
}
