//! `PUT /v1/subjects/{subject_id}` and lookup by e-mail.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, count_rows, spawn_app};

#[tokio::test]
async fn a_subject_is_created_then_updated_and_found_by_email() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let body = json!({"identifiers": {"email": "Jane.Doe@Example.com"}, "traits": {"country": "DE", "full_name": "Jane Doe"}});

    let first = app
        .request(
            Method::PUT,
            "/v1/subjects/cust-42",
            Some(&collector),
            Some(&body),
        )
        .await;
    let second = app
        .request(
            Method::PUT,
            "/v1/subjects/cust-42",
            Some(&collector),
            Some(&json!({"traits": {"country": "AT"}})),
        )
        .await;

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(
        first.json::<Value>().await.unwrap(),
        json!({"subject_id": "cust-42", "created": true})
    );
    assert_eq!(second.status(), StatusCode::OK);
    assert_eq!(count_rows(&app, "subjects").await, 1);
    assert_eq!(
        count_rows(&app, "subject_traits").await,
        1,
        "only the segmentable trait is filterable"
    );
    // The e-mail's blind index, and those of the SHA-256 of the e-mail and of the subject id.
    assert_eq!(count_rows(&app, "subject_identifiers").await, 3);

    let found = app
        .post_json(
            "/v1/lookup/subjects",
            Some(&compliance),
            &json!({"email": " jane.doe@EXAMPLE.com"}),
        )
        .await;
    assert_eq!(found.status(), StatusCode::OK);
    assert_eq!(
        found.json::<Value>().await.unwrap(),
        json!({"subjects": [{"subject_id": "cust-42"}]})
    );
    let missing = app
        .post_json(
            "/v1/lookup/subjects",
            Some(&compliance),
            &json!({"email": "nobody@example.com"}),
        )
        .await;
    assert_problem(missing, StatusCode::NOT_FOUND, "subject_not_found").await;

    // Removing the e-mail removes its blind index too.
    let removed = app
        .request(
            Method::PUT,
            "/v1/subjects/cust-42",
            Some(&collector),
            Some(&json!({"identifiers": {"email": null}})),
        )
        .await;
    assert_eq!(removed.status(), StatusCode::OK);
    // Both of its indexes; the index of the subject id's SHA-256 stays with the subject.
    assert_eq!(count_rows(&app, "subject_identifiers").await, 1);
}

#[tokio::test]
async fn bad_subject_input_is_422_and_stores_nothing() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let cases = [
        (json!({"traits": {"shoe_size": 42}}), "undeclared_field"),
        (
            json!({"traits": {"country": ["DE"]}}),
            "invalid_field_value",
        ),
        (
            json!({"identifiers": {"email": "jane-at-example"}}),
            "invalid_identifier",
        ),
        (
            json!({"identifiers": {"passport": "X123"}}),
            "unknown_identifier",
        ),
    ];
    for (body, code) in cases {
        let response = app
            .request(
                Method::PUT,
                "/v1/subjects/cust-9",
                Some(&collector),
                Some(&body),
            )
            .await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, code).await;
        assert!(!problem.to_string().contains("jane-at-example"));
        assert!(!problem.to_string().contains("X123"));
    }
    assert_eq!(count_rows(&app, "subjects").await, 0);
    let marketer = app.token_for("marketer").await;
    let forbidden = app
        .request(
            Method::PUT,
            "/v1/subjects/cust-9",
            Some(&marketer),
            Some(&json!({})),
        )
        .await;
    assert_problem(forbidden, StatusCode::FORBIDDEN, "action_not_permitted").await;
}

