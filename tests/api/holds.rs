//! Legal holds at erasure (GDPR Art. 17(3)(b), (e)): what a purpose with a legal hold still
//! needs outlives the erasure, restricted to that purpose, re-encrypted under the hold's own key,
//! until its retention ends; then retention deletes it, and the hold's key with it.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, contains_in_any_encoding, count_rows, database_dump, policy_with_extra_roles,
    spawn_app_with, TestApp,
};

const READERS: &str = r#"
[[role]]
id = "tax_auditor"
actions = ["interactions.read"]
purposes = ["legal_compliance"]
"#;

async fn held_rows(app: &TestApp) -> (i64, i64) {
    use custodia::store::schema::{held_interactions, legal_holds};
    use diesel::prelude::*;
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().expect("a connection");
        let held: i64 = held_interactions::table
            .count()
            .get_result(&mut *conn)
            .unwrap();
        let holds: i64 = legal_holds::table.count().get_result(&mut *conn).unwrap();
        (held, holds)
    })
    .await
    .unwrap()
}

/// Moves every held record's time `by` into the past, as if that much time had passed.
async fn let_time_pass(app: &TestApp, by: Duration) {
    use custodia::store::schema::held_interactions;
    use diesel::prelude::*;
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().expect("a connection");
        let rows: Vec<(String, chrono::NaiveDateTime)> = held_interactions::table
            .select((held_interactions::id, held_interactions::held_until))
            .load(&mut *conn)
            .unwrap();
        for (id, until) in rows {
            diesel::update(held_interactions::table.find(id))
                .set(held_interactions::held_until.eq(until - by))
                .execute(&mut *conn)
                .unwrap();
        }
    })
    .await
    .unwrap()
}

fn claims(jws: &str) -> Value {
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(jws.split('.').nth(1).unwrap())
        .unwrap();
    serde_json::from_slice(&payload).unwrap()
}

