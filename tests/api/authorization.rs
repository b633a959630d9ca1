//! Deny by default: every protected route in the route table refuses callers without a token
//! (401) and callers whose role lacks the route's action (403), and admits the others.

use custodia::http::{endpoints, Access};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};

const SAMPLE_ROLES: [&str; 5] = ["admin", "compliance", "marketer", "collector", "support"];

/// The pattern with every `{parameter}` replaced by a plausible value.
fn concrete_path(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                "0123456789abcdef"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn method_of(method: &actix_web::http::Method) -> Method {
    Method::from_bytes(method.as_str().as_bytes()).unwrap()
}

#[tokio::test]
async fn every_protected_route_needs_a_token() {
    let app = spawn_app().await;
    let protected: Vec<_> = endpoints()
        .iter()
        .filter(|endpoint| matches!(endpoint.access, Access::Requires(_)))
        .collect();
    assert!(!protected.is_empty());

    for endpoint in protected {
        let response = app
            .request(
                method_of(&endpoint.method),
                &concrete_path(endpoint.path),
                None,
                Some(&json!({})),
            )
            .await;
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{} {} without a token",
            endpoint.method,
            endpoint.path
        );
    }
}

#[tokio::test]
async fn each_sample_role_reaches_exactly_the_routes_its_actions_allow() {
    let app = spawn_app().await;
    let policy = custodia::policy::load_dir(&app.settings.policy_dir).unwrap();

    for role in SAMPLE_ROLES {
        let token = app.token_for(role).await;
        for endpoint in endpoints() {
            let Access::Requires(actions) = endpoint.access else {
                continue;
            };
            let allowed = actions
                .iter()
                .any(|action| policy.authorize_action(role, *action).is_ok());
            let response = app
                .request(
                    method_of(&endpoint.method),
                    &concrete_path(endpoint.path),
                    Some(&token),
                    Some(&json!({})),
                )
                .await;
            let what = format!("{role} → {} {}", endpoint.method, endpoint.path);
            if allowed {
                assert!(
                    response.status() != StatusCode::UNAUTHORIZED
                        && response.status() != StatusCode::FORBIDDEN,
                    "{what} should be admitted, got {}",
                    response.status()
                );
            } else if endpoint.path.starts_with("/opendsr/") {
                // OpenDSR routes answer errors in the specification's shape (docs/opendsr.md).
                assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
                let body: serde_json::Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], 403, "{what}");
                assert_eq!(body["error"]["errors"][0]["reason"], "action_not_permitted");
                for action in actions {
                    assert!(
                        body["error"]["message"]
                            .as_str()
                            .unwrap()
                            .contains(action.as_str()),
                        "{what}: the denial names the action"
                    );
                }
            } else {
                let body =
                    assert_problem(response, StatusCode::FORBIDDEN, "action_not_permitted").await;
                for action in actions {
                    assert!(
                        body["detail"].as_str().unwrap().contains(action.as_str()),
                        "{what}: the denial names the action"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn a_marketer_cannot_manage_keys_and_nothing_is_created() {
    let app = spawn_app().await;
    let marketer = app.token_for("marketer").await;
    let before = crate::helpers::stored_key_count(&app).await;

    let response = app
        .post_json(
            "/v1/keys",
            Some(&marketer),
            &json!({ "name": "escalation", "role": "admin" }),
        )
        .await;

    assert_problem(response, StatusCode::FORBIDDEN, "action_not_permitted").await;
    assert_eq!(crate::helpers::stored_key_count(&app).await, before);
}