#[tokio::test]
async fn the_person_at_a_glance_shows_the_basis_in_effect_and_why_and_reveals_identifiers_only_on_demand(
) {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let support = app.token_for("support").await;
    let subject = "cust-glance-3391";
    let email = "glance.person@example.org";
    let put = app
        .request(
            Method::PUT,
            &format!("/v1/subjects/{subject}"),
            Some(&collector),
            Some(&json!({"identifiers": {"email": email}, "traits": {"country": "PT", "loyalty_tier": "silver"}})),
        )
        .await;
    assert_eq!(put.status(), StatusCode::CREATED);
    let grant = app
        .post_json(
            &format!("/v1/subjects/{subject}/consents"),
            Some(&collector),
            &json!({"purpose": "marketing.email", "status": "granted", "source": "web",
                    "method": "checkbox", "notice": {"id": "newsletter", "version": "3"}}),
        )
        .await;
    assert_eq!(grant.status(), StatusCode::CREATED);
    let occurred = chrono::Utc::now() - chrono::Duration::days(10);
    let response = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "order-1", "subject_id": subject, "type": "purchase", "channel": "web",
                    "occurred_at": occurred.to_rfc3339(),
                    "purposes": ["support", "legal_compliance", "marketing.email"],
                    "data": {"order_id": "ORD-GL-1"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let path = format!("/v1/subjects/{subject}");

    // Granted, and in effect, while nothing objects.
    let before: Value = app.get_json(&path, Some(&compliance)).await;
    let basis = |glance: &Value, purpose: &str| {
        glance["legal_basis"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["purpose"] == purpose)
            .cloned()
            .unwrap_or_else(|| panic!("{purpose} listed"))
    };
    let email_basis = basis(&before, "marketing.email");
    assert_eq!(email_basis["in_effect"], true, "{email_basis}");
    assert_eq!(email_basis["decided_by"], "marketing.email");
    assert_eq!(basis(&before, "marketing.sms")["reason"], "no_consent");
    assert_eq!(basis(&before, "support")["in_effect"], true);

    // An objection to `marketing` puts the `marketing.email` grant out of effect, and says why.
    let objection = app
        .post_json(
            &format!("/v1/subjects/{subject}/objections"),
            Some(&collector),
            &json!({"purpose": "marketing"}),
        )
        .await;
    assert_eq!(objection.status(), StatusCode::OK);
    let glance: Value = app.get_json(&path, Some(&compliance)).await;
    let email_basis = basis(&glance, "marketing.email");
    assert_eq!(email_basis["in_effect"], false, "{email_basis}");
    assert_eq!(email_basis["reason"], "objected");
    assert_eq!(email_basis["decided_by"], "marketing");
    assert!(email_basis["why"]
        .as_str()
        .unwrap()
        .contains("objected to `marketing`"));
    assert_eq!(basis(&glance, "support")["in_effect"], true);

    // Identifiers: which ones, not their values; traits; the timeline with retention.
    assert_eq!(glance["identifiers"], json!([{"kind": "email"}]));
    assert_eq!(glance["identifiers_revealed"], false);
    assert_eq!(
        glance["traits"],
        json!({"country": "PT", "loyalty_tier": "silver"})
    );
    assert!(
        !glance.to_string().contains(email),
        "no address unless revealed"
    );
    let item = &glance["timeline"][0];
    assert_eq!(item["id"], "order-1");
    assert_eq!(item["fields"], json!(["order_id"]));
    let held: Vec<(String, bool)> = item["held_for"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["purpose"].as_str().unwrap().to_owned(),
                h["legal_hold"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        held,
        [
            ("legal_compliance".to_owned(), true),
            ("marketing.email".to_owned(), false),
            ("support".to_owned(), false)
        ]
    );
    let until: chrono::DateTime<chrono::Utc> = item["held_for"][0]["until"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (until - (occurred + chrono::Duration::days(3650)))
            .num_seconds()
            .abs()
            <= 1
    );

    // Revealed on demand, and audited as such.
    let revealed: Value = app
        .get_json(&format!("{path}?reveal=identifiers"), Some(&compliance))
        .await;
    assert_eq!(
        revealed["identifiers"],
        json!([{"kind": "email", "value": email}])
    );
    let audit: Value = app
        .get_json("/v1/audit?action=subjects.reveal", Some(&compliance))
        .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit["entries"][0]["categories"], json!(["identifiers"]));
    let views: Value = app
        .get_json("/v1/audit?action=subjects.view", Some(&compliance))
        .await;
    assert_eq!(views["entries"].as_array().unwrap().len(), 3, "{views}");

    assert_problem(
        app.get(&format!("{path}?reveal=everything"), Some(&compliance))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get(&path, Some(&support)).await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    assert_problem(
        app.get("/v1/subjects/nobody-here", Some(&compliance)).await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;
}
