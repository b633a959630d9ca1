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
        super::opendsr::discovery,
        super::opendsr::certificate,
        super::opendsr::create,
        super::opendsr::status,
        super::opendsr::cancel,
        super::subjects::put,
        super::subjects::lookup,
        super::subjects::erase,
        super::subjects::lift_suppression,
        super::export::export_subject,
        super::interactions::create,
        super::interactions::batch,
        super::interactions::list_for_subject,
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
        super::segments::preview,
        super::segments::create,
        super::segments::list,
        super::segments::show,
        super::segments::members,
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
        (name = "consents", description = "The consent ledger, objections and receipts"),
        (name = "requests", description = "Data-subject requests and their legal deadlines"),
        (name = "segments", description = "Purpose-bound, k-anonymous segments for marketers"),
        (name = "audit", description = "The tamper-evident audit log"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

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
    }
}

/// The OpenAPI document as JSON.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serializes")
}

/// Serves the OpenAPI document.
pub async fn openapi_json(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(state.openapi_json.clone())
}

/// `/docs` → `/docs/`, where the UI lives.
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}
