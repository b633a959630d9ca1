//! No personal data in logs: a server logging at `debug` is sent identifiers, contents and
//! malformed input carrying canaries — in paths, bodies, queries and headers, accepted and
//! refused — and its whole log is searched for them afterwards.

use reqwest::Client;
use serde_json::json;

use crate::helpers::{
    contains_in_any_encoding, custodia_command, free_port, fresh_database, sample_policy_dir,
    serve_process_logging,
};

#[tokio::test]
async fn a_debug_log_holds_none_of_the_personal_data_it_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let log_path = dir.path().join("serve.log");
    let database = fresh_database();
    let port = free_port();
    let log = std::fs::File::create(&log_path).unwrap();
    let mut server = serve_process_logging(port, &data_dir, &database.url, log.into()).await;
    let base = format!("http://127.0.0.1:{port}");
    let key = |role: &str| {
        let output = custodia_command()
            .args(["keys", "create", "--role", role, "--name", role])
            .env("CUSTODIA_DATA_DIR", &data_dir)
            .env("CUSTODIA_POLICY_DIR", sample_policy_dir())
            .env("CUSTODIA_DATABASE_URL", &database.url)
            .output()
            .unwrap();
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let client = Client::new();
    let token = |api_key: String| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let body: serde_json::Value = client
                .post(format!("{base}/v1/auth/token"))
                .json(&json!({"api_key": api_key}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let collector = token(key("collector")).await;
    let compliance = token(key("compliance")).await;
    let support = token(key("support")).await;

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
    server.kill().unwrap();
    server.wait().unwrap();

    let log = std::fs::read(&log_path).unwrap();
    assert!(log.len() > 1000, "the server logged at debug");
    let text = String::from_utf8_lossy(&log);
    assert!(
        text.contains("/v1/subjects/{subject_id}"),
        "requests are logged, by route pattern"
    );
    for canary in [
        "logcanary",
        "log.canary",
        "99137",
        "Logperson",
        "canary-header-8812",
        "secret_field",
    ] {
        assert!(
            !contains_in_any_encoding(&log, canary),
            "`{canary}` is in the log"
        );
    }
}
