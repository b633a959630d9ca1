//! Retention: `custodia retention run` removes each purpose from interactions older than its
//! retention and deletes interactions no purpose holds any more — exactly those — and audits it.

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{count_rows, spawn_app};

#[tokio::test]
async fn retention_deletes_exactly_what_expired() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let support = app.token_for("support").await;
    let compliance = app.token_for("compliance").await;
    let days_ago = |days: i64| (Utc::now() - Duration::days(days)).to_rfc3339();
    // support keeps 730 days, analytics 395, legal_compliance 3650 (policies/purposes.toml).
    let items = [
        ("old-support", days_ago(800), json!(["support"])),
        (
            "old-both",
            days_ago(800),
            json!(["support", "legal_compliance"]),
        ),
        ("new-support", days_ago(10), json!(["support"])),
        ("old-analytics", days_ago(400), json!(["analytics"])),
        ("new-analytics", days_ago(300), json!(["analytics"])),
    ];
    for (id, occurred_at, purposes) in &items {
        let response = app
            .post_json(
                "/v1/interactions",
                Some(&collector),
                &json!({"id": id, "subject_id": "cust-ret", "type": "visit", "channel": "web",
                        "occurred_at": occurred_at, "purposes": purposes}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED, "{id}");
    }
    assert_eq!(count_rows(&app, "interactions").await, 5);

    let output = app.run_cli(&["retention", "run"]);
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report,
        json!({"purposes": {
                  "analytics": {"interactions_expired": 1, "interactions_deleted": 1},
                  "support": {"interactions_expired": 2, "interactions_deleted": 1}},
               "interactions_deleted": 2,
               "erasure_receipts_shredded": 0,
               "held_interactions_deleted": 0,
               "legal_holds_ended": 0,
               "segment_answers_forgotten": 0,
               "insight_days_forgotten": 0})
    );
    assert_eq!(count_rows(&app, "interactions").await, 3);
    assert_eq!(count_rows(&app, "interaction_purposes").await, 3);
    let page: Value = app
        .get_json(
            "/v1/subjects/cust-ret/interactions?purpose=support",
            Some(&support),
        )
        .await;
    let ids: Vec<&str> = page["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["new-support"],
        "old-both is kept only for legal_compliance"
    );

    // Nothing more to do the second time; both runs' work is in the audit log, which verifies.
    let again = app.run_cli(&["retention", "run"]);
    let again: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["interactions_deleted"], 0);
    let log: Value = app
        .get_json("/v1/audit?action=retention.expire", Some(&compliance))
        .await;
    let entries = log["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{log}");
    assert!(entries.iter().all(|e| e["role"] == "operator"));
    let records: i64 = entries.iter().map(|e| e["records"].as_i64().unwrap()).sum();
    assert_eq!(records, 3);
    let verified: Value = app.get_json("/v1/audit/verify", Some(&compliance)).await;
    assert_eq!(verified["ok"], true);
}

#[tokio::test]
async fn a_server_applies_retention_on_its_own() {
    let app = crate::helpers::spawn_app().await;
    let collector = app.token_for("collector").await;
    let response = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "old", "subject_id": "cust-auto", "type": "visit", "channel": "web",
                    "occurred_at": (Utc::now() - Duration::days(800)).to_rfc3339(),
                    "purposes": ["support"]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(count_rows(&app, "interactions").await, 1);
    // The server's periodic job (run now rather than waited for) deletes it.
    app.run_job("retention").await;
    assert_eq!(
        count_rows(&app, "interactions").await,
        0,
        "the periodic run deleted the expired interaction"
    );
}
