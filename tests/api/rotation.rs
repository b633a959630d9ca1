//! `custodia keys rotate-master`: everything stays readable, all keys move to the new master key,
//! and an interrupted rotation is finished by running the command again.

use custodia::crypto::MasterKeyring;
use custodia::store::schema::data_keys;
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

async fn master_key_ids_in_use(app: &TestApp) -> Vec<String> {
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().unwrap();
        data_keys::table
            .select(data_keys::master_key_id)
            .distinct()
            .load::<String>(&mut *conn)
            .unwrap()
    })
    .await
    .unwrap()
}

async fn read_message(app: &TestApp, token: &str, subject: &str) -> Value {
    let response = app
        .get(
            &format!("/v1/subjects/{subject}/interactions?purpose=support"),
            Some(token),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    body["interactions"][0]["data"]["message"].clone()
}

#[tokio::test]
async fn rotation_rewraps_every_key_and_keeps_data_readable() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let support = app.token_for("support").await;
    let items: Vec<Value> = (0..30)
        .map(|i| {
            json!({"id": "r", "subject_id": format!("cust-{i}"), "type": "note", "channel": "web",
                        "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["support"],
                        "data": {"message": format!("message {i}")}})
        })
        .collect();
    let stored = app
        .post_json(
            "/v1/interactions/batch",
            Some(&collector),
            &json!({"interactions": items}),
        )
        .await;
    assert_eq!(stored.status(), StatusCode::OK);
    let old_key = std::fs::read(&app.settings.master_key_file).unwrap();
    let old_ids = master_key_ids_in_use(&app).await;
    assert_eq!(old_ids.len(), 1);

    let output = app.run_cli(&["keys", "rotate-master"]);

    assert!(output.status.success(), "{output:?}");
    let new_id = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_ne!(new_id, old_ids[0]);
    assert_eq!(master_key_ids_in_use(&app).await, vec![new_id.clone()]);
    assert_ne!(
        std::fs::read(&app.settings.master_key_file).unwrap(),
        old_key
    );
    let retired = app
        .settings
        .master_key_file
        .with_file_name("master.key.retired")
        .join(format!("{}.key", old_ids[0]));
    assert_eq!(
        std::fs::read(&retired).unwrap(),
        old_key,
        "the old key is kept for backups"
    );
    // The running server loaded only the old key, and still reads everything.
    assert_eq!(read_message(&app, &support, "cust-7").await, "message 7");
    // New writes after rotation work too, and a second rotation is fine.
    let later = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "late", "subject_id": "cust-new",
            "type": "note", "channel": "web", "occurred_at": "2026-11-02T10:00:00Z",
            "purposes": ["support"], "data": {"message": "after rotation"}}),
        )
        .await;
    assert_eq!(later.status(), StatusCode::CREATED);
    let again = app.run_cli(&["keys", "rotate-master"]);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(master_key_ids_in_use(&app).await.len(), 1);
    assert_eq!(
        read_message(&app, &support, "cust-new").await,
        "after rotation"
    );
    assert_eq!(read_message(&app, &support, "cust-29").await, "message 29");
}

#[tokio::test]
async fn an_interrupted_rotation_is_finished_by_running_it_again() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let support = app.token_for("support").await;
    let stored = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "i", "subject_id": "cust-i",
            "type": "note", "channel": "web", "occurred_at": "2026-11-01T10:00:00Z",
            "purposes": ["support"], "data": {"message": "survives"}}),
        )
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    // Simulate a crash right after step 1: the next key exists and the rotation is recorded,
    // but nothing was promoted or re-wrapped.
    let settings = app.settings.clone();
    let database = app.database();
    let planned = tokio::task::spawn_blocking(move || {
        let keyring = MasterKeyring::load_or_create(&settings.master_key_file).unwrap();
        let next = keyring.prepare_next().unwrap();
        let mut conn = database.connection().unwrap();
        custodia::store::keys::insert_rotation(
            &mut conn,
            &custodia::store::keys::RotationRow {
                id: "interrupted".into(),
                from_key_id: keyring.current().id().to_string(),
                to_key_id: next.id().to_string(),
                started_at: chrono::Utc::now().naive_utc(),
                finished_at: None,
                rewrapped: 0,
            },
        )
        .unwrap();
        next.id().to_string()
    })
    .await
    .unwrap();

    let output = app.run_cli(&["keys", "rotate-master"]);

    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8(output.stderr)
        .unwrap()
        .contains("finished an interrupted rotation"));
    assert_eq!(String::from_utf8(output.stdout).unwrap().trim(), planned);
    assert_eq!(master_key_ids_in_use(&app).await, vec![planned]);
    assert_eq!(read_message(&app, &support, "cust-i").await, "survives");
}
