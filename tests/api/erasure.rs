//! Erasure through the API: the data key is destroyed and every row about the person deleted,
//! other people are untouched, the subject is unknown everywhere afterwards, the receipt is
//! signed, and the audit chain still verifies.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, contains_in_any_encoding, count_rows, database_dump, spawn_app, TestApp,
};

async fn populate(app: &TestApp, token: &str, subject: &str, email: &str) {
    let put = app
        .request(
            Method::PUT,
            &format!("/v1/subjects/{subject}"),
            Some(token),
            Some(&json!({"identifiers": {"email": email},
                         "traits": {"country": "DE", "full_name": "Erin Canary"}})),
        )
        .await;
    assert_eq!(put.status(), StatusCode::CREATED);
    for i in 0..2 {
        let stored = app
            .post_json(
                "/v1/interactions",
                Some(token),
                &json!({"id": format!("evt-{i}"), "subject_id": subject, "type": "support_chat",
                        "channel": "chat", "occurred_at": "2026-11-01T10:00:00Z",
                        "purposes": ["support"], "data": {"message": format!("hello {i}")}}),
            )
            .await;
        assert_eq!(stored.status(), StatusCode::CREATED);
    }
    let consent = app
        .post_json(
            &format!("/v1/subjects/{subject}/consents"),
            Some(token),
            &json!({"purpose": "marketing", "status": "granted", "source": "web",
                    "method": "checkbox", "notice": {"id": "newsletter", "version": "3"},
                    "evidence": {"ip_address": "198.51.100.7"}}),
        )
        .await;
    assert_eq!(consent.status(), StatusCode::CREATED);
    let objection = app
        .post_json(
            &format!("/v1/subjects/{subject}/objections"),
            Some(token),
            &json!({"purpose": "analytics"}),
        )
        .await;
    assert_eq!(objection.status(), StatusCode::OK);
}

