//! The consent ledger through the API: grants and withdrawals along the purpose hierarchy,
//! objections, GPC on both kinds of call, receipts, idempotency, and their effect on
//! collection and reads.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, contains_in_any_encoding, database_dump, policy_with_extra_roles,
    spawn_app_with, TestApp,
};

const READERS: &str = r#"
[[role]]
id = "marketing_reader"
actions = ["interactions.read"]
purposes = ["marketing"]
"#;

async fn spawn() -> (TestApp, tempfile::TempDir) {
    let policies = policy_with_extra_roles(READERS);
    let path = policies.path().to_owned();
    (
        spawn_app_with(|options| options.policy_dir = Some(path)).await,
        policies,
    )
}

async fn state(app: &TestApp, token: &str, subject: &str, purpose: &str, status: &str) -> Value {
    let mut body =
        json!({"purpose": purpose, "status": status, "source": "web", "method": "checkbox"});
    if status == "granted" {
        body["notice"] = json!({"id": "newsletter", "version": "3"});
    }
    let response = app
        .post_json(
            &format!("/v1/subjects/{subject}/consents"),
            Some(token),
            &body,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

/// The purposes an interaction tagged with all of `purposes` is accepted for right now.
async fn accepted(app: &TestApp, token: &str, subject: &str, purposes: &[&str]) -> Vec<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let response = app
        .post_json(
            "/v1/interactions",
            Some(token),
            &json!({"id": id, "subject_id": subject, "type": "visit", "channel": "web",
                    "occurred_at": "2026-11-01T10:00:00Z", "purposes": purposes, "data": {}}),
        )
        .await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        assert_eq!(body["code"], "no_legal_basis");
        return Vec::new();
    }
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut list: Vec<String> = body["purposes_accepted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    list.sort();
    list
}

const MARKETING: [&str; 3] = ["marketing", "marketing.email", "marketing.sms"];

/// A subject, the statements recorded for it in order, and the marketing purposes accepted then.
type HierarchyCase = (
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<&'static str>,
);

#[tokio::test]
async fn the_latest_statement_on_a_purpose_or_an_ancestor_decides() {
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    let cases: Vec<HierarchyCase> = vec![
        ("nobody-said-anything", vec![], vec![]),
        (
            "parent-granted",
            vec![("marketing", "granted")],
            vec!["marketing", "marketing.email", "marketing.sms"],
        ),
        (
            "grant-parent-withdraw-child",
            vec![("marketing", "granted"), ("marketing.email", "withdrawn")],
            vec!["marketing", "marketing.sms"],
        ),
        (
            "withdraw-parent-grant-child",
            vec![("marketing", "withdrawn"), ("marketing.email", "granted")],
            vec!["marketing.email"],
        ),
        (
            "later-parent-grant-overrides-child-withdrawal",
            vec![("marketing.email", "withdrawn"), ("marketing", "granted")],
            vec!["marketing", "marketing.email", "marketing.sms"],
        ),
        (
            "child-grant-only",
            vec![("marketing.sms", "granted")],
            vec!["marketing.sms"],
        ),
        (
            "granted-then-withdrawn",
            vec![("marketing", "granted"), ("marketing", "withdrawn")],
            vec![],
        ),
    ];
    for (subject, statements, expected) in cases {
        for (purpose, status) in statements {
            state(&app, &collector, subject, purpose, status).await;
        }
        assert_eq!(
            accepted(&app, &collector, subject, &MARKETING).await,
            expected,
            "{subject}"
        );
    }
}

#[tokio::test]
async fn withdrawal_takes_effect_on_the_next_request_for_collection_and_reads() {
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    let reader = app.token_for("marketing_reader").await;
    state(&app, &collector, "cust-w", "marketing", "granted").await;
    assert_eq!(
        accepted(&app, &collector, "cust-w", &["marketing.email"]).await,
        ["marketing.email"]
    );
    let read = app
        .get(
            "/v1/subjects/cust-w/interactions?purpose=marketing.email",
            Some(&reader),
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(
        read.json::<Value>().await.unwrap()["interactions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    state(&app, &collector, "cust-w", "marketing", "withdrawn").await;

    assert!(accepted(&app, &collector, "cust-w", &["marketing.email"])
        .await
        .is_empty());
    let refused = app
        .get(
            "/v1/subjects/cust-w/interactions?purpose=marketing.email",
            Some(&reader),
        )
        .await;
    assert_problem(refused, StatusCode::FORBIDDEN, "consent_withdrawn").await;
}

#[tokio::test]
async fn an_objection_to_marketing_is_absolute_until_lifted() {
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    state(&app, &collector, "cust-o", "marketing", "granted").await;
    let object = |status: &'static str| json!({"purpose": "marketing", "status": status});

    let objected = app
        .post_json(
            "/v1/subjects/cust-o/objections",
            Some(&collector),
            &object("objected"),
        )
        .await;
    assert_eq!(objected.json::<Value>().await.unwrap()["changed"], true);
    assert!(accepted(&app, &collector, "cust-o", &MARKETING)
        .await
        .is_empty());
    state(&app, &collector, "cust-o", "marketing.email", "granted").await;
    assert!(
        accepted(&app, &collector, "cust-o", &MARKETING)
            .await
            .is_empty(),
        "a later grant does not beat an objection"
    );

    let lifted = app
        .post_json(
            "/v1/subjects/cust-o/objections",
            Some(&collector),
            &object("lifted"),
        )
        .await;
    assert_eq!(lifted.json::<Value>().await.unwrap()["status"], "lifted");
    assert_eq!(
        accepted(&app, &collector, "cust-o", &MARKETING).await,
        MARKETING
    );

    // Objecting to a legitimate-interest purpose removes its basis too.
    app.post_json(
        "/v1/subjects/cust-o/objections",
        Some(&collector),
        &json!({"purpose": "analytics"}),
    )
    .await;
    assert_eq!(
        accepted(&app, &collector, "cust-o", &["analytics", "support"]).await,
        ["support"]
    );
}

#[tokio::test]
async fn gpc_on_a_consent_call_opts_out_first_then_records_the_explicit_choice() {
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    let response = app
        .client
        .post(format!("{}/v1/subjects/cust-g/consents", app.address))
        .bearer_auth(&collector)
        .header("Sec-GPC", "1")
        .json(
            &json!({"purpose": "marketing.email", "status": "granted", "source": "web",
                      "method": "checkbox", "notice": {"id": "newsletter", "version": "3"}}),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let mut applied: Vec<&str> = body["gpc_applied"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    applied.sort();
    assert_eq!(
        applied,
        [
            "analytics",
            "marketing",
            "marketing.email",
            "marketing.personalization",
            "marketing.sms"
        ]
    );
    assert_eq!(
        accepted(
            &app,
            &collector,
            "cust-g",
            &[
                "marketing",
                "marketing.email",
                "marketing.sms",
                "analytics",
                "support"
            ]
        )
        .await,
        ["marketing.email", "support"]
    );
    // The history is for subjects.export.
    let compliance = app.token_for("compliance").await;
    let ledger: Value = app
        .get_json("/v1/subjects/cust-g/consents", Some(&compliance))
        .await;
    let methods: Vec<&str> = ledger["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["gpc", "gpc", "gpc", "gpc", "checkbox"]);
    assert_eq!(ledger["objections"][0]["purpose"], "analytics");
}

#[tokio::test]
async fn gpc_on_an_interaction_call_opts_the_subject_out_before_collection() {
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    state(&app, &collector, "cust-i", "marketing", "granted").await;

    let response = app
        .client
        .post(format!("{}/v1/interactions", app.address))
        .bearer_auth(&collector)
        .header("Sec-GPC", "1")
        .json(
            &json!({"id": "g1", "subject_id": "cust-i", "type": "visit", "channel": "web",
                      "occurred_at": "2026-11-01T10:00:00Z",
                      "purposes": ["marketing", "analytics", "support"], "data": {}}),
        )
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["purposes_accepted"], json!(["support"]));
    let reasons: Vec<(&str, &str)> = body["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["purpose"].as_str().unwrap(),
                r["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [
            ("marketing", "consent_withdrawn"),
            ("analytics", "objected")
        ]
    );
    // The same signal again changes nothing: no new ledger entries.
    let compliance = app.token_for("compliance").await;
    let before: Value = app
        .get_json("/v1/subjects/cust-i/consents", Some(&compliance))
        .await;
    // The withdrawal says what it stands for: method `gpc`, and the signal as its evidence.
    let withdrawal = before["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|statement| statement["method"] == "gpc")
        .expect("a GPC withdrawal");
    assert_eq!(withdrawal["source"], "gpc");
    assert_eq!(withdrawal["evidence"], json!({"signal": "Sec-GPC: 1"}));
    accepted(&app, &collector, "cust-i", &["support"]).await;
    let again = app
        .client
        .post(format!("{}/v1/interactions", app.address))
        .bearer_auth(&collector)
        .header("Sec-GPC", "1")
        .json(
            &json!({"id": "g2", "subject_id": "cust-i", "type": "visit", "channel": "web",
                      "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["support"], "data": {}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::CREATED);
    let after: Value = app
        .get_json("/v1/subjects/cust-i/consents", Some(&compliance))
        .await;
    assert_eq!(
        before["history"].as_array().unwrap().len(),
        after["history"].as_array().unwrap().len()
    );
}

#[tokio::test]
async fn a_receipt_verifies_with_the_published_key() {
    use base64::Engine;
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    let recorded = state(&app, &collector, "cust-r", "marketing.email", "granted").await;
    let receipt = recorded["receipt"].as_str().unwrap();

    let jwks: Value = app.get_json("/v1/consents/receipt-key", None).await;

    let key = &jwks["keys"][0];
    assert_eq!(
        (
            key["kty"].as_str(),
            key["crv"].as_str(),
            key["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let public = b64.decode(key["x"].as_str().unwrap()).unwrap();
    let parts: Vec<&str> = receipt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], key["kid"]);
    let signed = format!("{}.{}", parts[0], parts[1]);
    let signature = b64.decode(parts[2]).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
        .verify(signed.as_bytes(), &signature)
        .expect("the receipt verifies");
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["sub"], "cust-r");
    assert_eq!(
        (claims["purpose"].as_str(), claims["status"].as_str()),
        (Some("marketing.email"), Some("granted"))
    );
    // The receipt names the exact text shown.
    assert_eq!(
        claims["notice"],
        json!({"id": "newsletter", "version": "3", "language": "en",
               "sha256": "5b11ab05604ffabf38ef6a4bcdc12d742156a197a05631c7534cada6035b4972"})
    );
    let mut forged = signed.into_bytes();
    forged[10] ^= 1;
    assert!(
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
            .verify(&forged, &signature)
            .is_err()
    );
}

#[tokio::test]
async fn statements_are_idempotent_append_only_and_their_evidence_is_encrypted() {
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let body = json!({"id": "stmt-1", "purpose": "marketing", "status": "granted", "source": "web",
                      "method": "checkbox", "notice": {"id": "newsletter", "version": "3"},
                      "evidence": {"ip_address": "203.0.113.77", "user_agent": "CanaryBrowser/9.1"}});

    let first = app
        .post_json("/v1/subjects/cust-e/consents", Some(&collector), &body)
        .await;
    let second = app
        .post_json("/v1/subjects/cust-e/consents", Some(&collector), &body)
        .await;

    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(second.status(), StatusCode::OK);
    let second: Value = second.json().await.unwrap();
    assert_eq!(
        (second["duplicate"].as_bool(), second["id"].as_str()),
        (Some(true), Some("stmt-1"))
    );
    state(&app, &collector, "cust-e", "marketing", "withdrawn").await;
    let ledger: Value = app
        .get_json("/v1/subjects/cust-e/consents", Some(&compliance))
        .await;
    let history = ledger["history"].as_array().unwrap();
    assert_eq!(
        history.len(),
        2,
        "the duplicate added nothing; the withdrawal did not replace the grant"
    );
    assert_eq!(history[0]["id"], "stmt-1");
    assert_eq!(history[0]["evidence"]["ip_address"], "203.0.113.77");
    assert_eq!(history[1]["status"], "withdrawn");
    assert_eq!(ledger["current"].as_array().unwrap().len(), 1);
    assert_eq!(ledger["current"][0]["status"], "withdrawn");
    let dump = database_dump(&app).await;
    assert!(!contains_in_any_encoding(&dump, "203.0.113.77"));
    assert!(!contains_in_any_encoding(&dump, "CanaryBrowser/9.1"));
    assert!(!contains_in_any_encoding(&dump, "stmt-1"));
}

#[tokio::test]
async fn bad_statements_are_422_and_the_ledger_is_read_only_for_the_right_roles() {
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    let marketer = app.token_for("marketer").await;
    let cases = [
        (
            json!({"purpose": "support", "status": "granted", "source": "web", "method": "checkbox", "notice": {"id": "newsletter", "version": "3"}}),
            "not_consent_based",
        ),
        (
            json!({"purpose": "marketing", "status": "granted", "source": "web", "method": "checkbox"}),
            "invalid_consent",
        ),
        (
            json!({"purpose": "marketing", "status": "maybe", "source": "web", "method": "checkbox"}),
            "invalid_consent",
        ),
        (
            json!({"purpose": "telepathy", "status": "granted", "source": "web", "method": "checkbox"}),
            "unknown_purpose",
        ),
    ];
    for (body, code) in cases {
        let response = app
            .post_json("/v1/subjects/cust-b/consents", Some(&collector), &body)
            .await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    assert_problem(
        app.get("/v1/subjects/cust-b/consents", Some(&collector))
            .await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;
    assert_problem(
        app.get("/v1/subjects/cust-b/consents", Some(&marketer))
            .await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    let bad_objection = app
        .request(
            Method::POST,
            "/v1/subjects/cust-b/objections",
            Some(&collector),
            Some(&json!({"purpose": "marketing", "status": "maybe"})),
        )
        .await;
    assert_problem(
        bad_objection,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_objection",
    )
    .await;
}

#[tokio::test]
async fn a_restricted_person_gets_no_new_processing_and_no_reads() {
    use custodia::store::schema::{restrictions, subjects};
    use diesel::prelude::*;
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    let support = app.token_for("support").await;
    state(&app, &collector, "cust-x", "marketing", "granted").await;
    assert_eq!(
        accepted(&app, &collector, "cust-x", &["support", "marketing"]).await,
        ["marketing", "support"]
    );
    // Restriction is set by the data-subject-rights endpoints; here it is written directly.
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().unwrap();
        let pk: String = subjects::table
            .select(subjects::id)
            .first(&mut *conn)
            .unwrap();
        diesel::insert_into(restrictions::table)
            .values((
                restrictions::subject_pk.eq(pk),
                restrictions::since.eq(chrono::Utc::now().naive_utc()),
                restrictions::recorded_by.eq("test"),
            ))
            .execute(&mut *conn)
            .unwrap();
    })
    .await
    .unwrap();

    assert!(accepted(
        &app,
        &collector,
        "cust-x",
        &["support", "marketing", "legal_compliance"]
    )
    .await
    .is_empty());
    let read = app
        .get(
            "/v1/subjects/cust-x/interactions?purpose=support",
            Some(&support),
        )
        .await;
    assert_problem(read, StatusCode::FORBIDDEN, "restricted").await;
    let ledger: Value = app
        .get_json("/v1/subjects/cust-x/consents", Some(&collector))
        .await;
    assert_eq!(ledger["restricted"], true);
}

#[tokio::test]
async fn a_restriction_blocks_reads_and_collection_until_lifted() {
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    let support = app.token_for("support").await;
    let compliance = app.token_for("compliance").await;
    let interaction = |id: &str| {
        json!({"id": id, "subject_id": "cust-r", "type": "visit", "channel": "web",
               "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["support"],
               "data": {"message": "hi"}})
    };
    let read = "/v1/subjects/cust-r/interactions?purpose=support";
    let stored = app
        .post_json("/v1/interactions", Some(&collector), &interaction("a"))
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    assert_eq!(app.get(read, Some(&support)).await.status(), StatusCode::OK);

    assert_problem(
        app.post_json(
            "/v1/subjects/cust-r/restriction",
            Some(&collector),
            &json!({}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    assert_problem(
        app.post_json(
            "/v1/subjects/cust-nobody/restriction",
            Some(&compliance),
            &json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;
    let restricted = app
        .post_json(
            "/v1/subjects/cust-r/restriction",
            Some(&compliance),
            &json!({}),
        )
        .await;
    assert_eq!(restricted.status(), StatusCode::OK);
    let body: Value = restricted.json().await.unwrap();
    assert_eq!(body, json!({"restricted": true, "changed": true}));
    let again: Value = app
        .post_json(
            "/v1/subjects/cust-r/restriction",
            Some(&compliance),
            &json!({}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again, json!({"restricted": true, "changed": false}));

    assert_problem(
        app.get(read, Some(&support)).await,
        StatusCode::FORBIDDEN,
        "restricted",
    )
    .await;
    let refused = assert_problem(
        app.post_json("/v1/interactions", Some(&collector), &interaction("b"))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_legal_basis",
    )
    .await;
    assert!(refused["detail"].as_str().unwrap().contains("restricted"));
    let state: Value = app
        .get_json("/v1/subjects/cust-r/consents", Some(&compliance))
        .await;
    assert_eq!(state["restricted"], true);

    let lifted = app
        .delete("/v1/subjects/cust-r/restriction", Some(&compliance))
        .await;
    assert_eq!(lifted.status(), StatusCode::OK);
    let body: Value = lifted.json().await.unwrap();
    assert_eq!(body, json!({"restricted": false, "changed": true}));
    let page: Value = app.get_json(read, Some(&support)).await;
    assert_eq!(page["interactions"].as_array().unwrap().len(), 1);

    let log: Value = app
        .get_json("/v1/audit?subject_id=cust-r", Some(&compliance))
        .await;
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"subjects.restrict"), "{log}");
    assert!(actions.contains(&"subjects.restriction_lift"), "{log}");
}

/// Apps limited to some purposes: a support desk, and a newsletter tool.
const LIMITED: &str = r#"
[[role]]
id = "support_desk"
actions = ["consents.write"]
purposes = ["support"]

[[role]]
id = "newsletter_app"
actions = ["consents.write"]
purposes = ["marketing.email"]
"#;

#[tokio::test]
async fn consent_writes_and_reads_stay_within_the_roles_purposes() {
    let policies = policy_with_extra_roles(LIMITED);
    let dir = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(dir)).await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let desk = app.token_for("support_desk").await;
    let newsletter = app.token_for("newsletter_app").await;
    state(&app, &collector, "cust-l", "marketing", "granted").await;
    state(&app, &collector, "cust-l", "marketing.sms", "withdrawn").await;
    state(&app, &newsletter, "cust-l", "marketing.email", "granted").await;
    let objected = app
        .post_json(
            "/v1/subjects/cust-l/objections",
            Some(&collector),
            &json!({"purpose": "analytics"}),
        )
        .await;
    assert_eq!(objected.status(), StatusCode::OK);
    let before = crate::helpers::count_rows(&app, "consent_records").await;

    // A role limited to `support` may not record a marketing grant, nor an objection, nor
    // withdraw for someone else's purpose.
    let grant = json!({"purpose": "marketing", "status": "granted", "source": "web",
                       "method": "checkbox", "notice": {"id": "newsletter", "version": "3"}});
    assert_problem(
        app.post_json("/v1/subjects/cust-l/consents", Some(&desk), &grant)
            .await,
        StatusCode::FORBIDDEN,
        "purpose_not_permitted",
    )
    .await;
    let withdraw = json!({"purpose": "marketing.sms", "status": "withdrawn", "source": "web",
                          "method": "checkbox"});
    assert_problem(
        app.post_json("/v1/subjects/cust-l/consents", Some(&newsletter), &withdraw)
            .await,
        StatusCode::FORBIDDEN,
        "purpose_not_permitted",
    )
    .await;
    assert_problem(
        app.post_json(
            "/v1/subjects/cust-l/objections",
            Some(&desk),
            &json!({"purpose": "marketing"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "purpose_not_permitted",
    )
    .await;
    assert_eq!(
        crate::helpers::count_rows(&app, "consent_records").await,
        before,
        "nothing recorded"
    );
    // Audited as denials with the purpose and the person.
    let denied: Value = app
        .get_json(
            "/v1/audit?decision=deny&subject_id=cust-l",
            Some(&compliance),
        )
        .await;
    let denied = denied["entries"].as_array().unwrap();
    assert_eq!(denied.len(), 3, "{denied:?}");
    let purposes: Vec<&Value> = denied.iter().map(|entry| &entry["purposes"]).collect();
    assert!(purposes.contains(&&json!(["marketing"])));
    assert!(purposes.contains(&&json!(["marketing.sms"])));
    assert!(denied
        .iter()
        .all(|entry| entry["reason"] == "purpose_not_permitted"));

    // consents.write reads only the current state of what bears on its purposes, no history,
    // no evidence.
    let limited = app
        .get("/v1/subjects/cust-l/consents", Some(&newsletter))
        .await
        .text()
        .await
        .unwrap();
    let limited: Value = serde_json::from_str(&limited).unwrap();
    assert_eq!(limited["scope"], "purposes");
    assert!(limited.get("history").is_none(), "{limited}");
    let current: Vec<&str> = limited["current"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(current, ["marketing", "marketing.email"]);
    assert_eq!(limited["objections"], json!([]));
    let desk_view: Value = app
        .get_json("/v1/subjects/cust-l/consents", Some(&desk))
        .await;
    assert_eq!(desk_view["current"], json!([]));
    // subjects.export reads everything, with evidence.
    let full: Value = app
        .get_json("/v1/subjects/cust-l/consents", Some(&compliance))
        .await;
    assert_eq!(full["scope"], "full");
    assert_eq!(full["history"].as_array().unwrap().len(), 3);
    assert_eq!(full["current"].as_array().unwrap().len(), 3);
    assert_eq!(full["objections"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_statement_names_a_declared_notice_and_closed_vocabularies() {
    let (app, _policies) = spawn().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let statement = |notice: Value, source: &str, method: &str| {
        json!({"purpose": "marketing.email", "status": "granted", "source": source,
               "method": method, "notice": notice})
    };
    let cases = [
        (
            statement(
                json!({"id": "newsletter", "version": "99"}),
                "web",
                "checkbox",
            ),
            "undeclared_notice",
        ),
        (
            statement(
                json!({"id": "newsletter", "version": "3", "language": "fr"}),
                "web",
                "checkbox",
            ),
            "undeclared_notice",
        ),
        (
            statement(json!({"id": "privacy", "version": "4"}), "web", "checkbox"),
            "notice_language_required",
        ),
        (
            // Version 2 asked for e-mail only; this statement is about SMS.
            json!({"purpose": "marketing.sms", "status": "granted", "source": "web",
                   "method": "checkbox", "notice": {"id": "newsletter", "version": "2"}}),
            "notice_not_for_purpose",
        ),
        (
            statement(
                json!({"id": "newsletter", "version": "3"}),
                "Jane Canary's iPhone",
                "checkbox",
            ),
            "invalid_consent",
        ),
        (
            statement(
                json!({"id": "newsletter", "version": "3"}),
                "web",
                "told Canary at the desk",
            ),
            "invalid_consent",
        ),
        (
            // `gpc` statements are Custodia's own (the Sec-GPC header), not an app's.
            statement(json!({"id": "newsletter", "version": "3"}), "web", "gpc"),
            "invalid_consent",
        ),
    ];
    for (body, code) in cases {
        let problem = assert_problem(
            app.post_json("/v1/subjects/cust-n/consents", Some(&collector), &body)
                .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
        assert!(!problem.to_string().contains("Canary"), "{problem}");
    }
    assert_eq!(crate::helpers::count_rows(&app, "consent_records").await, 0);
    assert!(!contains_in_any_encoding(
        &database_dump(&app).await,
        "Canary"
    ));

    // The German text of `privacy` 4: the statement keeps its hash.
    let response = app
        .post_json(
            "/v1/subjects/cust-n/consents",
            Some(&collector),
            &statement(
                json!({"id": "privacy", "version": "4", "language": "de"}),
                "app",
                "toggle",
            ),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let recorded: Value = response.json().await.unwrap();
    let german = "7a3960284729326bac227961ac27624fb97e0410c09910000871e88208b0f444";
    assert_eq!(
        recorded["notice"],
        json!({"id": "privacy", "version": "4", "language": "de", "sha256": german})
    );
    // The hash is the SHA-256 of the text the policy points at.
    let text =
        std::fs::read(crate::helpers::sample_policy_dir().join("notice-texts/privacy-4-de.txt"))
            .unwrap();
    assert_eq!(
        hex::encode(ring::digest::digest(&ring::digest::SHA256, &text)),
        german
    );
    // The ledger and the export show it.
    let ledger: Value = app
        .get_json("/v1/subjects/cust-n/consents", Some(&compliance))
        .await;
    assert_eq!(ledger["history"][0]["notice"]["sha256"], german);
    let export: Value = app
        .get_json("/v1/subjects/cust-n/export", Some(&compliance))
        .await;
    assert_eq!(export["consents"][0]["notice"]["text_sha256"], german);
    assert_eq!(
        export["consents"][0]["notice"]["url"],
        "https://shop.example.com/privacy/notices/privacy/4/de"
    );
    // The policy lists the declared notices.
    let admin = app.token_for("admin").await;
    let policy: Value = app.get_json("/v1/policy", Some(&admin)).await;
    assert_eq!(policy["notices"].as_array().unwrap().len(), 5);
}
