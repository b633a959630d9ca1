//! The OpenAPI document, generated from the handlers' annotations, and the `/docs` UI (served
//! from assets vendored into the binary).

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::AppState;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "Custodia", description = "A privacy- and consent-first customer data platform"),
    paths(
        super::ops::healthz,
        super::ops::readyz,
        super::ops::metrics,
        super::auth::issue_token,
        super::keys::create,
        super::keys::list,
        super::keys::revoke,
        super::policy::show,
        super::policy::ropa,
        super::policy::gpc_support,
        super::opendsr::discovery,
        super::opendsr::certificate,
        super::opendsr::create,
        super::opendsr::status,
        super::opendsr::cancel,
        super::subjects::put,
        super::subjects::lookup,
        super::subjects::erase,
        super::subjects::erasure_preview,
        super::subjects::glance,
        super::holds::held,
        super::subjects::lift_suppression,
        super::export::export_subject,
        super::interactions::create,
        super::interactions::batch,
        super::interactions::list_for_subject,
        super::tracking::batch,
        super::tracking::track,
        super::tracking::page,
        super::tracking::screen,
        super::tracking::identify,
        super::tracking::alias,
        super::tracking::group,
        super::consents::record,
        super::consents::show,
        super::consents::object,
        super::consents::receipt_key,
        super::consents::restrict,
        super::consents::lift_restriction,
        super::requests::create,
        super::requests::list,
        super::requests::show,
        super::requests::verify,
        super::requests::extend,
        super::requests::execute,
        super::requests::reject,
        super::requests::export,
        super::requests::receipt,
        super::segments::preview,
        super::segments::create,
        super::segments::list,
        super::segments::show,
        super::segments::members,
        super::insights::query,
        super::insights::budget,
        super::reports::consents,
        super::audit::list,
        super::audit::verify,
        super::audit::checkpoint,
        super::audit::checkpoint_key,
    ),
    components(schemas(super::problem::ProblemBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "API keys in, bearer tokens out"),
        (name = "keys", description = "API key management"),
        (name = "policy", description = "The loaded policy"),
        (name = "subjects", description = "Subjects: identifiers and traits"),
        (name = "interactions", description = "Recording and reading interactions"),
        (name = "tracking", description = "The tracking protocol of Segment's and RudderStack's SDKs (HTTP Basic with an API key as the write key)"),
        (name = "consents", description = "The consent ledger, objections and receipts"),
        (name = "requests", description = "Data-subject requests and their legal deadlines"),
        (name = "segments", description = "Purpose-bound, k-anonymous segments for marketers"),
        (name = "reports", description = "Consent reporting for compliance: exact aggregates, no person"),
        (name = "insights", description = "Differentially private aggregates over time, with a privacy budget per purpose"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "operations", description = "Health, readiness and metrics"),
        (name = "opendsr", description = "OpenDSR 2.0: data-subject requests from controllers"),
    )
)]
pub(crate) struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The OpenAPI document as JSON. Every operation also documents a `default` response: any
/// status not listed is an error in the route's error shape — a problem (RFC 9457) on the API,
/// the specification's `{"error": …}` object on `/opendsr/` routes.
pub(crate) fn document() -> String {
    let mut document: serde_json::Value =
        serde_json::to_value(ApiDoc::openapi()).expect("the OpenAPI document serializes");
    let problem = serde_json::json!({
        "description": "An error (RFC 9457 problem; `code` is stable, see docs/api.md)",
        "content": {"application/problem+json": {
            "schema": {"$ref": "#/components/schemas/ProblemBody"}}}
    });
    let opendsr_error = serde_json::json!({
        "description": "An error in the OpenDSR specification's shape (docs/opendsr.md)",
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["code", "message", "errors"],
                "properties": {
                    "code": {"type": "integer"},
                    "message": {"type": "string"},
                    "errors": {"type": "array", "items": {
                        "type": "object",
                        "required": ["domain", "reason", "message"],
                        "properties": {
                            "domain": {"type": "string"},
                            "reason": {"type": "string"},
                            "message": {"type": "string"}
                        }
                    }}
                }
            }}
        }}}
    });
    if let Some(paths) = document["paths"].as_object_mut() {
        for (path, item) in paths.iter_mut() {
            let default = if path.starts_with(super::opendsr::PREFIX) {
                &opendsr_error
            } else {
                &problem
            };
            for operation in item
                .as_object_mut()
                .into_iter()
                .flat_map(|o| o.values_mut())
            {
                if let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(serde_json::Value::as_object_mut)
                {
                    responses
                        .entry("default")
                        .or_insert_with(|| default.clone());
                }
            }
        }
    }
    serde_json::to_string(&document).expect("the OpenAPI document serializes")
}

/// Serves the OpenAPI document.
pub(crate) async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.web.openapi_json.clone())
}

/// `/docs` → `/docs/`, where the UI lives.
pub(crate) async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}
