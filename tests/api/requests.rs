//! Data-subject requests through the API: lifecycle, deadlines, execution of every type, and
//! what an erasure leaves of the requests that named the person.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, contains_in_any_encoding, count_rows, database_dump, spawn_app, TestApp,
};

async fn person(app: &TestApp, token: &str, subject: &str, email: &str) {
    let put = app
        .request(
            Method::PUT,
            &format!("/v1/subjects/{subject}"),
            Some(token),
            Some(&json!({"identifiers": {"email": email}, "traits": {"full_name": "Dee Ess"}})),
        )
        .await;
    assert!(put.status().is_success());
    let stored = app
        .post_json(
            "/v1/interactions",
            Some(token),
            &json!({"id": format!("{subject}-1"), "subject_id": subject, "type": "support_chat",
                    "channel": "chat", "occurred_at": "2026-11-01T10:00:00Z",
                    "purposes": ["support"], "data": {"message": "please help"}}),
        )
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
}

async fn file(app: &TestApp, token: &str, body: Value) -> Value {
    let response = app.post_json("/v1/requests", Some(token), &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json().await.unwrap()
}

async fn step(app: &TestApp, token: &str, id: &str, action: &str, body: Option<Value>) -> Value {
    let response = app
        .post_json(
            &format!("/v1/requests/{id}/{action}"),
            Some(token),
            &body.unwrap_or(json!({})),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{action}");
    response.json().await.unwrap()
}

async fn audit(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let body: Value = app
        .get_json(&format!("/v1/audit?{query}"), Some(token))
        .await;
    body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_access_request_goes_from_received_to_completed_with_every_step_audited() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    person(&app, &collector, "cust-dsr", "dee@example.org").await;

    let created = file(
        &app,
        &compliance,
        json!({"type": "access", "regulation": "gdpr", "subject_id": "cust-dsr"}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "received");
    assert_eq!(created["type"], "access");
    assert_eq!(created["subject"], json!({"subject_id": "cust-dsr"}));
    assert_eq!(created["overdue"], false);
    let received: chrono::DateTime<chrono::Utc> =
        created["received_at"].as_str().unwrap().parse().unwrap();
    let due: chrono::DateTime<chrono::Utc> = created["due_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        due.naive_utc(),
        received
            .naive_utc()
            .checked_add_months(chrono::Months::new(1))
            .unwrap()
    );
    assert!((28..=31).contains(&created["days_left"].as_i64().unwrap()));

    // Not before the identity is verified; only a role with requests.manage.
    assert_problem(
        app.post_json(
            &format!("/v1/requests/{id}/execute"),
            Some(&compliance),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "invalid_transition",
    )
    .await;
    assert_problem(
        app.post_json(
            &format!("/v1/requests/{id}/verify"),
            Some(&collector),
            &json!({}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    let verified = step(&app, &compliance, &id, "verify", None).await;
    assert_eq!(verified["status"], "verified");
    assert!(verified["verified_at"].is_string());
    assert_problem(
        app.post_json(
            &format!("/v1/requests/{id}/verify"),
            Some(&compliance),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "invalid_transition",
    )
    .await;
    let done = step(&app, &compliance, &id, "execute", None).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"]["subject_found"], true);
    assert_eq!(done["result"]["export"]["format"], "json");
    let url = done["result"]["export"]["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/v1/requests/{id}/export"));

    let export = app.get(&url, Some(&compliance)).await;
    assert_eq!(export.status(), StatusCode::OK);
    let bundle: Value = export.json().await.unwrap();
    assert_eq!(bundle["subject"]["subject_id"], "cust-dsr");
    assert_eq!(bundle["interactions"][0]["data"]["message"], "please help");
    let portable = app
        .get(&format!("{url}?format=csv"), Some(&compliance))
        .await;
    assert_eq!(portable.headers()["content-type"], "application/zip");

    // Closed: no more steps.
    assert_problem(
        app.post_json(
            &format!("/v1/requests/{id}/reject"),
            Some(&compliance),
            &json!({"reason": "too late"}),
        )
        .await,
        StatusCode::CONFLICT,
        "invalid_transition",
    )
    .await;

    // Every step is in the audit log, naming the person by pseudonym and the request as target.
    let entries = audit(&app, &compliance, "subject_id=cust-dsr").await;
    let for_request: Vec<&str> = entries
        .iter()
        .filter(|e| e["target"] == id.as_str())
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in [
        "requests.create",
        "requests.verify",
        "requests.execute",
        "requests.complete",
        "subjects.export",
    ] {
        assert!(for_request.contains(&action), "{action} in {for_request:?}");
    }
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains("cust-dsr") && !text.contains("dee@example.org"));

    let shown: Value = app
        .get_json(&format!("/v1/requests/{id}"), Some(&compliance))
        .await;
    assert_eq!(shown["status"], "completed");
    let completed: Value = app
        .get_json("/v1/requests?status=completed", Some(&compliance))
        .await;
    assert_eq!(completed["requests"][0]["id"], id.as_str());
    let verify: Value = app.get_json("/v1/audit/verify", Some(&compliance)).await;
    assert_eq!(verify["ok"], true);
}

#[tokio::test]
async fn deadlines_follow_the_regulation_through_month_ends_and_leap_years() {
    let app = spawn_app().await;
    let compliance = app.token_for("compliance").await;
    let cases = [
        // regulation, received, due, extended
        (
            "gdpr",
            "2024-01-31T09:15:00Z",
            "2024-02-29T09:15:00Z",
            "2024-04-30T09:15:00Z",
        ),
        (
            "gdpr",
            "2023-01-31T09:15:00Z",
            "2023-02-28T09:15:00Z",
            "2023-04-30T09:15:00Z",
        ),
        (
            "gdpr",
            "2023-11-30T23:59:00Z",
            "2023-12-30T23:59:00Z",
            "2024-02-29T23:59:00Z",
        ),
        (
            "ccpa",
            "2023-12-31T10:00:00Z",
            "2024-02-14T10:00:00Z",
            "2024-03-30T10:00:00Z",
        ),
        (
            "ccpa",
            "2024-01-20T10:00:00Z",
            "2024-03-05T10:00:00Z",
            "2024-04-19T10:00:00Z",
        ),
    ];
    let mut overdue_ids = Vec::new();
    for (regulation, received, due, extended) in cases {
        let created = file(
            &app,
            &compliance,
            json!({"type": "erasure", "regulation": regulation, "subject_id": "cust-late",
                   "received_at": received}),
        )
        .await;
        assert_eq!(created["due_at"], due, "{regulation} {received}");
        assert_eq!(created["overdue"], true);
        assert!(created["days_left"].as_i64().unwrap() < -200);
        let id = created["id"].as_str().unwrap().to_owned();
        assert_problem(
            app.post_json(
                &format!("/v1/requests/{id}/extend"),
                Some(&compliance),
                &json!({"reason": "  "}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_reason",
        )
        .await;
        let longer = step(
            &app,
            &compliance,
            &id,
            "extend",
            Some(json!({"reason": "complex request, many systems"})),
        )
        .await;
        assert_eq!(longer["due_at"], extended, "{regulation} {received}");
        assert_eq!(
            longer["extended"]["reason"],
            "complex request, many systems"
        );
        assert_problem(
            app.post_json(
                &format!("/v1/requests/{id}/extend"),
                Some(&compliance),
                &json!({"reason": "again"}),
            )
            .await,
            StatusCode::CONFLICT,
            "already_extended",
        )
        .await;
        overdue_ids.push(id);
    }
    let fresh = file(
        &app,
        &compliance,
        json!({"type": "access", "regulation": "ccpa", "email": "new@example.org"}),
    )
    .await;
    assert_eq!(fresh["overdue"], false);
    assert!((44..=45).contains(&fresh["days_left"].as_i64().unwrap()));

    let overdue: Value = app
        .get_json("/v1/requests?overdue=true", Some(&compliance))
        .await;
    let listed: Vec<&str> = overdue["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let mut expected = overdue_ids.clone();
    // Soonest deadline first.
    expected.sort_by_key(|id| {
        cases[overdue_ids.iter().position(|x| x == id).unwrap()]
            .3
            .to_owned()
    });
    assert_eq!(listed, expected);
    let on_time: Value = app
        .get_json("/v1/requests?overdue=false", Some(&compliance))
        .await;
    assert_eq!(on_time["requests"][0]["id"], fresh["id"]);
    assert_eq!(on_time["requests"].as_array().unwrap().len(), 1);

    // Paging: two at a time, in the same order, without repeats.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/requests?limit=2&cursor={c}"),
            None => "/v1/requests?limit=2".into(),
        };
        let page: Value = app.get_json(&path, Some(&compliance)).await;
        for r in page["requests"].as_array().unwrap() {
            paged.push(r["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut all = expected.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    all.push(fresh["id"].as_str().unwrap().to_owned());
    assert_eq!(paged, all);
}

#[tokio::test]
async fn an_erasure_request_erases_the_person_and_what_every_request_held_about_them() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    person(&app, &collector, "cust-gone", "gone@example.org").await;
    person(&app, &collector, "cust-stays", "stays@example.org").await;
    let access = file(
        &app,
        &compliance,
        json!({"type": "access", "regulation": "gdpr", "email": "gone@example.org"}),
    )
    .await;
    let rectify = file(
        &app,
        &compliance,
        json!({"type": "rectification", "regulation": "gdpr", "subject_id": "cust-gone",
               "changes": {"traits": {"full_name": "Corrected Name"}}}),
    )
    .await;
    let other = file(
        &app,
        &compliance,
        json!({"type": "access", "regulation": "gdpr", "subject_id": "cust-stays"}),
    )
    .await;
    let erasure = file(
        &app,
        &compliance,
        json!({"type": "erasure", "regulation": "ccpa", "subject_id": "cust-gone"}),
    )
    .await;
    let id = erasure["id"].as_str().unwrap();
    step(&app, &compliance, id, "verify", None).await;
    let done = step(&app, &compliance, id, "execute", None).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["subject"], Value::Null);
    assert_eq!(done["result"]["erased"]["interactions"], 1);
    assert_eq!(done["result"]["erased"]["request_identities"], 3);
    assert!(done["erasure_receipt"].as_str().unwrap().split('.').count() == 3);

    assert_problem(
        app.get("/v1/subjects/cust-gone/export", Some(&compliance))
            .await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;
    // The person's other open requests are completed by the erasure, and say so.
    let erasure_id = done["result"]["erasure_id"].as_str().unwrap();
    for request in [&access, &rectify] {
        let shown: Value = app
            .get(
                &format!("/v1/requests/{}", request["id"].as_str().unwrap()),
                Some(&compliance),
            )
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(shown["subject"], Value::Null);
        assert_eq!(shown["changes"], Value::Null);
        assert_eq!(shown["status"], "completed");
        assert_eq!(
            shown["result"],
            json!({"subject_found": false, "closed_by_erasure": erasure_id})
        );
        assert!(shown["completed_at"].is_string());
    }
    let completions = app
        .get_json("/v1/audit?action=requests.complete", Some(&compliance))
        .await;
    let targets: Vec<&str> = completions["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["target"].as_str().unwrap())
        .collect();
    for request in [&access, &rectify, &erasure] {
        assert!(
            targets.contains(&request["id"].as_str().unwrap()),
            "{targets:?}"
        );
    }
    // The executed request keeps its own result.
    let shown = app
        .get_json(&format!("/v1/requests/{id}"), Some(&compliance))
        .await;
    assert_eq!(shown["result"]["erased"]["interactions"], 1);
    let kept: Value = app
        .get(
            &format!("/v1/requests/{}", other["id"].as_str().unwrap()),
            Some(&compliance),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["subject"], json!({"subject_id": "cust-stays"}));

    // A closed request takes no further step.
    let access_id = access["id"].as_str().unwrap();
    let refused = app
        .post_json(
            &format!("/v1/requests/{access_id}/verify"),
            Some(&compliance),
            &json!({}),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);

    let dump = database_dump(&app).await;
    for gone in ["gone@example.org", "Corrected Name", "please help"] {
        assert!(
            !contains_in_any_encoding(&dump, gone),
            "{gone} still stored"
        );
    }
    let verify: Value = app.get_json("/v1/audit/verify", Some(&compliance)).await;
    assert_eq!(verify["ok"], true);
}

#[tokio::test]
async fn restriction_objection_and_rectification_requests_take_effect() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    person(&app, &collector, "cust-r", "r@example.org").await;
    let run = |body: Value| {
        let (app, compliance) = (&app, &compliance);
        async move {
            let created = file(app, compliance, body).await;
            let id = created["id"].as_str().unwrap().to_owned();
            step(app, compliance, &id, "verify", None).await;
            step(app, compliance, &id, "execute", None).await
        }
    };
    let restricted = run(json!({"type": "restriction", "regulation": "gdpr",
                                "subject_id": "cust-r"}))
    .await;
    assert_eq!(restricted["result"]["changed"], true);
    let objected = run(json!({"type": "objection", "regulation": "gdpr",
                              "email": "r@example.org", "purposes": ["analytics", "marketing"]}))
    .await;
    assert_eq!(
        objected["result"]["objected"],
        json!(["analytics", "marketing"])
    );
    let state: Value = app
        .get_json("/v1/subjects/cust-r/consents", Some(&compliance))
        .await;
    assert_eq!(state["restricted"], true);
    let objections: Vec<&str> = state["objections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(objections, ["analytics", "marketing"]);

    let rectified = run(json!({"type": "rectification", "regulation": "gdpr",
                               "subject_id": "cust-r",
                               "changes": {"identifiers": {"email": "r.new@example.org"},
                                           "traits": {"full_name": "Arr Corrected"}}}))
    .await;
    assert_eq!(
        rectified["result"]["rectified"],
        json!({"identifiers": ["email"], "traits": ["full_name"]})
    );
    let export: Value = app
        .get_json("/v1/subjects/cust-r/export", Some(&compliance))
        .await;
    assert_eq!(
        export["subject"]["identifiers"]["email"],
        "r.new@example.org"
    );
    assert_eq!(export["subject"]["traits"]["full_name"], "Arr Corrected");

    // A person nobody holds data about: the request completes, saying so.
    let nobody = run(json!({"type": "access", "regulation": "gdpr",
                            "email": "stranger@example.org"}))
    .await;
    assert_eq!(nobody["result"], json!({"subject_found": false}));
    assert_problem(
        app.get(
            &format!("/v1/requests/{}/export", nobody["id"].as_str().unwrap()),
            Some(&compliance),
        )
        .await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;

    // An address two subjects share cannot be executed by e-mail.
    person(&app, &collector, "cust-twin-1", "twin@example.org").await;
    person(&app, &collector, "cust-twin-2", "twin@example.org").await;
    let twin = file(
        &app,
        &compliance,
        json!({"type": "erasure", "regulation": "gdpr", "email": "twin@example.org"}),
    )
    .await;
    let twin_id = twin["id"].as_str().unwrap();
    step(&app, &compliance, twin_id, "verify", None).await;
    assert_problem(
        app.post_json(
            &format!("/v1/requests/{twin_id}/execute"),
            Some(&compliance),
            &json!({}),
        )
        .await,
        StatusCode::CONFLICT,
        "ambiguous_subject",
    )
    .await;
    // Execution started and failed: the request shows it is in progress.
    let stuck: Value = app
        .get_json(&format!("/v1/requests/{twin_id}"), Some(&compliance))
        .await;
    assert_eq!(stuck["status"], "in_progress");
    let rejected = step(
        &app,
        &compliance,
        twin_id,
        "reject",
        Some(json!({"reason": "refile by subject_id"})),
    )
    .await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["rejected"]["reason"], "refile by subject_id");
}

#[tokio::test]
async fn bad_requests_are_refused_precisely_and_store_nothing() {
    let app = spawn_app().await;
    let compliance = app.token_for("compliance").await;
    let collector = app.token_for("collector").await;
    let cases = [
        (
            json!({"type": "delete_everything", "regulation": "gdpr", "subject_id": "a"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request_type",
        ),
        (
            json!({"type": "access", "regulation": "lgpd", "subject_id": "a"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_regulation",
        ),
        (
            json!({"type": "access", "regulation": "gdpr"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_subject",
        ),
        (
            json!({"type": "access", "regulation": "gdpr", "subject_id": "a",
                   "email": "a@example.org"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_subject",
        ),
        (
            json!({"type": "access", "regulation": "gdpr", "email": "not-an-address"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_identifier",
        ),
        (
            json!({"type": "objection", "regulation": "gdpr", "subject_id": "a"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_purposes",
        ),
        (
            json!({"type": "objection", "regulation": "gdpr", "subject_id": "a",
                   "purposes": ["astrology"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_purpose",
        ),
        (
            json!({"type": "access", "regulation": "gdpr", "subject_id": "a",
                   "purposes": ["analytics"]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unexpected_purposes",
        ),
        (
            json!({"type": "rectification", "regulation": "gdpr", "subject_id": "a",
                   "changes": {"traits": {"shoe_size": "44"}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "undeclared_field",
        ),
        (
            json!({"type": "rectification", "regulation": "gdpr", "subject_id": "a"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_changes",
        ),
        (
            json!({"type": "access", "regulation": "gdpr", "subject_id": "a",
                   "received_at": "2999-01-01T00:00:00Z"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_received_at",
        ),
        (
            json!({"type": "access", "regulation": "gdpr", "subject_id": "a", "urgent": true}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        assert_problem(
            app.post_json("/v1/requests", Some(&compliance), &body)
                .await,
            status,
            code,
        )
        .await;
    }
    assert_problem(
        app.post_json(
            "/v1/requests",
            Some(&collector),
            &json!({"type": "access", "regulation": "gdpr", "subject_id": "a"}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    assert_eq!(count_rows(&app, "subject_requests").await, 0);

    for path in [
        "/v1/requests/not-a-uuid",
        "/v1/requests/0191d6a4-0000-7000-8000-000000000000",
    ] {
        assert_problem(
            app.get(path, Some(&compliance)).await,
            StatusCode::NOT_FOUND,
            "request_not_found",
        )
        .await;
    }
    for query in ["status=done", "type=everything"] {
        assert_problem(
            app.get(&format!("/v1/requests?{query}"), Some(&compliance))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_query",
        )
        .await;
    }
}

/// A request desk: may handle requests, nothing else.
const DESK: &str = r#"
[[role]]
id = "desk"
actions = ["requests.manage"]
"#;

async fn pseudonym_of(app: &TestApp, compliance: &str, subject: &str) -> Value {
    let entries = audit(app, compliance, &format!("subject_id={subject}")).await;
    entries.last().unwrap()["subjects"][0].clone()
}

#[tokio::test]
async fn executing_a_request_needs_the_action_of_the_direct_route() {
    let policies = crate::helpers::policy_with_extra_roles(DESK);
    let dir = policies.path().to_path_buf();
    let app = crate::helpers::spawn_app_with(|options| options.policy_dir = Some(dir)).await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let desk = app.token_for("desk").await;
    person(&app, &collector, "victim-1", "victim@example.org").await;
    let victim = pseudonym_of(&app, &compliance, "victim-1").await;
    // DELETE /v1/subjects is 403 for the desk; erasing through a request is too.
    assert_problem(
        app.delete("/v1/subjects/victim-1", Some(&desk)).await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    let cases = [
        (
            json!({"type": "erasure", "regulation": "gdpr", "subject_id": "victim-1"}),
            "subjects.erase",
        ),
        (
            json!({"type": "rectification", "regulation": "gdpr", "subject_id": "victim-1",
                   "changes": {"identifiers": {"email": "attacker@evil.example"}}}),
            "subjects.rectify",
        ),
        (
            json!({"type": "access", "regulation": "gdpr", "email": "victim@example.org"}),
            "subjects.export",
        ),
    ];
    let mut filed = Vec::new();
    for (body, needed) in cases {
        let created = file(&app, &desk, body).await;
        let id = created["id"].as_str().unwrap().to_owned();
        step(&app, &desk, &id, "verify", None).await;
        let problem = assert_problem(
            app.post_json(
                &format!("/v1/requests/{id}/execute"),
                Some(&desk),
                &json!({}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "action_not_permitted",
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().contains(needed),
            "{problem}"
        );
        // Still verified: nothing was started.
        let shown: Value = app
            .get_json(&format!("/v1/requests/{id}"), Some(&desk))
            .await;
        assert_eq!(shown["status"], "verified");
        filed.push(id);
    }
    // The person is untouched, e-mail included.
    let export: Value = app
        .get_json("/v1/subjects/victim-1/export", Some(&compliance))
        .await;
    assert_eq!(
        export["subject"]["identifiers"]["email"],
        "victim@example.org"
    );
    // Each refusal is audited as a denial naming the person.
    let denied = audit(&app, &compliance, "action=requests.execute&decision=deny").await;
    assert_eq!(denied.len(), 3);
    for entry in &denied {
        assert_eq!(entry["reason"], "action_not_permitted");
        assert_eq!(entry["subjects"], json!([victim.clone()]));
        assert_eq!(entry["role"], "desk");
    }
    // Restriction and objection only limit processing: the desk may carry them out.
    let restriction = file(
        &app,
        &desk,
        json!({"type": "restriction", "regulation": "gdpr", "subject_id": "victim-1"}),
    )
    .await;
    let id = restriction["id"].as_str().unwrap();
    step(&app, &desk, id, "verify", None).await;
    assert_eq!(
        step(&app, &desk, id, "execute", None).await["status"],
        "completed"
    );
    // Compliance holds subjects.rectify and may execute the rectification.
    let done = step(&app, &compliance, &filed[1], "execute", None).await;
    assert_eq!(done["status"], "completed");
}

#[tokio::test]
async fn identities_are_masked_without_subjects_export() {
    let policies = crate::helpers::policy_with_extra_roles(DESK);
    let dir = policies.path().to_path_buf();
    let app = crate::helpers::spawn_app_with(|options| options.policy_dir = Some(dir)).await;
    let compliance = app.token_for("compliance").await;
    let desk = app.token_for("desk").await;
    file(
        &app,
        &compliance,
        json!({"type": "rectification", "regulation": "gdpr", "subject_id": "someone-7",
               "changes": {"identifiers": {"email": "new.address@example.org"}}}),
    )
    .await;
    file(
        &app,
        &compliance,
        json!({"type": "access", "regulation": "ccpa", "email": "jane.doe@example.org"}),
    )
    .await;
    let page = |token: String| {
        let app = &app;
        async move {
            let response = app.get("/v1/requests", Some(&token)).await;
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        }
    };
    let masked = page(desk.clone()).await;
    for secret in ["someone-7", "new.address", "jane.doe", "example.org"] {
        assert!(!masked.contains(secret), "{secret} in {masked}");
    }
    let masked: Value = serde_json::from_str(&masked).unwrap();
    let subjects: Vec<&Value> = masked["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|request| &request["subject"])
        .collect();
    assert!(
        subjects.contains(&&json!({"subject_id": "s…7"})),
        "{masked}"
    );
    assert!(
        subjects.contains(&&json!({"email": "j…e@e…e.org"})),
        "{masked}"
    );
    let rectification = masked["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|request| request["type"] == "rectification")
        .unwrap();
    assert_eq!(
        rectification["changes"],
        json!({"identifiers": {"email": "…"}})
    );
    let id = rectification["id"].as_str().unwrap();
    let shown = app
        .get(&format!("/v1/requests/{id}"), Some(&desk))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        !shown.contains("someone-7") && !shown.contains("new.address"),
        "{shown}"
    );
    // A role holding subjects.export sees them in full.
    let full = page(compliance).await;
    for secret in [
        "someone-7",
        "new.address@example.org",
        "jane.doe@example.org",
    ] {
        assert!(full.contains(secret), "{secret}");
    }
}

#[tokio::test]
async fn a_controllers_key_sees_and_acts_on_only_its_own_requests() {
    let app = spawn_app().await;
    let compliance = app.token_for("compliance").await;
    let first = app.token_for("opendsr_controller").await;
    let second = app.token_for("opendsr_controller").await;
    let mine = file(
        &app,
        &first,
        json!({"type": "access", "regulation": "gdpr", "subject_id": "braze-user-1"}),
    )
    .await;
    let theirs = file(
        &app,
        &compliance,
        json!({"type": "erasure", "regulation": "gdpr", "subject_id": "someone-else"}),
    )
    .await;
    let listed = |token: String| {
        let app = &app;
        async move {
            let page: Value = app.get_json("/v1/requests", Some(&token)).await;
            page["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|request| request["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(first.clone()).await, [mine["id"].as_str().unwrap()]);
    assert!(listed(second.clone()).await.is_empty());
    assert_eq!(listed(compliance.clone()).await.len(), 2);
    // Another's request is not found, to look at or to act on.
    let other = theirs["id"].as_str().unwrap();
    for token in [&first, &second] {
        assert_problem(
            app.get(&format!("/v1/requests/{other}"), Some(token)).await,
            StatusCode::NOT_FOUND,
            "request_not_found",
        )
        .await;
        for action in ["verify", "execute"] {
            assert_problem(
                app.post_json(
                    &format!("/v1/requests/{other}/{action}"),
                    Some(token),
                    &json!({}),
                )
                .await,
                StatusCode::NOT_FOUND,
                "request_not_found",
            )
            .await;
        }
        assert_problem(
            app.post_json(
                &format!("/v1/requests/{other}/reject"),
                Some(token),
                &json!({"reason": "no"}),
            )
            .await,
            StatusCode::NOT_FOUND,
            "request_not_found",
        )
        .await;
    }
    let untouched: Value = app
        .get_json(&format!("/v1/requests/{other}"), Some(&compliance))
        .await;
    assert_eq!(untouched["status"], "received");
    // Its own request, with the identity masked (the role does not hold subjects.export).
    let own: Value = app
        .get(
            &format!("/v1/requests/{}", mine["id"].as_str().unwrap()),
            Some(&first),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(own["subject"], json!({"subject_id": "b…1"}));
    // And it may not restrict anyone directly.
    assert_problem(
        app.post_json(
            "/v1/subjects/someone-else/restriction",
            Some(&first),
            &json!({}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "own_requests_only",
    )
    .await;
    // The refusal is audited once.
    let denied: Value = app
        .get_json(
            "/v1/audit?decision=deny&action=requests.manage",
            Some(&compliance),
        )
        .await;
    let denied = denied["entries"].as_array().unwrap();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["reason"], "own_requests_only");
}

/// What the kept receipt of this request looks like in the table: (sealed receipt, key).
async fn stored_receipt(app: &TestApp, id: &str) -> (Option<String>, Option<Vec<u8>>) {
    use custodia::store::schema::subject_requests;
    use diesel::prelude::*;
    let (database, id) = (app.database(), id.to_owned());
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().expect("a connection");
        subject_requests::table
            .find(id)
            .select((subject_requests::receipt_ct, subject_requests::key_wrapped))
            .first(&mut *conn)
            .expect("the request")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn an_executed_erasure_keeps_its_receipt_sealed_for_30_days_then_retention_shreds_it() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let support = app.token_for("support").await;
    person(&app, &collector, "cust-receipt", "receipt@example.org").await;
    let erasure = file(
        &app,
        &compliance,
        json!({"type": "erasure", "regulation": "gdpr", "subject_id": "cust-receipt"}),
    )
    .await;
    let id = erasure["id"].as_str().unwrap();
    let path = format!("/v1/requests/{id}/receipt");
    assert_problem(
        app.get(&path, Some(&compliance)).await,
        StatusCode::NOT_FOUND,
        "receipt_not_found",
    )
    .await;
    step(&app, &compliance, id, "verify", None).await;
    let done = step(&app, &compliance, id, "execute", None).await;
    let given = done["erasure_receipt"].as_str().unwrap().to_owned();

    // Later, the same receipt, for 30 days.
    let response = app.get(&path, Some(&compliance)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let kept: Value = response.json().await.unwrap();
    assert_eq!(kept["erasure_receipt"], given.as_str());
    let until: chrono::DateTime<chrono::Utc> =
        kept["kept_until"].as_str().unwrap().parse().unwrap();
    let days = (until - chrono::Utc::now()).num_hours() as f64 / 24.0;
    assert!((29.9..=30.0).contains(&days), "kept for {days} days");
    // Only for a role that may erase; the read is audited.
    assert_problem(
        app.get(&path, Some(&support)).await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    let reads = app
        .get_json("/v1/audit?action=requests.receipt", Some(&compliance))
        .await;
    let reads = reads["entries"].as_array().unwrap();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0]["target"], id);
    assert_eq!(reads[0]["decision"], "allow");

    // It names the person, yet the database holds neither the id nor the receipt in clear.
    let (sealed, key) = stored_receipt(&app, id).await;
    assert!(sealed.is_some() && key.is_some());
    let dump = database_dump(&app).await;
    assert!(!contains_in_any_encoding(&dump, "cust-receipt"));
    assert!(!contains_in_any_encoding(
        &dump,
        given.split('.').nth(1).unwrap()
    ));

    // Past its time, retention shreds the receipt and its key.
    {
        use custodia::store::schema::subject_requests;
        use diesel::prelude::*;
        let (database, id) = (app.database(), id.to_owned());
        tokio::task::spawn_blocking(move || {
            let mut conn = database.connection().expect("a connection");
            diesel::update(subject_requests::table.find(id))
                .set(
                    subject_requests::receipt_until
                        .eq(chrono::Utc::now().naive_utc() - chrono::Duration::seconds(1)),
                )
                .execute(&mut *conn)
                .expect("backdated")
        })
        .await
        .unwrap();
    }
    assert_problem(
        app.get(&path, Some(&compliance)).await,
        StatusCode::NOT_FOUND,
        "receipt_not_found",
    )
    .await;
    let output = app.run_cli(&["retention", "run"]);
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["erasure_receipts_shredded"], 1);
    assert_eq!(stored_receipt(&app, id).await, (None, None));
    let shredded = app
        .get_json(
            "/v1/audit?action=requests.receipts_expire",
            Some(&compliance),
        )
        .await;
    assert_eq!(shredded["entries"][0]["records"], 1, "{shredded}");
    // The request itself stays, completed.
    let shown = app
        .get_json(&format!("/v1/requests/{id}"), Some(&compliance))
        .await;
    assert_eq!(shown["status"], "completed");
}

#[tokio::test]
async fn erasing_a_person_directly_completes_their_open_requests_and_leaves_others_open() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    person(&app, &collector, "cust-direct", "direct@example.org").await;
    person(&app, &collector, "cust-other", "other@example.org").await;
    let received = file(
        &app,
        &compliance,
        json!({"type": "access", "regulation": "gdpr", "email": "direct@example.org"}),
    )
    .await;
    let verified = file(
        &app,
        &compliance,
        json!({"type": "restriction", "regulation": "ccpa", "subject_id": "cust-direct"}),
    )
    .await;
    step(
        &app,
        &compliance,
        verified["id"].as_str().unwrap(),
        "verify",
        None,
    )
    .await;
    let rejected = file(
        &app,
        &compliance,
        json!({"type": "erasure", "regulation": "gdpr", "subject_id": "cust-direct"}),
    )
    .await;
    let rejected = step(
        &app,
        &compliance,
        rejected["id"].as_str().unwrap(),
        "reject",
        Some(json!({"reason": "a duplicate"})),
    )
    .await;
    let unrelated = file(
        &app,
        &compliance,
        json!({"type": "access", "regulation": "gdpr", "subject_id": "cust-other"}),
    )
    .await;

    let erased = app
        .delete("/v1/subjects/cust-direct", Some(&compliance))
        .await;
    assert_eq!(erased.status(), StatusCode::OK);
    let erased: Value = erased.json().await.unwrap();
    let erasure_id = erased["id"].as_str().unwrap();

    let show = |request: &Value| {
        let (app, compliance) = (&app, &compliance);
        let path = format!("/v1/requests/{}", request["id"].as_str().unwrap());
        async move { app.get_json(&path, Some(compliance)).await }
    };
    for request in [&received, &verified] {
        let shown = show(request).await;
        assert_eq!(shown["status"], "completed", "{shown}");
        assert_eq!(
            shown["result"],
            json!({"subject_found": false, "closed_by_erasure": erasure_id})
        );
    }
    // A closed request stays as it was closed; another person's stays open.
    let shown = show(&rejected).await;
    assert_eq!(shown["status"], "rejected");
    assert_eq!(shown["result"], Value::Null);
    let shown = show(&unrelated).await;
    assert_eq!(shown["status"], "received");
    assert_eq!(shown["subject"], json!({"subject_id": "cust-other"}));
    let verify: Value = app.get_json("/v1/audit/verify", Some(&compliance)).await;
    assert_eq!(verify["ok"], true);
}

#[tokio::test]
async fn the_queue_lists_open_requests_on_asking_for_status_open() {
    let app = spawn_app().await;
    let compliance = app.token_for("compliance").await;
    let file_for = |subject: &'static str| {
        let (app, compliance) = (&app, &compliance);
        async move {
            file(
                app,
                compliance,
                json!({"type": "access", "regulation": "gdpr", "subject_id": subject}),
            )
            .await["id"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let received = file_for("cust-open-1").await;
    let verified = file_for("cust-open-2").await;
    step(&app, &compliance, &verified, "verify", None).await;
    let completed = file_for("cust-open-3").await;
    step(&app, &compliance, &completed, "verify", None).await;
    step(&app, &compliance, &completed, "execute", None).await;
    let rejected = file_for("cust-open-4").await;
    step(
        &app,
        &compliance,
        &rejected,
        "reject",
        Some(json!({"reason": "not verifiable"})),
    )
    .await;
    let open = app
        .get_json("/v1/requests?status=open", Some(&compliance))
        .await;
    let mut ids: Vec<&str> = open["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|request| request["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = vec![received.as_str(), verified.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    let refused = assert_problem(
        app.get("/v1/requests?status=pending", Some(&compliance))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    assert!(refused["detail"].as_str().unwrap().contains("`open`"));
}

#[tokio::test]
async fn a_request_falls_overdue_as_the_servers_time_passes_its_deadline() {
    let app = spawn_app().await;
    let compliance = app.token_for("compliance").await;
    let filed = file(
        &app,
        &compliance,
        json!({"type": "access", "regulation": "ccpa", "email": "waiting@example.org"}),
    )
    .await;
    let id = filed["id"].as_str().unwrap().to_owned();
    assert_eq!(filed["overdue"], false);
    let overdue_ids = |listed: &Value| -> Vec<String> {
        listed["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let overdue = app
        .get_json("/v1/requests?overdue=true", Some(&compliance))
        .await;
    assert!(overdue_ids(&overdue).is_empty());
    // CCPA gives 45 days; 46 pass on the server's clock.
    app.clock
        .advance(std::time::Duration::from_secs(46 * 24 * 3600));
    let shown = app
        .get_json(&format!("/v1/requests/{id}"), Some(&compliance))
        .await;
    assert_eq!(shown["overdue"], true, "{shown}");
    assert!(shown["days_left"].as_i64().unwrap() < 0, "{shown}");
    let overdue = app
        .get_json("/v1/requests?overdue=true", Some(&compliance))
        .await;
    assert_eq!(overdue_ids(&overdue), [id]);
}
