//! The tracking protocol of Segment's and RudderStack's SDKs (docs/tracking.md), through the
//! HTTP API: write keys with HTTP Basic, messages into interactions, purposes from the policy's
//! `[tracking]` table and the message's consent context, idempotency by `messageId`, and
//! malformed requests storing nothing.

use std::io::Write;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, count_rows, key_id_of, limited_and_refused, policy_with_extra_roles, spawn_app,
    spawn_app_with, TestApp,
};

/// POSTs a body to a tracking route with the API key as the Basic username, as the SDKs do.
pub(crate) async fn send(
    app: &TestApp,
    path: &str,
    write_key: &str,
    body: &Value,
) -> reqwest::Response {
    app.client
        .post(format!("{}{path}", app.address))
        .basic_auth(write_key, Some(""))
        .json(body)
        .send()
        .await
        .expect("the request is answered")
}

pub(crate) fn track(message_id: &str, user_id: &str, event: &str, properties: Value) -> Value {
    json!({
        "type": "track", "messageId": message_id, "userId": user_id, "event": event,
        "properties": properties,
        "context": {"library": {"name": "analytics-node", "version": "2.1.0"}},
        "timestamp": "2026-11-01T10:00:00.000Z"
    })
}

/// The value of `custodia_tracking_total{outcome=…}` (0 when absent).
pub(crate) async fn tracked(app: &TestApp, outcome: &str) -> u64 {
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let prefix = format!("custodia_tracking_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().unwrap())
}

#[tokio::test]
async fn a_batch_sent_with_a_write_key_becomes_interactions_with_declared_fields_only() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let support = app.token_for("support").await;
    let batch = json!({
        "batch": [
            track("m-1", "user-1", "Order Completed", json!({
                "order_id": "ORD-77", "revenue": 42.5, "products": [{"sku": "A"}],
                "message": "leave it at the door"
            })),
            {"type": "page", "messageId": "m-2", "userId": "user-1", "name": "Checkout",
             "properties": {"page_url": "/checkout", "title": "Checkout"},
             "originalTimestamp": "2026-11-01T10:00:00Z", "sentAt": "2026-11-01T10:00:01Z"}
        ],
        "sentAt": "2026-11-01T10:00:01Z"
    });
    let response = send(&app, "/v1/batch", &write_key, &batch).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"success": true})
    );

    assert_eq!(count_rows(&app, "interactions").await, 2);
    // The order event: "Order Completed" is collected for support and legal compliance; the
    // page view for the default purpose (analytics).
    assert_eq!(count_rows(&app, "interaction_purposes").await, 3);
    let read = app
        .get_json(
            "/v1/subjects/user-1/interactions?purpose=support",
            Some(&support),
        )
        .await;
    let items = read["interactions"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{read}");
    assert_eq!(items[0]["id"], "m-1");
    assert_eq!(items[0]["type"], "order_completed");
    assert_eq!(items[0]["channel"], "server");
    assert_eq!(items[0]["occurred_at"], "2026-11-01T10:00:00Z");
    assert_eq!(
        items[0]["data"],
        json!({"order_id": "ORD-77", "message": "leave it at the door"}),
        "undeclared properties (revenue, products) are never stored"
    );
    // revenue, products (track) and title (page) were dropped.
    assert_eq!(tracked(&app, "properties_dropped").await, 3);
    assert_eq!(tracked(&app, "stored").await, 2);
}

#[tokio::test]
async fn group_calls_are_accepted_and_nothing_of_them_is_kept() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let group = json!({"type": "group", "messageId": "grp-1", "userId": "user-10",
                       "groupId": "acme", "traits": {"name": "Acme", "email": "boss@acme.example"}});
    assert_eq!(
        send(&app, "/v1/group", &write_key, &group).await.status(),
        StatusCode::OK
    );
    let batch =
        json!({"batch": [group, track("grp-2", "user-10", "Support Chat Started", json!({}))]});
    assert_eq!(
        send(&app, "/v1/batch", &write_key, &batch).await.status(),
        StatusCode::OK
    );
    assert_eq!(tracked(&app, "ignored").await, 2);
    assert_eq!(count_rows(&app, "interactions").await, 1);
    assert_eq!(
        count_rows(&app, "subject_identifiers").await,
        1,
        "the subject id's hash only"
    );
    assert_eq!(count_rows(&app, "subject_traits").await, 0);
}

