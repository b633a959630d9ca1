//! The token flow: API key → JWT, and every way a key or token is refused.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, claims_for, key_id_of, server_signing_key, sign, spawn_app};

#[tokio::test]
async fn an_api_key_buys_a_bearer_token_that_opens_its_routes() {
    let app = spawn_app().await;
    let api_key = app.create_api_key("admin").await;

    let response = app
        .post_json("/v1/auth/token", None, &json!({ "api_key": api_key }))
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "a compact JWT");
    let keys = app.get("/v1/keys", Some(token)).await;
    assert_eq!(keys.status(), StatusCode::OK);
}

#[tokio::test]
async fn unknown_keys_wrong_secrets_and_malformed_keys_get_the_same_answer() {
    let app = spawn_app().await;
    let api_key = app.create_api_key("admin").await;
    let key_id = key_id_of(&api_key);
    let wrong_secret = format!("ck_{key_id}_{}", "0".repeat(64));
    let unknown_id = format!("ck_0123456789abcdef_{}", "0".repeat(64));

    let mut bodies = Vec::new();
    for attempt in [wrong_secret.as_str(), unknown_id.as_str(), "not-a-key"] {
        let response = app
            .post_json("/v1/auth/token", None, &json!({ "api_key": attempt }))
            .await;
        bodies.push(assert_problem(response, StatusCode::UNAUTHORIZED, "invalid_api_key").await);
    }

    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    assert!(
        !bodies[0].to_string().contains(key_id),
        "the key id is not echoed"
    );
}

#[tokio::test]
async fn a_revoked_key_gets_no_token_and_its_tokens_stop_working_at_once() {
    let app = spawn_app().await;
    let admin = app.token_for("admin").await;
    let doomed_key = app.create_api_key("admin").await;
    let doomed_token = app.token_for_key(&doomed_key).await;
    assert_eq!(
        app.get("/v1/keys", Some(&doomed_token)).await.status(),
        StatusCode::OK
    );

    let response = app
        .delete(
            &format!("/v1/keys/{}", key_id_of(&doomed_key)),
            Some(&admin),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let revoked: Value = response.json().await.unwrap();
    assert!(revoked["revoked_at"].is_string());
    let refused = app.get("/v1/keys", Some(&doomed_token)).await;
    assert_problem(refused, StatusCode::UNAUTHORIZED, "key_revoked").await;
    let exchange = app
        .post_json("/v1/auth/token", None, &json!({ "api_key": doomed_key }))
        .await;
    assert_problem(exchange, StatusCode::UNAUTHORIZED, "invalid_api_key").await;
}

#[tokio::test]
async fn a_revocation_made_elsewhere_takes_effect_within_seconds() {
    let app = spawn_app().await;
    let api_key = app.create_api_key("admin").await;
    let token = app.token_for_key(&api_key).await;
    assert_eq!(
        app.get("/v1/keys", Some(&token)).await.status(),
        StatusCode::OK
    );

    // Revoked by another process (the CLI), so this server's cache is not told.
    let output = app.run_cli(&["keys", "revoke", key_id_of(&api_key)]);
    assert!(output.status.success(), "{output:?}");

    // This server trusts the status it read a moment ago for at most KEY_STATUS_TTL (on its
    // clock, moved here instead of waited for); after that the token is refused.
    app.clock.advance(custodia::auth::KEY_STATUS_TTL);
    assert_problem(
        app.get("/v1/keys", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "key_revoked",
    )
    .await;
}

#[tokio::test]
async fn requests_without_a_usable_token_are_401_with_a_challenge() {
    let app = spawn_app().await;

    let missing = app.get("/v1/keys", None).await;
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"custodia\""
    );
    assert_problem(missing, StatusCode::UNAUTHORIZED, "missing_token").await;

    let basic = app
        .client
        .get(format!("{}/v1/keys", app.address))
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .send()
        .await
        .unwrap();
    assert_problem(basic, StatusCode::UNAUTHORIZED, "invalid_token").await;

    let garbage = app.get("/v1/keys", Some("not.a.jwt")).await;
    assert_problem(garbage, StatusCode::UNAUTHORIZED, "invalid_token").await;
}

#[tokio::test]
async fn expired_forged_and_unsigned_tokens_are_refused() {
    let app = spawn_app().await;
    let api_key = app.create_api_key("admin").await;
    let key_id = key_id_of(&api_key);
    let now = chrono::Utc::now().timestamp();
    let server_key = server_signing_key(&app);

    let valid = sign(&claims_for(key_id, "admin", now, now + 60), &server_key);
    assert_eq!(
        app.get("/v1/keys", Some(&valid)).await.status(),
        StatusCode::OK,
        "a token made the server's way works, so the refusals below are about what was changed"
    );

    let expired = sign(
        &claims_for(key_id, "admin", now - 120, now - 60),
        &server_key,
    );
    assert_problem(
        app.get("/v1/keys", Some(&expired)).await,
        StatusCode::UNAUTHORIZED,
        "token_expired",
    )
    .await;

    let other_key = sign(&claims_for(key_id, "admin", now, now + 60), &[7u8; 32]);
    assert_problem(
        app.get("/v1/keys", Some(&other_key)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    let role_swapped = sign(
        &claims_for(key_id, "compliance", now, now + 60),
        &server_key,
    );
    assert_problem(
        app.get("/v1/policy", Some(&role_swapped)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;

    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims_for(key_id, "admin", now, now + 60).to_string())
    );
    assert_problem(
        app.get("/v1/keys", Some(&unsigned)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    )
    .await;
}
