//! Recording interactions: encryption at rest, declared fields only, purposes checked at
//! collection, batches, idempotency, and reads for a purpose.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, contains_in_any_encoding, count_rows, database_dump, policy_with_extra_roles,
    spawn_app, spawn_app_with, TestApp,
};

/// A role that may read for support and analytics, and one that may read for marketing.
const READERS: &str = r#"
[[role]]
id = "reader"
actions = ["interactions.read"]
purposes = ["support", "analytics"]

[[role]]
id = "marketing_reader"
actions = ["interactions.read"]
purposes = ["marketing"]

[[role]]
id = "newsletter_app"
actions = ["interactions.write"]
purposes = ["marketing.email"]
"#;

async fn spawn_with_readers() -> (TestApp, tempfile::TempDir) {
    let policies = policy_with_extra_roles(READERS);
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    (app, policies)
}

fn interaction(id: &str, subject: &str, purposes: &[&str], data: Value) -> Value {
    json!({
        "id": id, "subject_id": subject, "type": "support_chat", "channel": "chat",
        "occurred_at": "2026-11-01T10:00:00Z", "purposes": purposes, "data": data
    })
}

#[tokio::test]
async fn values_are_encrypted_at_rest_yet_read_back_for_a_permitted_purpose() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let support = app.token_for("support").await;
    let canary_subject = "cust-canary-4711";
    let canary_email = "jane.canary@example.com";
    let canary_message = "my parcel never arrived, canary 31337";
    let canary_client_id = "evt-canary-2024";

    let put = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/subjects/{canary_subject}"),
            Some(&collector),
            Some(&json!({
                "identifiers": {"email": canary_email, "phone": "+49 30 1234567"},
                "traits": {"full_name": "Jane Canaryperson", "country": "DE"}
            })),
        )
        .await;
    assert_eq!(put.status(), StatusCode::CREATED);
    let created = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &interaction(
                canary_client_id,
                canary_subject,
                &["support"],
                json!({"message": canary_message, "order_total": 42.5}),
            ),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);

    let dump = database_dump(&app).await;
    for secret in [
        canary_subject,
        canary_email,
        "+49301234567",
        "Jane Canaryperson",
        canary_message,
        canary_client_id,
    ] {
        assert!(
            !contains_in_any_encoding(&dump, secret),
            "{secret:?} is stored in clear"
        );
    }
    assert!(
        contains_in_any_encoding(&dump, "support_chat"),
        "the dump does see the database (interaction types are stored in clear)"
    );

    let read = app
        .get(
            &format!("/v1/subjects/{canary_subject}/interactions?purpose=support"),
            Some(&support),
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    let body: Value = read.json().await.unwrap();
    let item = &body["interactions"][0];
    assert_eq!(item["id"], canary_client_id);
    assert_eq!(item["data"]["message"], canary_message);
    assert_eq!(item["data"]["order_total"], 42.5);
    assert_eq!(item["purposes"], json!(["support"]));
    assert_eq!(item["withheld"], json!([]));
    assert_eq!(body["next_cursor"], Value::Null);
}

#[tokio::test]
async fn a_ciphertext_moved_elsewhere_fails_to_decrypt_and_is_never_shown() {
    use custodia::store::schema::interactions;
    use diesel::prelude::*;
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let support = app.token_for("support").await;
    for (id, message) in [("a", "first secret"), ("b", "second secret")] {
        let response = app
            .post_json(
                "/v1/interactions",
                Some(&collector),
                &interaction(id, "cust-1", &["support"], json!({"message": message})),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    // Copy record a's sealed data into record b, as someone with SQL access might.
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().unwrap();
        let rows: Vec<(String, String)> = interactions::table
            .select((interactions::id, interactions::data_ct))
            .order(interactions::recorded_at)
            .load(&mut *conn)
            .unwrap();
        assert_eq!(rows.len(), 2);
        diesel::update(interactions::table.find(&rows[1].0))
            .set(interactions::data_ct.eq(&rows[0].1))
            .execute(&mut *conn)
            .unwrap();
    })
    .await
    .unwrap();

    let read = app
        .get(
            "/v1/subjects/cust-1/interactions?purpose=support",
            Some(&support),
        )
        .await;

    let body = assert_problem(read, StatusCode::INTERNAL_SERVER_ERROR, "internal_error").await;
    assert!(!body.to_string().contains("secret"));
}

