//! Operations: health, readiness, metrics, request ids, the OpenAPI document and its UI.

use custodia::http::endpoints;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, testing_postgres};

#[tokio::test]
async fn health_and_readiness_answer_without_a_token() {
    let app = spawn_app().await;

    let health = app.get("/healthz", None).await;
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.json::<Value>().await.unwrap()["status"], "ok");

    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status(), StatusCode::OK);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    let backend = if testing_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(body["database"], backend);
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_callers_uuid_is_kept() {
    let app = spawn_app().await;
    let supplied = "5f0c1b2e-8d4a-4f7e-9a51-0c3d2e1f4a5b";

    let generated = app.get("/healthz", None).await;
    let kept = app
        .client
        .get(format!("{}/healthz", app.address))
        .header("x-request-id", supplied)
        .send()
        .await
        .unwrap();
    let replaced = app
        .client
        .get(format!("{}/v1/keys", app.address))
        .header("x-request-id", "jane@example.com")
        .send()
        .await
        .unwrap();

    let generated = generated.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok());
    assert_eq!(kept.headers()["x-request-id"], supplied);
    assert_ne!(replaced.headers()["x-request-id"], "jane@example.com");
    assert_eq!(replaced.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern_never_by_raw_path() {
    let app = spawn_app().await;
    app.get("/healthz", None).await;
    app.delete("/v1/keys/fedcba9876543210", None).await;

    let response = app.get("/metrics", None).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = response.text().await.unwrap();
    assert!(text
        .contains(r#"custodia_http_requests_total{method="GET",route="/healthz",status="200"} 1"#));
    assert!(text.contains(
        r#"custodia_http_requests_total{method="DELETE",route="/v1/keys/{id}",status="401"} 1"#
    ));
    assert!(text.contains("custodia_http_request_duration_seconds_bucket{"));
    assert!(
        !text.contains("fedcba9876543210"),
        "raw paths never become labels"
    );
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route() {
    let app = spawn_app().await;

    let response = app.get("/openapi.json", None).await;

    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3."));
    for endpoint in endpoints() {
        // The document itself, and pages for people (Swagger UI, the console) are not API.
        if matches!(
            endpoint.path,
            "/openapi.json" | "/docs" | "/console" | "/console/" | "/console/{file}"
        ) {
            continue;
        }
        let method = endpoint.method.as_str().to_lowercase();
        let operation = &document["paths"][endpoint.path][&method];
        assert!(
            operation.is_object(),
            "{} {} is missing from /openapi.json",
            endpoint.method,
            endpoint.path
        );
        if endpoint.access.actions().is_some() {
            assert!(
                operation["security"].is_array(),
                "{} {} should declare bearer security",
                endpoint.method,
                endpoint.path
            );
        }
    }
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn every_operation_has_its_own_stable_id() {
    let app = spawn_app().await;

    let document: Value = app.get("/openapi.json", None).await.json().await.unwrap();

    // Client generators name their methods after operation ids: each must exist, be unique
    // (OpenAPI requires it) and follow `<module>_<handler>`.
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(
                id.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{method} {path}: operationId {id} is not snake_case"
            );
            if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                panic!("operationId {id} names both {other} and {method} {path}");
            }
        }
    }
    assert_eq!(
        document["paths"]["/v1/keys"]["post"]["operationId"],
        "keys_create"
    );
    assert_eq!(
        document["paths"]["/v1/subjects/{subject_id}/consents"]["post"]["operationId"],
        "consents_record"
    );
}

#[tokio::test]
async fn the_docs_ui_is_served_from_the_binary() {
    let app = spawn_app().await;

    let redirect = app.get("/docs", None).await;
    assert_eq!(redirect.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(redirect.headers()["location"], "/docs/");

    let page = app.get("/docs/", None).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui"));
    assert!(
        !html.contains("https://"),
        "no asset is fetched from elsewhere"
    );

    let initializer = app.get("/docs/swagger-initializer.js", None).await;
    assert_eq!(initializer.status(), StatusCode::OK);
    assert!(initializer.text().await.unwrap().contains("/openapi.json"));
    let css = app.get("/docs/swagger-ui.css", None).await;
    assert_eq!(css.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_console_is_served_from_the_binary_with_security_headers() {
    let app = spawn_app().await;

    for path in [
        "/console",
        "/console/",
        "/console/app.js",
        "/console/api.js",
        "/console/style.css",
    ] {
        let response = app.get(path, None).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(headers["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'; script-src 'self';"));
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
    }
    let page = app.get("/console", None).await.text().await.unwrap();
    assert!(page.contains(r#"<script type="module" src="/console/app.js">"#));
    let script = app.get("/console/app.js", None).await;
    assert_eq!(
        script.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    crate::helpers::assert_problem(
        app.get("/console/secrets.txt", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
}
