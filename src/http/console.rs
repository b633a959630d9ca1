//! The compliance console (`/console`): plain ES modules, a stylesheet and one HTML page,
//! compiled into the binary. Nothing is fetched from elsewhere, at build time or when viewed; the
//! page talks only to the public JSON API, with a token it keeps in memory.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::ApiError;

/// One file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../console/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../console/api.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../console/style.css"),
    },
];

/// Scripts, styles and API calls from this origin only; no inline code, no frames, no forms
/// posted anywhere, no referrer.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; \
     base-uri 'none'";

fn serve(asset: &Asset) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        // Revalidated on every load, so a new binary's console is used at once.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(asset.body)
}

/// The console's page.
pub(crate) async fn index() -> HttpResponse {
    serve(&ASSETS[0])
}

/// A file of the console, by name.
pub(crate) async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    ASSETS
        .iter()
        .find(|asset| asset.name == name)
        .map(serve)
        .ok_or_else(|| ApiError::not_found("not_found", "the console has no such file"))
}