#[tokio::test]
async fn an_erasure_keeps_what_a_legal_obligation_needs_restricted_until_its_retention_ends() {
    let policies = policy_with_extra_roles(READERS);
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let support = app.token_for("support").await;
    let auditor = app.token_for("tax_auditor").await;
    let subject = "cust-hold-4471";
    let email = "held.person@example.org";

    let put = app
        .request(
            Method::PUT,
            &format!("/v1/subjects/{subject}"),
            Some(&collector),
            Some(&json!({"identifiers": {"email": email}, "traits": {"country": "DE", "language": "de", "loyalty_tier": "gold"}})),
        )
        .await;
    assert_eq!(put.status(), StatusCode::CREATED);
    // legal_compliance keeps 3650 days and may use commerce.order, contact.email and
    // location.country; support keeps 730 days (policies/purposes.toml).
    let invoice_at = Utc::now() - Duration::days(400);
    let items = [
        (
            "invoice-1",
            invoice_at,
            json!(["legal_compliance", "support"]),
            json!({"order_id": "ORD-HELD-5531", "order_total": 129.5, "message": "leave it at the door 8e1f"}),
        ),
        (
            "chat-1",
            Utc::now() - Duration::days(3),
            json!(["support"]),
            json!({"message": "where is my parcel 77c2"}),
        ),
        (
            "ancient-invoice",
            Utc::now() - Duration::days(3660),
            json!(["legal_compliance"]),
            json!({"order_id": "ORD-OLD-0001"}),
        ),
    ];
    for (id, at, purposes, data) in &items {
        let response = app
            .post_json(
                "/v1/interactions",
                Some(&collector),
                &json!({"id": id, "subject_id": subject, "type": "purchase", "channel": "web",
                        "occurred_at": at.to_rfc3339(), "purposes": purposes, "data": data}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{id}");
    }

    // What the officer is shown before confirming: the person as they see them.
    let preview: Value = app
        .get_json(
            &format!("/v1/subjects/{subject}/erasure-preview"),
            Some(&compliance),
        )
        .await;
    let until = invoice_at + Duration::days(3650);
    assert_eq!(preview["identifiers"], 1, "{preview}");
    assert_eq!(preview["traits"], 3, "{preview}");
    assert_eq!(preview["interactions"], 2, "{preview}");
    assert_eq!(preview["held_interactions"], 1, "{preview}");
    assert_eq!(preview["held"].as_array().unwrap().len(), 1, "{preview}");
    assert_eq!(preview["held"][0]["purpose"], "legal_compliance");
    assert_eq!(preview["held"][0]["legal_basis"], "legal_obligation");
    assert_eq!(preview["held"][0]["interactions"], 1);
    let previewed_until: DateTime<Utc> = preview["held"][0]["until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((previewed_until - until).num_seconds().abs() <= 1);
    assert_eq!(
        count_rows(&app, "interactions").await,
        3,
        "a preview changes nothing"
    );

    let response = app
        .delete(&format!("/v1/subjects/{subject}"), Some(&compliance))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let erasure: Value = response.json().await.unwrap();
    assert_eq!(erasure["counts"]["identifiers"], 1, "{erasure}");
    assert_eq!(erasure["counts"]["traits"], 3, "{erasure}");
    assert_eq!(erasure["counts"]["interactions"], 2, "{erasure}");
    assert_eq!(erasure["counts"]["held_interactions"], 1, "{erasure}");
    assert_eq!(erasure["held"], preview["held"], "{erasure}");
    let receipt = claims(erasure["receipt"].as_str().unwrap());
    assert_eq!(
        receipt["held"], preview["held"],
        "the receipt says what is held"
    );
    assert_eq!(receipt["erased"]["held_interactions"], 1);
    let erasure_id = erasure["id"].as_str().unwrap();

    // The person is gone everywhere; only the held copy remains, under the hold's key.
    assert_eq!(count_rows(&app, "interactions").await, 0);
    assert_eq!(count_rows(&app, "interaction_purposes").await, 0);
    assert_eq!(count_rows(&app, "data_keys").await, 0);
    assert_eq!(count_rows(&app, "subjects").await, 0);
    assert_eq!(held_rows(&app).await, (1, 1));
    let dump = database_dump(&app).await;
    for secret in [email, "ORD-HELD-5531", "leave it at the door 8e1f", subject] {
        assert!(
            !contains_in_any_encoding(&dump, secret),
            "{secret} in clear"
        );
    }
    assert_problem(
        app.get(
            &format!("/v1/subjects/{subject}/interactions?purpose=legal_compliance"),
            Some(&auditor),
        )
        .await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;

    // Readable for the holding purpose only, minimised to what it may use: the message (user
    // content, which legal_compliance may not use) was erased, not kept.
    let held_path = format!("/v1/erasures/{erasure_id}/held?purpose=legal_compliance");
    let held: Value = app.get_json(&held_path, Some(&auditor)).await;
    let records = held["interactions"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{held}");
    assert_eq!(
        records[0]["data"],
        json!({"order_id": "ORD-HELD-5531", "order_total": 129.5})
    );
    assert_eq!(records[0]["withheld"], json!([]));
    assert_eq!(records[0]["type"], "purchase");
    // Any other purpose: refused, even for a role that may read that purpose.
    assert_problem(
        app.get(
            &format!("/v1/erasures/{erasure_id}/held?purpose=support"),
            Some(&support),
        )
        .await,
        StatusCode::FORBIDDEN,
        "purpose_not_held",
    )
    .await;
    assert_problem(
        app.get(&held_path, Some(&support)).await,
        StatusCode::FORBIDDEN,
        "purpose_not_permitted",
    )
    .await;
    assert_problem(
        app.get(&held_path, Some(&compliance)).await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    assert_problem(
        app.get(
            "/v1/erasures/0123456789abcdef0123456789abcdef/held?purpose=legal_compliance",
            Some(&auditor),
        )
        .await,
        StatusCode::NOT_FOUND,
        "hold_not_found",
    )
    .await;
    let audit: Value = app
        .get_json("/v1/audit?action=holds.read", Some(&compliance))
        .await;
    let decisions: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions.iter().filter(|d| **d == "allow").count(), 1);
    assert!(decisions.iter().filter(|d| **d == "deny").count() >= 2);
    let kept: Value = app
        .get_json("/v1/audit?action=holds.keep", Some(&compliance))
        .await;
    assert_eq!(kept["entries"][0]["target"], erasure_id);
    assert_eq!(kept["entries"][0]["records"], 1);
    assert_eq!(kept["entries"][0]["purposes"], json!(["legal_compliance"]));

    // Retention does not delete it before its time…
    let output = app.run_cli(&["retention", "run"]);
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["held_interactions_deleted"], 0);
    assert_eq!(held_rows(&app).await, (1, 1));
    app.run_job("retention").await;
    assert_eq!(held_rows(&app).await, (1, 1));
    // …and deletes it, with the hold's key, once its time has come.
    let left = until - Utc::now();
    let_time_pass(&app, left + Duration::seconds(1)).await;
    assert_eq!(
        app.get_json(&held_path, Some(&auditor)).await["interactions"],
        json!([]),
        "past its end a held record is not readable, even before retention runs"
    );
    // The server's own periodic retention (run now rather than waited for) deletes it.
    app.run_job("retention").await;
    assert_eq!(held_rows(&app).await, (0, 0));
    let output = app.run_cli(&["retention", "run"]);
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["held_interactions_deleted"], 0, "nothing left to do");
    assert_problem(
        app.get(&held_path, Some(&auditor)).await,
        StatusCode::NOT_FOUND,
        "hold_not_found",
    )
    .await;
    let ended: Value = app
        .get_json("/v1/audit?action=holds.end", Some(&compliance))
        .await;
    assert_eq!(ended["entries"][0]["target"], erasure_id);
}

#[tokio::test]
async fn an_erasure_without_held_data_stores_no_hold() {
    let app = spawn_app_with(|_| {}).await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let response = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "chat", "subject_id": "cust-nohold", "type": "chat", "channel": "web",
                    "occurred_at": Utc::now().to_rfc3339(), "purposes": ["support"],
                    "data": {"message": "hello"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let preview: Value = app
        .get_json(
            "/v1/subjects/cust-nohold/erasure-preview",
            Some(&compliance),
        )
        .await;
    assert_eq!(preview["held"], json!([]));
    assert_eq!(preview["interactions"], 1);
    let erasure: Value = app
        .delete("/v1/subjects/cust-nohold", Some(&compliance))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(erasure["held"], json!([]));
    assert_eq!(erasure["counts"]["held_interactions"], 0);
    assert_eq!(held_rows(&app).await, (0, 0));
    assert_problem(
        app.get(
            "/v1/subjects/cust-nohold/erasure-preview",
            Some(&compliance),
        )
        .await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;
}

#[tokio::test]
async fn a_hold_key_moves_with_a_master_key_rotation_and_stays_readable() {
    let policies = policy_with_extra_roles(READERS);
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let auditor = app.token_for("tax_auditor").await;
    let response = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "inv", "subject_id": "cust-rot-hold", "type": "purchase",
                    "channel": "web", "occurred_at": Utc::now().to_rfc3339(),
                    "purposes": ["legal_compliance"], "data": {"order_id": "ORD-ROT-1"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let erasure: Value = app
        .delete("/v1/subjects/cust-rot-hold", Some(&compliance))
        .await
        .json()
        .await
        .unwrap();
    let erasure_id = erasure["id"].as_str().unwrap().to_owned();
    let hold_master = || async {
        use custodia::store::schema::legal_holds;
        use diesel::prelude::*;
        let database = app.database();
        tokio::task::spawn_blocking(move || {
            let mut conn = database.connection().expect("a connection");
            legal_holds::table
                .select(legal_holds::master_key_id)
                .first::<String>(&mut *conn)
                .unwrap()
        })
        .await
        .unwrap()
    };
    let before = hold_master().await;
    let output = app.run_cli(&["keys", "rotate-master"]);
    assert!(output.status.success(), "{output:?}");
    let new_id = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert_ne!(before, new_id);
    assert_eq!(hold_master().await, new_id, "the hold's key was re-wrapped");
    let held: Value = app
        .get_json(
            &format!("/v1/erasures/{erasure_id}/held?purpose=legal_compliance"),
            Some(&auditor),
        )
        .await;
    assert_eq!(
        held["interactions"][0]["data"],
        json!({"order_id": "ORD-ROT-1"})
    );
}

#[tokio::test]
async fn a_merged_visitors_order_is_held_at_the_persons_erasure_under_the_holds_key() {
    let policies = policy_with_extra_roles(READERS);
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let write_key = app.create_api_key("collector").await;
    let compliance = app.token_for("compliance").await;
    let auditor = app.token_for("tax_auditor").await;
    let ordered_at = (Utc::now() - Duration::days(10)).to_rfc3339();
    // A visitor orders anonymously (support and legal_compliance, policies/tracking.toml); the
    // customer they log in as has a support chat of their own.
    for messages in [
        json!([
            {"type": "track", "messageId": "o-1", "anonymousId": "anon-hold",
             "event": "Order Completed", "timestamp": ordered_at,
             "properties": {"order_id": "ORD-MEMBER-7781"}},
            {"type": "track", "messageId": "s-1", "userId": "user-hold",
             "event": "Support Chat Started", "properties": {"message": "hello 5e0c"}}
        ]),
        json!([{"type": "identify", "messageId": "i-1", "userId": "user-hold",
                "anonymousId": "anon-hold"}]),
    ] {
        let sent =
            crate::tracking::send(&app, "/v1/batch", &write_key, &json!({"batch": messages})).await;
        assert_eq!(sent.status(), StatusCode::OK);
    }
    assert_eq!(count_rows(&app, "subject_members").await, 1);

    let preview: Value = app
        .get_json("/v1/subjects/user-hold/erasure-preview", Some(&compliance))
        .await;
    assert_eq!(preview["held_interactions"], 1, "{preview}");
    assert_eq!(preview["interactions"], 1, "{preview}");
    let response = app
        .delete("/v1/subjects/user-hold", Some(&compliance))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let erasure: Value = response.json().await.unwrap();
    assert_eq!(erasure["counts"]["held_interactions"], 1, "{erasure}");
    assert_eq!(erasure["counts"]["interactions"], 1, "{erasure}");
    assert_eq!(erasure["counts"]["data_keys"], 2, "{erasure}");
    for table in ["subjects", "data_keys", "interactions", "subject_members"] {
        assert_eq!(count_rows(&app, table).await, 0, "{table}");
    }
    // The visitor's order, sealed under their own key until now, is readable under the hold's.
    let erasure_id = erasure["id"].as_str().unwrap();
    let held: Value = app
        .get_json(
            &format!("/v1/erasures/{erasure_id}/held?purpose=legal_compliance"),
            Some(&auditor),
        )
        .await;
    let records = held["interactions"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{held}");
    assert_eq!(records[0]["data"], json!({"order_id": "ORD-MEMBER-7781"}));
    let dump = database_dump(&app).await;
    for secret in ["ORD-MEMBER-7781", "hello 5e0c", "anon-hold", "user-hold"] {
        assert!(
            !contains_in_any_encoding(&dump, secret),
            "{secret} in clear"
        );
    }
}