#[tokio::test]
async fn a_message_sent_again_is_stored_once() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let message = track("dup-1", "user-2", "Support Chat Started", json!({}));
    for _ in 0..2 {
        let response = send(&app, "/v1/track", &write_key, &message).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let retried = send(&app, "/v1/batch", &write_key, &json!({"batch": [message]})).await;
    assert_eq!(retried.status(), StatusCode::OK);
    assert_eq!(count_rows(&app, "interactions").await, 1);
    assert_eq!(tracked(&app, "stored").await, 1);
    assert_eq!(tracked(&app, "duplicate").await, 2);
}

#[tokio::test]
async fn the_consent_context_adds_and_removes_purposes_and_the_ledger_decides() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let collector = app.token_for("collector").await;
    let with_context = |id: &str, context: Value| {
        json!({"type": "track", "messageId": id, "userId": "user-3", "event": "Product Viewed",
               "context": context})
    };

    // Analytics denied in the banner: the default purpose is withdrawn from this event, and
    // nothing is left to collect it for.
    let denied = with_context(
        "c-1",
        json!({"consent": {"categoryPreferences": {"Analytics": false}}}),
    );
    assert_eq!(
        send(&app, "/v1/track", &write_key, &denied).await.status(),
        StatusCode::OK
    );
    assert_eq!(count_rows(&app, "interactions").await, 0);
    assert_eq!(tracked(&app, "no_purpose").await, 1);

    // Advertising allowed in the banner asks for marketing too, but no consent statement is
    // recorded: stored for analytics only.
    let allowed = with_context(
        "c-2",
        json!({"consent": {"categoryPreferences": {"Advertising": true, "Analytics": true}}}),
    );
    assert_eq!(
        send(&app, "/v1/track", &write_key, &allowed).await.status(),
        StatusCode::OK
    );
    assert_eq!(count_rows(&app, "interactions").await, 1);
    assert_eq!(count_rows(&app, "interaction_purposes").await, 1);

    // Once the person's consent is in the ledger, marketing is accepted as well
    // (RudderStack's shape of the same context).
    let consent = app
        .post_json(
            "/v1/subjects/user-3/consents",
            Some(&collector),
            &json!({"purpose": "marketing", "status": "granted", "source": "web",
                    "method": "banner", "notice": {"id": "newsletter", "version": "3"}}),
        )
        .await;
    assert_eq!(consent.status(), StatusCode::CREATED);
    let rudder = with_context(
        "c-3",
        json!({"consentManagement": {"provider": "oneTrust",
               "allowedConsentIds": ["C0004"], "deniedConsentIds": []}}),
    );
    assert_eq!(
        send(&app, "/v1/track", &write_key, &rudder).await.status(),
        StatusCode::OK
    );
    assert_eq!(count_rows(&app, "interactions").await, 2);
    assert_eq!(count_rows(&app, "interaction_purposes").await, 3);
}

#[tokio::test]
async fn a_malformed_message_stores_nothing_of_its_batch() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let good = track("g-1", "user-4", "Support Chat Started", json!({}));
    let cases = [
        (
            json!({"type": "track", "messageId": "b-1", "userId": "user-4"}),
            "invalid_message",
        ),
        (
            json!({"type": "track", "messageId": "b-2", "event": "X"}),
            "invalid_message",
        ),
        (
            json!({"type": "alias", "messageId": "b-3", "userId": "user-4"}),
            "invalid_message",
        ),
        (
            json!({"type": "track", "messageId": "b-8", "anonymousId": "anon-9",
                   "event": "Segment Consent Preference Updated",
                   "context": {"consent": {"categoryPreferences": {"Unknown": true}}}}),
            "invalid_consent_event",
        ),
        (
            json!({"type": "identify", "messageId": "b-7", "userId": "user-4",
                   "traits": {"email": "someone@@example.com"}}),
            "invalid_identifier",
        ),
        (
            json!({"type": "track", "messageId": "b-4", "userId": "user-4", "event": "X",
                   "timestamp": "yesterday"}),
            "invalid_timestamp",
        ),
        (
            json!({"type": "track", "messageId": "b-5", "userId": "user-4", "event": "X",
                   "properties": {"message": "x".repeat(20_000)},
                   "context": {"padding": "y".repeat(20_000)}}),
            "message_too_large",
        ),
        (
            json!({"type": "track", "messageId": "b-6", "userId": "user-4",
                   "event": "Order Completed", "properties": {"message": "m".repeat(5_000)}}),
            "invalid_field_value",
        ),
    ];
    for (bad, code) in cases {
        let identify = json!({"type": "identify", "messageId": "g-0", "userId": "user-4",
                              "traits": {"country": "DE"}});
        let response = send(
            &app,
            "/v1/batch",
            &write_key,
            &json!({"batch": [identify, good, bad]}),
        )
        .await;
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, code).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .starts_with("message 2 of the batch"),
            "{problem}"
        );
        assert!(
            !problem.to_string().contains("someone@example.com"),
            "no value is repeated: {problem}"
        );
    }
    let not_json = app
        .post_raw("/v1/batch", None, "application/json", "{\"batch\": [")
        .await;
    assert_eq!(not_json.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .client
        .post(format!("{}/v1/batch", app.address))
        .basic_auth(&write_key, Some(""))
        .header("content-type", "application/json")
        .body("{\"batch\": [")
        .send()
        .await
        .unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_batch").await;
    let huge = json!({"batch": (0..40).map(|i| track(&format!("h-{i}"), "user-4", "X",
        json!({"message": "z".repeat(15_000)}))).collect::<Vec<_>>()});
    assert_problem(
        send(&app, "/v1/batch", &write_key, &huge).await,
        StatusCode::BAD_REQUEST,
        "body_too_large",
    )
    .await;
    assert_eq!(count_rows(&app, "interactions").await, 0);
    assert_eq!(count_rows(&app, "subjects").await, 0);
}

