//! Bad input gets a precise problem+json and stores nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app, stored_key_count};

#[tokio::test]
async fn malformed_json_is_400_and_stores_nothing() {
    let app = spawn_app().await;
    let admin = app.token_for("admin").await;
    let before = stored_key_count(&app).await;

    let response = app
        .post_raw(
            "/v1/keys",
            Some(&admin),
            "application/json",
            r#"{"name": "x", "role":"#,
        )
        .await;

    let body = assert_problem(response, StatusCode::BAD_REQUEST, "malformed_json").await;
    assert!(body["detail"].as_str().unwrap().contains("line 1"));
    assert_eq!(stored_key_count(&app).await, before);
}

#[tokio::test]
async fn unknown_fields_are_422_naming_the_field_and_store_nothing() {
    let app = spawn_app().await;
    let admin = app.token_for("admin").await;
    let before = stored_key_count(&app).await;

    let response = app
        .post_json(
            "/v1/keys",
            Some(&admin),
            &json!({ "name": "x", "role": "admin", "is_superuser": true }),
        )
        .await;

    let body = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("unknown field `is_superuser`"));
    assert_eq!(stored_key_count(&app).await, before);
}

#[tokio::test]
async fn missing_fields_and_wrong_types_are_422_without_echoing_values() {
    let app = spawn_app().await;
    let admin = app.token_for("admin").await;

    let missing = app
        .post_json("/v1/keys", Some(&admin), &json!({ "name": "x" }))
        .await;
    let body = assert_problem(missing, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("missing field `role`"));

    let wrong_type = app
        .post_json(
            "/v1/auth/token",
            None,
            &json!({ "api_key": 4_242_424_242_u64 }),
        )
        .await;
    let body = assert_problem(wrong_type, StatusCode::UNPROCESSABLE_ENTITY, "invalid_body").await;
    assert!(body["detail"]
        .as_str()
        .unwrap()
        .contains("expected a string"));
    assert!(
        !body.to_string().contains("4242424242"),
        "the value is not echoed"
    );
}

#[tokio::test]
async fn oversize_bodies_are_413_and_store_nothing() {
    let app = spawn_app().await;
    let admin = app.token_for("admin").await;
    let before = stored_key_count(&app).await;
    let huge_name = "x".repeat(app.settings.body_limit + 1);

    let response = app
        .post_json(
            "/v1/keys",
            Some(&admin),
            &json!({ "name": huge_name, "role": "admin" }),
        )
        .await;

    assert_problem(response, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    assert_eq!(stored_key_count(&app).await, before);
}

#[tokio::test]
async fn a_body_that_is_not_json_is_415() {
    let app = spawn_app().await;

    let response = app
        .post_raw("/v1/auth/token", None, "text/plain", "api_key=ck_x")
        .await;

    assert_problem(
        response,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405_as_problems() {
    let app = spawn_app().await;

    assert_problem(
        app.get("/v1/nothing-here", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Under a known prefix (routes are mounted in scopes by their first two segments), a path
    // that no route has is still a 404 problem, not the scope's own resource.
    for path in [
        "/v1/keys/some-id/extra",
        "/v1/subjects/someone/nothing-here",
        "/v1/keysx",
    ] {
        assert_problem(
            app.get(path, None).await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
    let wrong_method = app
        .request(reqwest::Method::PUT, "/v1/keys", None, Some(&json!({})))
        .await;
    assert_problem(
        wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
}
