//! Key management over HTTP: create, list, revoke; only argon2id hashes are stored.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, stored_key_count};

#[tokio::test]
async fn an_admin_creates_a_key_whose_secret_is_shown_once_and_stored_hashed() {
    let app = spawn_app().await;
    let admin = app.token_for("admin").await;

    let response = app
        .post_json(
            "/v1/keys",
            Some(&admin),
            &json!({ "name": "checkout app", "role": "collector" }),
        )
        .await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let created: Value = response.json().await.unwrap();
    let api_key = created["api_key"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["role"], "collector");
    assert_eq!(created["name"], "checkout app");
    assert!(
        created["created_by"].is_string(),
        "records which key created it"
    );
    assert!(api_key.starts_with(&format!("ck_{id}_")));

    let listed: Value = app.get_json("/v1/keys", Some(&admin)).await;
    let entry = listed["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["id"] == id.as_str())
        .expect("the new key is listed");
    assert!(entry.get("api_key").is_none() && entry.get("secret_hash").is_none());
    assert!(!listed
        .to_string()
        .contains(api_key.split('_').nth(2).unwrap()));

    let database = app.database();
    let lookup_id = id.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().unwrap();
        custodia::store::api_keys::find(&mut conn, &lookup_id).unwrap()
    })
    .await
    .unwrap()
    .expect("the key is stored");
    let secret = api_key.split('_').nth(2).unwrap();
    assert!(stored.secret_hash.starts_with("$argon2id$"));
    assert!(!stored.secret_hash.contains(secret));

    let collector_token = app.token_for_key(&api_key).await;
    assert_problem(
        app.get("/v1/keys", Some(&collector_token)).await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
}

#[tokio::test]
async fn a_key_for_an_unknown_role_or_with_a_bad_name_is_refused_and_not_stored() {
    let app = spawn_app().await;
    let admin = app.token_for("admin").await;
    let before = stored_key_count(&app).await;

    let unknown_role = app
        .post_json(
            "/v1/keys",
            Some(&admin),
            &json!({ "name": "x", "role": "root" }),
        )
        .await;
    let body = assert_problem(
        unknown_role,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_role",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("`root`"));

    let blank_name = app
        .post_json(
            "/v1/keys",
            Some(&admin),
            &json!({ "name": "  ", "role": "admin" }),
        )
        .await;
    assert_problem(
        blank_name,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_key_name",
    )
    .await;

    assert_eq!(stored_key_count(&app).await, before);
}

#[tokio::test]
async fn revoking_is_idempotent_and_unknown_ids_are_404() {
    let app = spawn_app().await;
    let admin = app.token_for("admin").await;
    let created: Value = app
        .post_json(
            "/v1/keys",
            Some(&admin),
            &json!({ "name": "temp", "role": "support" }),
        )
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1/keys/{}", created["id"].as_str().unwrap());

    let first: Value = app.delete(&path, Some(&admin)).await.json().await.unwrap();
    let second = app.delete(&path, Some(&admin)).await;

    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(
        first["revoked_at"], second["revoked_at"],
        "the first revocation time stays"
    );
    assert_problem(
        app.delete("/v1/keys/0123456789abcdef", Some(&admin)).await,
        StatusCode::NOT_FOUND,
        "key_not_found",
    )
    .await;
    assert_problem(
        app.delete("/v1/keys/not-a-key-id", Some(&admin)).await,
        StatusCode::NOT_FOUND,
        "key_not_found",
    )
    .await;
}