#[tokio::test]
async fn an_undeclared_field_is_422_naming_it_and_nothing_is_stored() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;

    let response = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &interaction(
                "e1",
                "cust-new",
                &["support"],
                json!({"message": "hi", "ssn": "078-05-1120"}),
            ),
        )
        .await;

    let body = assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "undeclared_field",
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("`ssn`"));
    assert!(!body.to_string().contains("078-05-1120"));
    assert_eq!(
        count_rows(&app, "subjects").await,
        0,
        "not even the subject is created"
    );
    assert_eq!(count_rows(&app, "interactions").await, 0);
}

#[tokio::test]
async fn bad_values_timestamps_and_purposes_are_precise_422s() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let cases = [
        (
            interaction("x", "s", &["support"], json!({"message": {"nested": true}})),
            "invalid_field_value",
        ),
        (
            interaction("x", "s", &["support"], json!({"message": "x".repeat(5000)})),
            "invalid_field_value",
        ),
        (
            interaction("x", "s", &["support"], json!({"message": true})),
            "invalid_field_value",
        ),
        (
            interaction("x", "s", &["telepathy"], json!({})),
            "unknown_purpose",
        ),
        (interaction("x", "s", &[], json!({})), "invalid_purposes"),
        (interaction("", "s", &["support"], json!({})), "invalid_id"),
        (
            interaction("x", " s", &["support"], json!({})),
            "invalid_subject_id",
        ),
    ];
    for (body, code) in cases {
        let response = app
            .post_json("/v1/interactions", Some(&collector), &body)
            .await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    let mut bad_time = interaction("x", "s", &["support"], json!({}));
    bad_time["occurred_at"] = json!("yesterday");
    let response = app
        .post_json("/v1/interactions", Some(&collector), &bad_time)
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_timestamp",
    )
    .await;
    let mut bad_type = interaction("x", "s", &["support"], json!({}));
    bad_type["type"] = json!("Jane Doe called");
    let response = app
        .post_json("/v1/interactions", Some(&collector), &bad_type)
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_token").await;
    assert_eq!(count_rows(&app, "interactions").await, 0);
    assert_eq!(count_rows(&app, "subjects").await, 0);
}

#[tokio::test]
async fn purposes_without_a_legal_basis_are_rejected_at_collection() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;

    let mixed = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &interaction(
                "m1",
                "cust-2",
                &["support", "marketing.email"],
                json!({"message": "hi"}),
            ),
        )
        .await;
    assert_eq!(mixed.status(), StatusCode::CREATED);
    let body: Value = mixed.json().await.unwrap();
    assert_eq!(body["purposes_accepted"], json!(["support"]));
    assert_eq!(body["purposes_rejected"], json!(["marketing.email"]));
    assert_eq!(body["rejections"][0]["reason"], "no_consent");

    let only_consent = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &interaction("m2", "cust-3", &["marketing"], json!({"message": "hi"})),
        )
        .await;
    let problem = assert_problem(
        only_consent,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_legal_basis",
    )
    .await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("marketing (no_consent)"));
    assert_eq!(count_rows(&app, "interactions").await, 1);
    assert_eq!(count_rows(&app, "interaction_purposes").await, 1);
    assert_eq!(
        count_rows(&app, "subjects").await,
        1,
        "cust-3 was not created"
    );
}

#[tokio::test]
async fn a_role_may_collect_only_for_its_purposes() {
    let (app, _policies) = spawn_with_readers().await;
    let newsletter = app.token_for("newsletter_app").await;

    let response = app
        .post_json(
            "/v1/interactions",
            Some(&newsletter),
            &interaction("n1", "cust-4", &["support"], json!({})),
        )
        .await;

    assert_problem(response, StatusCode::FORBIDDEN, "purpose_not_permitted").await;
    assert_eq!(count_rows(&app, "interactions").await, 0);
}