#[tokio::test]
async fn gzip_bodies_are_read_and_bombs_refused() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let gzip = |bytes: &[u8]| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    };
    let batch = json!({"batch": [track("z-1", "user-5", "Support Chat Started", json!({}))]});
    let post = |body: Vec<u8>| {
        app.client
            .post(format!("{}/v1/batch", app.address))
            .basic_auth(&write_key, Some(""))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(body)
            .send()
    };
    let response = post(gzip(batch.to_string().as_bytes())).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(count_rows(&app, "interactions").await, 1);

    // 50 MB of spaces compress to about 50 KB: refused once 500 KiB are decompressed.
    let bomb = gzip(&vec![b' '; 50 * 1024 * 1024]);
    assert!(bomb.len() < 500 * 1024);
    let response = post(bomb).await.unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, "body_too_large").await;
    let response = post(b"not gzip at all".to_vec()).await.unwrap();
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_body").await;
    assert_eq!(count_rows(&app, "interactions").await, 1);
}

#[tokio::test]
async fn write_keys_work_only_for_collecting_roles_on_tracking_routes_until_revoked() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let message = track("k-1", "user-6", "Support Chat Started", json!({}));

    // The same key with its last character changed (never to itself).
    let (head, last) = write_key.split_at(write_key.len() - 1);
    let wrong = format!("{head}{}", if last == "0" { "1" } else { "0" });
    assert_problem(
        send(&app, "/v1/track", &wrong, &message).await,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    )
    .await;
    let marketer = app.create_api_key("marketer").await;
    assert_eq!(
        send(&app, "/v1/track", &marketer, &message).await.status(),
        StatusCode::FORBIDDEN
    );
    // Basic is for the tracking routes only: elsewhere a bearer token is needed.
    let elsewhere = app
        .client
        .post(format!("{}/v1/interactions", app.address))
        .basic_auth(&write_key, Some(""))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::UNAUTHORIZED);
    // A bearer token works on the tracking routes too.
    let token = app.token_for_key(&write_key).await;
    let with_token = app.post_json("/v1/track", Some(&token), &message).await;
    assert_eq!(with_token.status(), StatusCode::OK);

    for id in ["k-2", "k-3"] {
        let message = track(id, "user-6", "Support Chat Started", json!({}));
        assert_eq!(
            send(&app, "/v1/track", &write_key, &message).await.status(),
            StatusCode::OK
        );
    }
    let admin = app.token_for("admin").await;
    let revoked = app
        .delete(&format!("/v1/keys/{}", key_id_of(&write_key)), Some(&admin))
        .await;
    assert!(revoked.status().is_success());
    let after = track("k-4", "user-6", "Support Chat Started", json!({}));
    assert_problem(
        send(&app, "/v1/track", &write_key, &after).await,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    )
    .await;
    assert_eq!(count_rows(&app, "interactions").await, 3);
}