#[tokio::test]
async fn erasure_destroys_the_key_and_every_row_and_leaves_others_untouched() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let support = app.token_for("support").await;
    populate(&app, &collector, "cust-erase", "erase.me@example.org").await;
    populate(&app, &collector, "cust-keep", "keep.me@example.org").await;
    let before: Value = app
        .get_json("/v1/audit?subject_id=cust-erase", Some(&compliance))
        .await;
    let pseudonym = before["entries"][0]["subjects"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let blind_index = {
        let settings = app.settings.clone();
        tokio::task::spawn_blocking(move || {
            let database = custodia::startup::open_database(&settings).unwrap();
            let vault = custodia::startup::open_vault(&settings, &database).unwrap();
            let id = custodia::subjects::SubjectId::parse("cust-erase").unwrap();
            custodia::subjects::subject_index(&vault, &id)
        })
        .await
        .unwrap()
    };
    assert!(contains_in_any_encoding(
        &database_dump(&app).await,
        &blind_index
    ));

    // Only a role with subjects.erase may erase.
    assert_problem(
        app.delete("/v1/subjects/cust-erase", Some(&collector))
            .await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    let response = app
        .delete("/v1/subjects/cust-erase", Some(&compliance))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["erased"], true);
    assert_eq!(
        body["counts"],
        // identifiers: the e-mail address, counted once as the officer sees it (its blind
        // index and those of the SHA-256 of the e-mail and of the subject id go with it);
        // traits: country (segmentable) and full_name (encrypted) alike.
        json!({"data_keys": 1, "identifiers": 1, "traits": 2, "interactions": 2,
               "held_interactions": 0, "consent_records": 1, "objections": 1,
               "restrictions": 0, "subjects": 1, "request_identities": 0})
    );

    // The receipt verifies with the published receipt key and says the same.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let keys: Value = app.get_json("/v1/consents/receipt-key", None).await;
    let receipt = body["receipt"].as_str().unwrap();
    let (input, signature) = receipt.rsplit_once('.').unwrap();
    let public = b64.decode(keys["keys"][0]["x"].as_str().unwrap()).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
        .verify(input.as_bytes(), &b64.decode(signature).unwrap())
        .expect("the receipt verifies");
    let claims: Value =
        serde_json::from_slice(&b64.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["typ"], "erasure");
    assert_eq!(claims["sub"], "cust-erase");
    assert_eq!(claims["jti"], body["id"]);
    assert_eq!(claims["erased"], body["counts"]);
    assert_eq!(claims["audit_pseudonym"], pseudonym);

    // Unknown everywhere afterwards.
    for path in [
        "/v1/subjects/cust-erase/interactions?purpose=support",
        "/v1/subjects/cust-erase/consents",
        "/v1/audit?subject_id=cust-erase",
    ] {
        let token = if path.contains("interactions") {
            &support
        } else {
            &compliance
        };
        assert_problem(
            app.get(path, Some(token)).await,
            StatusCode::NOT_FOUND,
            "subject_not_found",
        )
        .await;
    }
    assert_problem(
        app.post_json(
            "/v1/lookup/subjects",
            Some(&compliance),
            &json!({"email": "erase.me@example.org"}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;
    assert_problem(
        app.delete("/v1/subjects/cust-erase", Some(&compliance))
            .await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;

    // What is stored now is the other person's only; not even the blind index of the erased
    // subject_id remains (SQLite: secure_delete and a truncated WAL).
    assert_eq!(count_rows(&app, "subjects").await, 1);
    assert_eq!(count_rows(&app, "data_keys").await, 1);
    assert_eq!(count_rows(&app, "interactions").await, 2);
    // The other person's e-mail index and the SHA-256 indexes of their e-mail and subject id.
    assert_eq!(count_rows(&app, "subject_identifiers").await, 3);
    assert!(!contains_in_any_encoding(
        &database_dump(&app).await,
        &blind_index
    ));
    let kept = app
        .get(
            "/v1/subjects/cust-keep/interactions?purpose=support",
            Some(&support),
        )
        .await;
    assert_eq!(kept.status(), StatusCode::OK);
    let kept: Value = kept.json().await.unwrap();
    assert_eq!(kept["interactions"].as_array().unwrap().len(), 2);

    // The audit log keeps the person's entries under the pseudonym, which nothing links to the
    // person any more, and still verifies.
    let erasures: Value = app
        .get_json("/v1/audit?action=subjects.erase", Some(&compliance))
        .await;
    let entry = &erasures["entries"][0];
    assert_eq!(entry["subjects"], json!([pseudonym]));
    assert_eq!(entry["target"], body["id"]);
    // What was erased: the sum of the receipt's counts.
    assert_eq!(entry["records"], 9);
    let verified: Value = app.get_json("/v1/audit/verify", Some(&compliance)).await;
    assert_eq!(verified["ok"], true, "{verified}");

    // The same subject_id sent again is a new person, with a new pseudonym.
    populate(&app, &collector, "cust-erase", "erase.me@example.org").await;
    let again: Value = app
        .get_json("/v1/audit?subject_id=cust-erase", Some(&compliance))
        .await;
    assert_ne!(again["entries"][0]["subjects"][0], json!(pseudonym));
}

#[tokio::test]
async fn suppression_refuses_the_erased_id_everywhere_until_lifted() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    populate(&app, &collector, "cust-gone", "gone@example.org").await;
    let response = app
        .delete("/v1/subjects/cust-gone?suppress=true", Some(&compliance))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["suppressed"], true);
    assert_problem(
        app.delete("/v1/subjects/cust-x?suppress=maybe", Some(&compliance))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;

    let interaction = |id: &str, subject: &str| {
        json!({"id": id, "subject_id": subject, "type": "visit", "channel": "web",
               "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["support"]})
    };
    assert_problem(
        app.post_json(
            "/v1/interactions",
            Some(&collector),
            &interaction("a", "cust-gone"),
        )
        .await,
        StatusCode::FORBIDDEN,
        "subject_suppressed",
    )
    .await;
    let batch = app
        .post_json(
            "/v1/interactions/batch",
            Some(&collector),
            &json!({"interactions": [interaction("b", "cust-gone"), interaction("c", "cust-new")]}),
        )
        .await;
    assert_eq!(batch.status(), StatusCode::OK);
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(batch["results"][0]["error"]["code"], "subject_suppressed");
    assert_eq!(batch["results"][0]["error"]["status"], 403);
    assert_eq!(batch["results"][1]["id"], "c");
    assert_eq!(batch["stored"], 1);
    assert_problem(
        app.post_json(
            "/v1/subjects/cust-gone/consents",
            Some(&collector),
            &json!({"purpose": "marketing", "status": "withdrawn", "source": "web",
                    "method": "banner"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "subject_suppressed",
    )
    .await;
    assert_problem(
        app.post_json(
            "/v1/subjects/cust-gone/objections",
            Some(&collector),
            &json!({"purpose": "analytics"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "subject_suppressed",
    )
    .await;
    assert_problem(
        app.request(
            Method::PUT,
            "/v1/subjects/cust-gone",
            Some(&collector),
            Some(&json!({"traits": {"country": "FR"}})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "subject_suppressed",
    )
    .await;
    assert_eq!(
        count_rows(&app, "subjects").await,
        1,
        "only cust-new exists"
    );

    // Only a compliance officer lifts it; then the id is accepted again, as a new person.
    assert_problem(
        app.delete("/v1/subjects/cust-gone/suppression", Some(&collector))
            .await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    let lifted = app
        .delete("/v1/subjects/cust-gone/suppression", Some(&compliance))
        .await;
    assert_eq!(lifted.status(), StatusCode::OK);
    assert_problem(
        app.delete("/v1/subjects/cust-gone/suppression", Some(&compliance))
            .await,
        StatusCode::NOT_FOUND,
        "suppression_not_found",
    )
    .await;
    let stored = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &interaction("d", "cust-gone"),
        )
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);

    // The erasure, the suppression and its lifting name the same (now unlinkable) pseudonym;
    // every refusal was recorded.
    let log: Value = app.get_json("/v1/audit?limit=500", Some(&compliance)).await;
    let entries = log["entries"].as_array().unwrap();
    let named = |action: &str| {
        entries
            .iter()
            .find(|entry| entry["action"] == action && entry["decision"] == "allow")
            .unwrap_or_else(|| panic!("an entry {action}"))["subjects"]
            .clone()
    };
    assert_eq!(named("subjects.erase"), named("subjects.suppress"));
    assert_eq!(named("subjects.erase"), named("subjects.suppression_lift"));
    let refusals = entries
        .iter()
        .filter(|entry| entry["reason"] == "subject_suppressed")
        .count();
    assert_eq!(refusals, 5, "{log}");
}

#[tokio::test]
async fn erasing_while_data_arrives_for_the_same_person_never_fails_a_request() {
    // Interactions and a consent choice race an erasure of the same person: each write either
    // lands before the erasure (and is erased) or after it (on a new subject), never a 500.
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    for round in 0..10 {
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (client, url, token) = (
                app.client.clone(),
                format!("{}/v1/interactions", app.address),
                collector.clone(),
            );
            tasks.push(tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(
                        &json!({"id": format!("evt-{round}-{i}"), "subject_id": "cust-race",
                                  "type": "visit", "channel": "web",
                                  "occurred_at": "2026-11-01T10:00:00Z",
                                  "purposes": ["support"]}),
                    )
                    .send()
                    .await
                    .unwrap()
                    .status()
            }));
            if i == 2 {
                let (client, url, token) = (
                    app.client.clone(),
                    format!("{}/v1/subjects/cust-race/consents", app.address),
                    collector.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    client
                        .post(url)
                        .bearer_auth(token)
                        .json(&json!({"purpose": "marketing", "status": "withdrawn",
                                      "source": "web", "method": "checkbox"}))
                        .send()
                        .await
                        .unwrap()
                        .status()
                }));
            }
            if i == 4 {
                let (client, url, token) = (
                    app.client.clone(),
                    format!("{}/v1/subjects/cust-race", app.address),
                    compliance.clone(),
                );
                tasks.push(tokio::spawn(async move {
                    client
                        .delete(url)
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap()
                        .status()
                }));
            }
        }
        for task in tasks {
            let status = task.await.unwrap();
            assert!(
                [StatusCode::CREATED, StatusCode::OK, StatusCode::NOT_FOUND].contains(&status),
                "round {round}: {status}"
            );
        }
    }
    let verified: Value = app.get_json("/v1/audit/verify", Some(&compliance)).await;
    assert_eq!(verified["ok"], true);
}
