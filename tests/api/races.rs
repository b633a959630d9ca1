//! The same new person from several clients at once (retries, parallel tags): concurrent
//! writers for one person are ordered, never failed — no 5xx, no 409 — and every write is
//! stored once.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{count_rows, spawn_app};

/// How many new people each round is about, and how many requests each client has in flight.
const PEOPLE: usize = 400;
const IN_FLIGHT: usize = 32;

#[tokio::test]
async fn two_clients_sending_the_same_new_people_at_once_both_succeed() {
    let app = spawn_app().await;
    let token = app.token_for("collector").await;
    let client = |kind: &'static str| {
        let (app, token) = (&app, token.clone());
        async move {
            let sends = (0..PEOPLE).map(|n| {
                let token = token.clone();
                async move {
                    let subject = format!("race-{n:03}");
                    let response = if kind == "consent" {
                        app.post_json(
                            &format!("/v1/subjects/{subject}/consents"),
                            Some(&token),
                            &json!({"id": format!("c-{n}"), "purpose": "marketing",
                                    "status": "granted", "source": "web", "method": "banner",
                                    "notice": {"id": "newsletter", "version": "3"}}),
                        )
                        .await
                    } else {
                        app.post_json(
                            "/v1/interactions",
                            Some(&token),
                            &json!({"id": format!("i-{n}"), "subject_id": subject,
                                    "type": "page_view", "channel": "web",
                                    "occurred_at": "2026-11-01T10:00:00Z",
                                    "purposes": ["support"],
                                    "data": {"message": "hello"}}),
                        )
                        .await
                    };
                    response.status()
                }
            });
            futures_util::stream::iter(sends)
                .buffer_unordered(IN_FLIGHT)
                .collect::<Vec<StatusCode>>()
                .await
        }
    };
    use futures_util::StreamExt;
    for kind in ["consent", "interaction"] {
        let (first, second) = tokio::join!(client(kind), client(kind));
        for status in first.iter().chain(&second) {
            assert!(
                *status == StatusCode::CREATED || *status == StatusCode::OK,
                "{kind}: {status} in {first:?} / {second:?}"
            );
        }
        // Each write once: one of the two was stored (201), the other found it (200).
        let created = first
            .iter()
            .chain(&second)
            .filter(|status| **status == StatusCode::CREATED)
            .count();
        assert_eq!(created, PEOPLE, "{kind}");
    }
    assert_eq!(count_rows(&app, "subjects").await, PEOPLE as i64);
    assert_eq!(count_rows(&app, "consent_records").await, PEOPLE as i64);
    assert_eq!(count_rows(&app, "interactions").await, PEOPLE as i64);
}