#[tokio::test]
async fn re_sent_interactions_are_stored_once() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let body = interaction("dup-1", "cust-5", &["support"], json!({"message": "once"}));

    let first = app
        .post_json("/v1/interactions", Some(&collector), &body)
        .await;
    let second = app
        .post_json("/v1/interactions", Some(&collector), &body)
        .await;

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["purposes_accepted"], json!(["support"]));
    // The same client id for another subject is another interaction.
    let other = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &interaction("dup-1", "cust-6", &["support"], json!({})),
        )
        .await;
    assert_eq!(other.status(), StatusCode::CREATED);
    let batch = app
        .post_json(
            "/v1/interactions/batch",
            Some(&collector),
            &json!({"interactions": [body.clone(), body.clone()]}),
        )
        .await;
    let batch: Value = batch.json().await.unwrap();
    assert_eq!(batch["duplicates"], 2);
    assert_eq!(batch["stored"], 0);
    assert_eq!(count_rows(&app, "interactions").await, 2);
}

#[tokio::test]
async fn a_batch_stores_its_valid_items_and_reports_the_bad_one_by_index() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let mut items: Vec<Value> = (0..5)
        .map(|i| {
            interaction(
                &format!("b{i}"),
                &format!("cust-b{}", i % 2),
                &["support"],
                json!({"message": "m"}),
            )
        })
        .collect();
    items[2]["data"] = json!({"social_security_number": "x"});
    items.push(json!({"id": "b5", "subject_id": "cust-b0", "extra": 1}));
    items.push(interaction(
        "b0",
        "cust-b0",
        &["support"],
        json!({"message": "m"}),
    ));

    let response = app
        .post_json(
            "/v1/interactions/batch",
            Some(&collector),
            &json!({"interactions": items}),
        )
        .await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    for (index, result) in results.iter().enumerate() {
        assert_eq!(result["index"], index);
    }
    assert_eq!(results[2]["error"]["code"], "undeclared_field");
    assert_eq!(results[2]["error"]["status"], 422);
    assert_eq!(results[5]["error"]["code"], "invalid_body");
    assert!(results[5]["error"]["detail"]
        .as_str()
        .unwrap()
        .contains("unknown field `extra`"));
    assert_eq!(
        results[6]["duplicate"], true,
        "the same id twice in one batch is stored once"
    );
    for index in [0, 1, 3, 4] {
        assert_eq!(results[index]["id"], format!("b{index}"));
        assert_eq!(results[index]["purposes_accepted"], json!(["support"]));
    }
    assert_eq!(
        (
            body["stored"].as_u64(),
            body["duplicates"].as_u64(),
            body["failed"].as_u64()
        ),
        (Some(4), Some(1), Some(2))
    );
    assert_eq!(count_rows(&app, "interactions").await, 4);
    assert_eq!(count_rows(&app, "subjects").await, 2);
}

#[tokio::test]
async fn a_batch_over_1000_items_is_refused_whole() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let items: Vec<Value> = (0..1001)
        .map(|i| interaction(&format!("i{i}"), "cust", &["support"], json!({})))
        .collect();

    let response = app
        .post_json(
            "/v1/interactions/batch",
            Some(&collector),
            &json!({"interactions": items}),
        )
        .await;

    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "batch_too_large",
    )
    .await;
    assert_eq!(count_rows(&app, "interactions").await, 0);
}

