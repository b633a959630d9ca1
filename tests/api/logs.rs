//! No personal data in logs: a server logging at `debug` is sent identifiers, contents and
//! malformed input carrying canaries — in paths, bodies, queries and headers, accepted and
//! refused — and its whole log is searched for them afterwards.

use reqwest::Client;
use serde_json::json;

use crate::helpers::{contains_in_any_encoding, Deployment};

#[tokio::test]
async fn a_debug_log_holds_none_of_the_personal_data_it_was_sent() {
    let deployment = Deployment::new();
    let log_dir = tempfile::tempdir().unwrap();
    let log_path = log_dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = deployment.serve_logging(log.into()).await;
    let base = server.base.clone();
    let client = Client::new();
    let collector = server.token(&deployment.api_key("collector")).await;
    let compliance = server.token(&deployment.api_key("compliance")).await;
    let support = server.token(&deployment.api_key("support")).await;
    let write_key = deployment.api_key("collector");

    let subject = "cust-logcanary-5521";
    let email = "log.canary@example.org";
    let message = "canary parcel 99137 never came";
    let send = |method: reqwest::Method, path: String, token: &str, body: serde_json::Value| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(token)
            .header("X-Request-Id", "canary-header-8812")
            .json(&body)
            .send()
    };
    // Accepted writes and reads.
    send(
        reqwest::Method::PUT,
        format!("/v1/subjects/{subject}"),
        &collector,
        json!({"identifiers": {"email": email}, "traits": {"full_name": "Canary Logperson"}}),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::POST,
        "/v1/interactions".into(),
        &collector,
        json!({"id": "evt-logcanary-1", "subject_id": subject, "type": "support_chat",
                "channel": "chat", "occurred_at": "2026-11-30T10:00:00Z",
                "purposes": ["support"], "data": {"message": message}}),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::GET,
        format!("/v1/subjects/{subject}/interactions?purpose=support"),
        &support,
        json!(null),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::POST,
        "/v1/lookup/subjects".into(),
        &compliance,
        json!({"email": email}),
    )
    .await
    .unwrap();
    // Refused input that carries the canaries: undeclared fields, bad values, unknown people.
    send(
        reqwest::Method::POST,
        "/v1/interactions".into(),
        &collector,
        json!({"id": "evt-logcanary-2", "subject_id": subject, "type": "support_chat",
                "channel": "chat", "occurred_at": "not a time", "purposes": ["support"],
                "data": {"secret_field": message}}),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::PUT,
        format!("/v1/subjects/{subject}"),
        &collector,
        json!({"identifiers": {"email": "log.canary@@example.org"}}),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::GET,
        "/v1/subjects/cust-logcanary-unknown/consents".into(),
        &compliance,
        json!(null),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::POST,
        "/v1/requests".into(),
        &compliance,
        json!({"type": "access", "regulation": "gdpr", "email": email}),
    )
    .await
    .unwrap();
    send(
        reqwest::Method::DELETE,
        format!("/v1/subjects/{subject}"),
        &compliance,
        json!(null),
    )
    .await
    .unwrap();
    // The tracking protocol, with the API key itself as the write key: a batch stored, one
    // refused as malformed, each carrying canaries in ids, properties and context.
    let tracked = |body: serde_json::Value| {
        client
            .post(format!("{base}/v1/batch"))
            .basic_auth(&write_key, Some(""))
            .json(&body)
            .send()
    };
    let stored = tracked(json!({"batch": [
        {"type": "track", "messageId": "msg-logcanary-1", "userId": "user-logcanary-7",
         "event": "Order Completed", "properties": {"message": message, "coupon": "logcanary"},
         "context": {"ip": "203.0.113.99", "userAgent": "logcanary-agent"}}
    ]}))
    .await
    .unwrap();
    assert_eq!(stored.status(), reqwest::StatusCode::OK);
    // An anonymous visitor's consent and events, then their login: linked and merged.
    let linked = tracked(json!({"batch": [
        {"type": "track", "messageId": "msg-logcanary-2", "anonymousId": "anon-logcanary-3",
         "event": "Segment Consent Preference Updated",
         "context": {"ip": "203.0.113.98", "userAgent": "logcanary-agent-2",
                     "consent": {"categoryPreferences": {"Advertising": true}}}},
        {"type": "track", "messageId": "msg-logcanary-4", "anonymousId": "anon-logcanary-3",
         "event": "logcanary event", "properties": {"message": message}}
    ]}))
    .await
    .unwrap();
    assert_eq!(linked.status(), reqwest::StatusCode::OK);
    let merged = tracked(json!({"batch": [
        {"type": "identify", "messageId": "msg-logcanary-5", "userId": "user-logcanary-7",
         "anonymousId": "anon-logcanary-3", "traits": {"email": "logcanary@example.com"}}
    ]}))
    .await
    .unwrap();
    assert_eq!(merged.status(), reqwest::StatusCode::OK);
    let refused = tracked(json!({"batch": [
        {"type": "alias", "messageId": "msg-logcanary-6", "userId": "user-logcanary-8",
         "context": {"ip": "203.0.113.97"}, "properties": {"message": message}}
    ]}))
    .await
    .unwrap();
    assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
    server.kill();

    let log = std::fs::read(&log_path).unwrap();
    assert!(log.len() > 1000, "the server logged at debug");
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("/v1/subjects/{subject_id}"),
        "requests are logged, by route pattern"
    );
    // A log written to a file is plain text: no terminal colour codes.
    assert!(!log.contains(&0x1b), "the log file holds ANSI escape codes");
    for canary in [
        "logcanary",
        "log.canary",
        "99137",
        "Logperson",
        "canary-header-8812",
        "secret_field",
        "203.0.113.99",
        write_key.rsplit('_').next().unwrap(),
    ] {
        assert!(
            !contains_in_any_encoding(&log, canary),
            "`{canary}` is in the log"
        );
    }
}