#[tokio::test]
async fn a_flood_of_bad_write_keys_is_limited_and_a_checked_key_is_not() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let first = track("f-0", "user-7", "Support Chat Started", json!({}));
    assert_eq!(
        send(&app, "/v1/track", &write_key, &first).await.status(),
        StatusCode::OK
    );

    // More bad keys at once than the address's burst of key checks (40): each would cost an
    // argon2id hash.
    let message = track("f-x", "user-7", "Support Chat Started", json!({}));
    let app = &app;
    let bad = (0..80).map(|n| {
        let key = format!("ck_{n:016x}_{}", "0".repeat(64));
        let message = message.clone();
        async move { send(app, "/v1/track", &key, &message).await.status() }
    });
    let statuses = futures_util::future::join_all(bad).await;
    assert_eq!(statuses.len(), 80);
    let (limited, _) = limited_and_refused(&statuses);
    assert!(limited >= 20, "{limited} of 80 were limited");

    // The key checked before is remembered: its requests cost no check and are not limited.
    for n in 1..=60 {
        let message = track(
            &format!("f-{n}"),
            "user-7",
            "Support Chat Started",
            json!({}),
        );
        assert_eq!(
            send(app, "/v1/track", &write_key, &message).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(count_rows(app, "interactions").await, 61);
}

#[tokio::test]
async fn identify_sets_identifiers_and_declared_traits_with_the_batchs_events_at_once() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let compliance = app.token_for("compliance").await;
    let batch = json!({"batch": [
        {"type": "identify", "messageId": "i-1", "userId": "user-8",
         "traits": {"email": "Eight@Example.com", "country": "DE", "plan": "gold",
                    "address": {"city": "Berlin"}}},
        track("i-2", "user-8", "Support Chat Started", json!({}))
    ]});
    assert_eq!(
        send(&app, "/v1/batch", &write_key, &batch).await.status(),
        StatusCode::OK
    );
    let found = app
        .post_json(
            "/v1/lookup/subjects",
            Some(&compliance),
            &json!({"email": "eight@example.com"}),
        )
        .await;
    assert_eq!(found.status(), StatusCode::OK);
    assert_eq!(
        found.json::<Value>().await.unwrap()["subjects"],
        json!([{"subject_id": "user-8"}])
    );
    assert_eq!(count_rows(&app, "subjects").await, 1);
    assert_eq!(
        count_rows(&app, "subject_traits").await,
        1,
        "country, segmentable"
    );
    assert_eq!(count_rows(&app, "interactions").await, 1);
    assert_eq!(tracked(&app, "identified").await, 1);
    assert_eq!(
        tracked(&app, "properties_dropped").await,
        2,
        "plan and address"
    );

    // A person erased with suppression is not brought back by a later identify; the rest of
    // the batch is stored.
    let erased = app
        .delete("/v1/subjects/user-8?suppress=true", Some(&compliance))
        .await;
    assert_eq!(erased.status(), StatusCode::OK);
    let again = json!({"batch": [
        {"type": "identify", "messageId": "i-3", "userId": "user-8",
         "traits": {"email": "eight@example.com"}},
        {"type": "identify", "messageId": "i-4", "userId": "user-9", "traits": {"country": "AT"}}
    ]});
    assert_eq!(
        send(&app, "/v1/batch", &write_key, &again).await.status(),
        StatusCode::OK
    );
    assert_eq!(count_rows(&app, "subjects").await, 1, "only user-9");
    let lookup = app
        .post_json(
            "/v1/lookup/subjects",
            Some(&compliance),
            &json!({"email": "eight@example.com"}),
        )
        .await;
    assert_eq!(lookup.status(), StatusCode::NOT_FOUND);
    assert_eq!(tracked(&app, "refused").await, 1);
}

#[tokio::test]
async fn a_purpose_the_role_may_not_collect_for_refuses_that_message_alone_and_is_audited() {
    let policies = policy_with_extra_roles(
        "[[role]]\nid = \"web_tag\"\nactions = [\"interactions.write\"]\npurposes = [\"analytics\"]\n",
    );
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let write_key = app.create_api_key("web_tag").await;
    let compliance = app.token_for("compliance").await;
    // "Order Completed" is collected for support and legal compliance, which this role may not
    // collect for; the page view (analytics) it may.
    let batch = json!({"batch": [
        track("w-1", "user-11", "Order Completed", json!({})),
        {"type": "page", "messageId": "w-2", "userId": "user-11", "name": "Home"}
    ]});
    assert_eq!(
        send(&app, "/v1/batch", &write_key, &batch).await.status(),
        StatusCode::OK
    );
    assert_eq!(count_rows(&app, "interactions").await, 1);
    assert_eq!(tracked(&app, "refused").await, 1);
    assert_eq!(tracked(&app, "stored").await, 1);

    // Alone in its request, the refused message is still audited.
    let alone = track("w-3", "user-11", "Order Completed", json!({}));
    assert_eq!(
        send(&app, "/v1/track", &write_key, &alone).await.status(),
        StatusCode::OK
    );
    let denied = app
        .get_json(
            "/v1/audit?decision=deny&action=interactions.write",
            Some(&compliance),
        )
        .await;
    let entries = denied["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{denied}");
    assert!(entries
        .iter()
        .all(|entry| entry["reason"] == "purpose_not_permitted" && entry["role"] == "web_tag"));
    assert_eq!(count_rows(&app, "interactions").await, 1);
}