#[tokio::test]
async fn reads_apply_role_purposes_purpose_limitation_and_minimisation() {
    let (app, _policies) = spawn_with_readers().await;
    let collector = app.token_for("collector").await;
    let reader = app.token_for("reader").await;
    let marketing_reader = app.token_for("marketing_reader").await;
    let data = json!({"message": "where is my order", "order_id": "A-1", "page_url": "/checkout"});
    for (id, purposes) in [
        ("s1", vec!["support"]),
        ("a1", vec!["analytics"]),
        ("both", vec!["support", "analytics"]),
    ] {
        let response = app
            .post_json(
                "/v1/interactions",
                Some(&collector),
                &interaction(id, "cust-r", &purposes, data.clone()),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }

    let analytics: Value = app
        .get_json(
            "/v1/subjects/cust-r/interactions?purpose=analytics",
            Some(&reader),
        )
        .await;
    let ids: Vec<&str> = analytics["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"a1") && ids.contains(&"both"), "{ids:?}");
    let item = &analytics["interactions"][0];
    assert_eq!(
        item["data"],
        json!({"order_id": "A-1", "page_url": "/checkout"})
    );
    assert_eq!(item["withheld"], json!(["message"]));

    let support: Value = app
        .get_json(
            "/v1/subjects/cust-r/interactions?purpose=support",
            Some(&reader),
        )
        .await;
    assert_eq!(support["interactions"].as_array().unwrap().len(), 2);
    assert_eq!(support["interactions"][0]["withheld"], json!(["page_url"]));

    let wrong_purpose = app
        .get(
            "/v1/subjects/cust-r/interactions?purpose=fraud_prevention",
            Some(&reader),
        )
        .await;
    assert_problem(
        wrong_purpose,
        StatusCode::FORBIDDEN,
        "purpose_not_permitted",
    )
    .await;
    let no_consent = app
        .get(
            "/v1/subjects/cust-r/interactions?purpose=marketing",
            Some(&marketing_reader),
        )
        .await;
    assert_problem(no_consent, StatusCode::FORBIDDEN, "no_consent").await;
    let unknown = app
        .get(
            "/v1/subjects/nobody/interactions?purpose=support",
            Some(&reader),
        )
        .await;
    assert_problem(unknown, StatusCode::NOT_FOUND, "subject_not_found").await;
    let missing_purpose = app
        .get("/v1/subjects/cust-r/interactions", Some(&reader))
        .await;
    assert_problem(missing_purpose, StatusCode::BAD_REQUEST, "invalid_query").await;
}

#[tokio::test]
async fn reads_page_newest_first_with_opaque_cursors() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let support = app.token_for("support").await;
    let items: Vec<Value> = (0..7)
        .map(|i| {
            let mut item = interaction(&format!("p{i}"), "cust-p", &["support"], json!({}));
            item["occurred_at"] = json!(format!("2026-11-0{}T10:00:00Z", i + 1));
            item
        })
        .collect();
    let response = app
        .post_json(
            "/v1/interactions/batch",
            Some(&collector),
            &json!({"interactions": items}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..3 {
        let path = match &cursor {
            Some(cursor) => {
                format!("/v1/subjects/cust-p/interactions?purpose=support&limit=3&cursor={cursor}")
            }
            None => "/v1/subjects/cust-p/interactions?purpose=support&limit=3".to_owned(),
        };
        let page: Value = app.get_json(&path, Some(&support)).await;
        for item in page["interactions"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, ["p6", "p5", "p4", "p3", "p2", "p1", "p0"]);
    assert_eq!(cursor, None);
    let bad = app
        .get(
            "/v1/subjects/cust-p/interactions?purpose=support&cursor=bm9wZQ",
            Some(&support),
        )
        .await;
    assert_problem(bad, StatusCode::BAD_REQUEST, "invalid_cursor").await;
}

#[tokio::test]
async fn concurrent_posts_are_each_answered_and_stored_once() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let mut requests = Vec::new();
    for i in 0..40 {
        // Five copies of "same-1" race each other; one item is invalid; the rest are distinct.
        let body = match i {
            0..=4 => interaction("same-1", "cust-c", &["support"], json!({"message": "x"})),
            5 => interaction("bad", "cust-c", &["support"], json!({"pin": "1234"})),
            _ => interaction(
                &format!("c{i}"),
                &format!("cust-c{}", i % 7),
                &["support", "marketing"],
                json!({}),
            ),
        };
        let (client, url, token) = (
            app.client.clone(),
            format!("{}/v1/interactions", app.address),
            collector.clone(),
        );
        requests.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (i, status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut created_same = 0;
    for request in requests {
        let (i, status, body) = request.await.unwrap();
        match i {
            0..=4 => {
                assert!(
                    status == StatusCode::CREATED || status == StatusCode::OK,
                    "{status} {body}"
                );
                if status == StatusCode::CREATED {
                    created_same += 1;
                } else {
                    assert_eq!(body["duplicate"], true);
                }
            }
            5 => assert_eq!(
                (status, body["code"].as_str()),
                (StatusCode::UNPROCESSABLE_ENTITY, Some("undeclared_field"))
            ),
            _ => {
                assert_eq!(status, StatusCode::CREATED, "{body}");
                assert_eq!(body["id"], format!("c{i}"));
                assert_eq!(body["purposes_rejected"], json!(["marketing"]));
            }
        }
    }
    assert_eq!(
        created_same, 1,
        "exactly one of the racing copies is stored"
    );
    assert_eq!(count_rows(&app, "interactions").await, 1 + 34);
    assert_eq!(count_rows(&app, "subjects").await, 1 + 7);
}
