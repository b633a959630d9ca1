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
