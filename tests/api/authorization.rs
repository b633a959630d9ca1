//! Deny by default, route by route: a matrix of who may call each route (a new route without an
//! entry fails); every protected route refuses no token, an expired token, a token signed with
//! another key, an `alg: none` token and a revoked key's token (401), refuses roles without its
//! action (403), and admits the others.

use custodia::http::{endpoints, Access};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_problem, claims_for, key_id_of, server_signing_key, sign, spawn_app};

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

/// Asserts a refusal of the token: 401 with `code`, as a problem or, on OpenDSR routes, in the
/// specification's shape.
async fn assert_refused(response: reqwest::Response, code: &str, what: &str) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
    let body: serde_json::Value = response.json().await.unwrap();
    let reason = body["code"]
        .as_str()
        .or(body["error"]["errors"][0]["reason"].as_str());
    assert_eq!(reason, Some(code), "{what}: {body}");
}

#[tokio::test]
async fn every_protected_route_refuses_every_unusable_token() {
    let app = spawn_app().await;
    let protected: Vec<_> = endpoints()
        .iter()
        .filter(|endpoint| endpoint.access.actions().is_some())
        .collect();
    assert!(!protected.is_empty());
    // The tokens: each is refused for one reason only. They are made for the role that may
    // call everything an admin may not, and the other way round is covered by the next test.
    let api_key = app.create_api_key("admin").await;
    let key_id = key_id_of(&api_key).to_owned();
    let now = chrono::Utc::now().timestamp();
    let server_key = server_signing_key(&app);
    let expired = sign(
        &claims_for(&key_id, "admin", now - 120, now - 60),
        &server_key,
    );
    let other_key = sign(&claims_for(&key_id, "admin", now, now + 60), &[7u8; 32]);
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let unsigned = {
        use base64::Engine;
        format!(
            "{}.{}.",
            b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
            b64.encode(claims_for(&key_id, "admin", now, now + 60).to_string())
        )
    };
    let revoked_key = app.create_api_key("admin").await;
    let revoked = app.token_for_key(&revoked_key).await;
    let admin = app.token_for_key(&api_key).await;
    let response = app
        .delete(
            &format!("/v1/keys/{}", key_id_of(&revoked_key)),
            Some(&admin),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cases: [(Option<&str>, &str, &str); 5] = [
        (None, "missing_token", "no token"),
        (Some(&expired), "token_expired", "an expired token"),
        (
            Some(&other_key),
            "invalid_token",
            "a token signed with another key",
        ),
        (Some(&unsigned), "invalid_token", "an alg:none token"),
        (Some(&revoked), "key_revoked", "a revoked key's token"),
    ];

    for endpoint in protected {
        for (token, code, case) in cases {
            let response = app
                .request(
                    method_of(&endpoint.method),
                    &concrete_path(endpoint.path),
                    token,
                    Some(&json!({})),
                )
                .await;
            let what = format!("{} {} with {case}", endpoint.method, endpoint.path);
            assert_refused(response, code, &what).await;
        }
    }
}

/// Every route in the table is in this matrix, with whom it admits: a route added without an
/// entry here fails until someone decides who may call it.
const MATRIX: &[(&str, &str, &[&str])] = &[
    ("GET", "/healthz", &["anyone"]),
    ("GET", "/readyz", &["anyone"]),
    ("GET", "/metrics", &["anyone"]),
    ("GET", "/openapi.json", &["anyone"]),
    ("GET", "/docs", &["anyone"]),
    ("GET", "/console", &["anyone"]),
    ("GET", "/console/", &["anyone"]),
    ("GET", "/console/{file}", &["anyone"]),
    ("POST", "/v1/auth/token", &["anyone"]),
    ("POST", "/v1/keys", &["admin"]),
    ("GET", "/v1/keys", &["admin"]),
    ("DELETE", "/v1/keys/{id}", &["admin"]),
    ("GET", "/v1/policy", &["admin", "compliance"]),
    ("GET", "/v1/ropa", &["admin", "compliance"]),
    ("PUT", "/v1/subjects/{subject_id}", &["collector"]),
    ("DELETE", "/v1/subjects/{subject_id}", &["compliance"]),
    ("GET", "/v1/subjects/{subject_id}", &["compliance"]),
    (
        "GET",
        "/v1/subjects/{subject_id}/erasure-preview",
        &["compliance"],
    ),
    ("GET", "/v1/erasures/{id}/held", &["support"]),
    (
        "DELETE",
        "/v1/subjects/{subject_id}/suppression",
        &["compliance"],
    ),
    ("GET", "/v1/subjects/{subject_id}/export", &["compliance"]),
    ("POST", "/v1/lookup/subjects", &["compliance"]),
    ("POST", "/v1/interactions", &["collector"]),
    ("POST", "/v1/subjects/{subject_id}/consents", &["collector"]),
    (
        "GET",
        "/v1/subjects/{subject_id}/consents",
        &["compliance", "collector"],
    ),
    (
        "POST",
        "/v1/subjects/{subject_id}/objections",
        &["collector"],
    ),
    ("GET", "/v1/consents/receipt-key", &["anyone"]),
    ("GET", "/.well-known/gpc.json", &["anyone"]),
    (
        "POST",
        "/v1/subjects/{subject_id}/restriction",
        &["compliance"],
    ),
    (
        "DELETE",
        "/v1/subjects/{subject_id}/restriction",
        &["compliance"],
    ),
    ("POST", "/v1/interactions/batch", &["collector"]),
    ("POST", "/v1/batch", &["collector"]),
    ("POST", "/v1/track", &["collector"]),
    ("POST", "/v1/page", &["collector"]),
    ("POST", "/v1/screen", &["collector"]),
    ("POST", "/v1/identify", &["collector"]),
    ("POST", "/v1/alias", &["collector"]),
    ("POST", "/v1/group", &["collector"]),
    (
        "GET",
        "/v1/subjects/{subject_id}/interactions",
        &["support"],
    ),
    ("POST", "/v1/requests", &["compliance"]),
    ("GET", "/v1/requests", &["compliance"]),
    ("GET", "/v1/requests/{id}", &["compliance"]),
    ("POST", "/v1/requests/{id}/verify", &["compliance"]),
    ("POST", "/v1/requests/{id}/extend", &["compliance"]),
    ("POST", "/v1/requests/{id}/execute", &["compliance"]),
    ("POST", "/v1/requests/{id}/reject", &["compliance"]),
    ("GET", "/v1/requests/{id}/export", &["compliance"]),
    ("GET", "/v1/requests/{id}/receipt", &["compliance"]),
    ("POST", "/v1/segments/preview", &["marketer"]),
    ("POST", "/v1/segments", &["marketer"]),
    ("GET", "/v1/segments", &["marketer"]),
    ("GET", "/v1/segments/{id}", &["marketer"]),
    ("GET", "/v1/segments/{id}/members", &["marketer"]),
    ("POST", "/v1/insights", &["marketer"]),
    ("GET", "/v1/insights/budget", &["marketer"]),
    ("GET", "/v1/reports/consents", &["compliance"]),
    ("GET", "/v1/audit", &["compliance"]),
    ("GET", "/v1/audit/verify", &["compliance"]),
    ("GET", "/v1/audit/checkpoint", &["compliance"]),
    ("GET", "/v1/audit/checkpoint-key", &["anyone"]),
    ("GET", "/opendsr/v2/discovery", &["anyone"]),
    ("GET", "/opendsr/v2/certificate", &["anyone"]),
    ("POST", "/opendsr/v2/requests", &["compliance"]),
    (
        "GET",
        "/opendsr/v2/requests/{subject_request_id}",
        &["compliance"],
    ),
    (
        "DELETE",
        "/opendsr/v2/requests/{subject_request_id}",
        &["compliance"],
    ),
];

#[tokio::test]
async fn the_route_table_matches_the_authorization_matrix() {
    let policy = custodia::policy::load_dir(&crate::helpers::sample_policy_dir()).unwrap();
    let mut listed: Vec<(String, String)> = MATRIX
        .iter()
        .map(|(method, path, _)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    for endpoint in endpoints() {
        let method = endpoint.method.as_str();
        let entry = MATRIX
            .iter()
            .find(|(m, p, _)| *m == method && *p == endpoint.path)
            .unwrap_or_else(|| {
                panic!(
                    "{method} {} has no entry in the authorization matrix: decide who may call it",
                    endpoint.path
                )
            });
        listed.retain(|(m, p)| !(m == method && p == endpoint.path));
        let admitted: Vec<&str> = match endpoint.access {
            Access::Public => vec!["anyone"],
            Access::Requires(actions) | Access::WriteKey(actions) => SAMPLE_ROLES
                .iter()
                .copied()
                .filter(|role| {
                    actions
                        .iter()
                        .any(|action| policy.authorize_action(role, *action).is_ok())
                })
                .collect(),
        };
        let mut expected = entry.2.to_vec();
        expected.sort_unstable();
        let mut admitted = admitted;
        admitted.sort_unstable();
        assert_eq!(admitted, expected, "{method} {}", endpoint.path);
    }
    assert!(
        listed.is_empty(),
        "matrix entries for routes that do not exist: {listed:?}"
    );
}

#[tokio::test]
async fn each_sample_role_reaches_exactly_the_routes_its_actions_allow() {
    let app = spawn_app().await;
    let policy = custodia::policy::load_dir(&app.settings.policy_dir).unwrap();

    for role in SAMPLE_ROLES {
        let token = app.token_for(role).await;
        for endpoint in endpoints() {
            let Some(actions) = endpoint.access.actions() else {
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
