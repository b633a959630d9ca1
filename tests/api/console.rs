//! The compliance console end to end: a real server (this backend), seeded through the API,
//! driven in headless Chromium by `console/e2e/console.test.mjs` (playwright-core, from npm):
//! sign in, the request queue, find a person by e-mail, consents, exports, restriction,
//! erasure and its receipt, the audit log and its verification, the policy and the record of
//! processing, keyboard use, 390 px, a role that sees nothing. Then the database is checked.
//!
//! Needs Node.js and Chromium (`/usr/bin/chromium`, or `CUSTODIA_CHROMIUM`); the npm packages
//! are installed from `console/e2e/package-lock.json` when missing. Without Chromium the test
//! says so on stderr and passes, unless `CUSTODIA_REQUIRE_BROWSER_TESTS=1` (set by `.ci/run`,
//! which installs Chromium), where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{count_rows, spawn_app, TestApp};

const SUBJECT_ID: &str = "cust-console-7";
const SUBJECT_EMAIL: &str = "console.person@example.org";
/// A second person, erased by executing their erasure request from the queue.
const QUEUED_SUBJECT_ID: &str = "cust-console-8";
/// An e-mail address two people share: a request naming it cannot be executed.
const SHARED_EMAIL: &str = "shared.console@example.org";

fn e2e_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("console/e2e")
}

/// Chromium, and the npm packages installed; `None` (after saying why) when the browser tests
/// cannot run here and are not required.
fn browser() -> Option<PathBuf> {
    let required = std::env::var("CUSTODIA_REQUIRE_BROWSER_TESTS").is_ok_and(|v| v == "1");
    let chromium = std::env::var_os("CUSTODIA_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let node = Command::new("node").arg("--version").output();
    let missing = if !chromium.exists() {
        Some(format!(
            "Chromium is not at {} (apt-get install chromium, or set CUSTODIA_CHROMIUM)",
            chromium.display()
        ))
    } else if !node.is_ok_and(|output| output.status.success()) {
        Some("Node.js is not installed (apt-get install nodejs npm)".to_owned())
    } else {
        None
    };
    if let Some(why) = missing {
        assert!(!required, "CUSTODIA_REQUIRE_BROWSER_TESTS=1 but {why}");
        eprintln!("\n*** console browser tests NOT RUN: {why}. `.ci/run` installs it and runs them. ***\n");
        return None;
    }
    if !e2e_dir().join("node_modules/playwright-core").exists()
        || !e2e_dir().join("node_modules/axe-core").exists()
    {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(e2e_dir())
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci in console/e2e failed");
    }
    Some(chromium)
}

/// Seeds the people, their data and the requests; returns the ids of the erasure request that
/// the browser executes and of the access request whose execution fails (ambiguous e-mail).
async fn seed(app: &TestApp) -> (String, String) {
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let response = app
        .request(
            Method::PUT,
            &format!("/v1/subjects/{SUBJECT_ID}"),
            Some(&collector),
            Some(&json!({"identifiers": {"email": SUBJECT_EMAIL},
                         "traits": {"country": "DE", "full_name": "Console Person"}})),
        )
        .await;
    assert!(response.status().is_success());
    for (purpose, status) in [
        ("marketing", "granted"),
        ("marketing.email", "granted"),
        ("marketing.email", "withdrawn"),
        ("marketing.sms", "granted"),
    ] {
        let mut body = json!({"purpose": purpose, "status": status, "source": "web",
                              "method": "checkbox"});
        if status == "granted" {
            body["notice"] = json!({"id": "newsletter", "version": "3"});
        }
        let response = app
            .post_json(
                &format!("/v1/subjects/{SUBJECT_ID}/consents"),
                Some(&collector),
                &body,
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    // A cookie banner's TC string refusing personalised advertising: the history names the
    // string it was read from.
    let mut tc = crate::standards::HandTc::new();
    tc.vendors = vec![755];
    let response = app
        .post_json(
            &format!("/v1/subjects/{SUBJECT_ID}/consents"),
            Some(&collector),
            &json!({"tcf_string": tc.encode(), "source": "web", "method": "banner"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // An objection to `marketing` takes the `marketing.sms` grant out of effect: the person's
    // screen must say so, and why.
    let response = app
        .post_json(
            &format!("/v1/subjects/{SUBJECT_ID}/objections"),
            Some(&collector),
            &json!({"purpose": "marketing"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // An invoice the law requires to be kept: a legal hold keeps it at erasure.
    let response = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "console-invoice", "subject_id": SUBJECT_ID,
                    "type": "purchase", "channel": "web",
                    "occurred_at": (Utc::now() - Duration::days(30)).to_rfc3339(),
                    "purposes": ["legal_compliance"],
                    "data": {"order_id": "ORD-CONSOLE-1"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    for n in 0..2 {
        let response = app
            .post_json(
                "/v1/interactions",
                Some(&collector),
                &json!({"id": format!("console-{n}"), "subject_id": SUBJECT_ID,
                        "type": "support_chat", "channel": "chat",
                        "occurred_at": Utc::now().to_rfc3339(), "purposes": ["support"],
                        "data": {"message": "Where is my parcel?"}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    // An access request received 40 days ago (overdue: GDPR gives a month) and a recent one.
    // And a restriction request still open when the person is erased from their screen.
    for (kind, days_ago, who) in [
        ("access", 40, json!({"subject_id": SUBJECT_ID})),
        ("erasure", 2, json!({"email": "someone.else@example.org"})),
        ("restriction", 3, json!({"subject_id": SUBJECT_ID})),
    ] {
        let mut body = json!({"type": kind, "regulation": "gdpr",
                              "received_at": (Utc::now() - Duration::days(days_ago)).to_rfc3339()});
        body.as_object_mut()
            .unwrap()
            .extend(who.as_object().unwrap().clone());
        let response = app
            .post_json("/v1/requests", Some(&compliance), &body)
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    // The second person, with an interaction, and a verified-to-be erasure request naming them.
    let response = app
        .request(
            Method::PUT,
            &format!("/v1/subjects/{QUEUED_SUBJECT_ID}"),
            Some(&collector),
            Some(&json!({"traits": {"country": "AT"}})),
        )
        .await;
    assert!(response.status().is_success());
    let response = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "console-queued", "subject_id": QUEUED_SUBJECT_ID,
                    "type": "support_chat", "channel": "chat",
                    "occurred_at": Utc::now().to_rfc3339(), "purposes": ["support"],
                    "data": {"message": "Please erase me"}}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app
        .post_json(
            "/v1/requests",
            Some(&compliance),
            &json!({"type": "erasure", "regulation": "gdpr", "subject_id": QUEUED_SUBJECT_ID,
                    "received_at": (Utc::now() - Duration::days(1)).to_rfc3339()}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let queued: Value = response.json().await.unwrap();
    let queued_id = queued["id"].as_str().unwrap().to_owned();
    // Two people sharing an e-mail address, and an access request that names it.
    for id in ["cust-console-shared-1", "cust-console-shared-2"] {
        let response = app
            .request(
                Method::PUT,
                &format!("/v1/subjects/{id}"),
                Some(&collector),
                Some(&json!({"identifiers": {"email": SHARED_EMAIL}})),
            )
            .await;
        assert!(response.status().is_success());
    }
    let response = app
        .post_json(
            "/v1/requests",
            Some(&compliance),
            &json!({"type": "access", "regulation": "ccpa", "email": SHARED_EMAIL}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let ambiguous: Value = response.json().await.unwrap();
    let ambiguous_id = ambiguous["id"].as_str().unwrap().to_owned();
    // A request answered after its deadline: received 50 days ago, completed now.
    let response = app
        .post_json(
            "/v1/requests",
            Some(&compliance),
            &json!({"type": "portability", "regulation": "gdpr", "subject_id": "cust-console-nobody",
                    "received_at": (Utc::now() - Duration::days(50)).to_rfc3339()}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let late: Value = response.json().await.unwrap();
    for step in ["verify", "execute"] {
        let response = app
            .post_json(
                &format!("/v1/requests/{}/{step}", late["id"].as_str().unwrap()),
                Some(&compliance),
                &json!({}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{step}");
    }
    // More than one page (50) of audit entries, for the console's paging.
    for _ in 0..50 {
        let response = app
            .get(
                &format!("/v1/subjects/{SUBJECT_ID}/consents"),
                Some(&compliance),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Buyers who consented to marketing, a purchase a week for the last ten weeks, on two
    // channels: what the marketer's insights count.
    for n in 0..6 {
        let buyer = format!("console-buyer-{n}");
        let response = app
            .post_json(
                &format!("/v1/subjects/{buyer}/consents"),
                Some(&collector),
                &json!({"purpose": "marketing", "status": "granted", "source": "web",
                        "method": "checkbox", "notice": {"id": "newsletter", "version": "3"}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        for week in 0..10 {
            let at = chrono::Utc::now() - chrono::Duration::days(7 * week + 1);
            let channel = if n % 2 == 0 { "web" } else { "app" };
            let response = app
                .post_json(
                    "/v1/interactions",
                    Some(&collector),
                    &json!({"id": format!("{buyer}-{week}"), "subject_id": buyer,
                            "type": "purchase", "channel": channel,
                            "occurred_at": at.to_rfc3339(), "purposes": ["marketing"]}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::CREATED);
        }
    }
    (queued_id, ambiguous_id)
}

#[tokio::test]
#[cfg_attr(
    browser_tests_unavailable,
    ignore = "Chromium or Node.js is not installed here (apt-get install chromium nodejs npm); .ci/run installs them and requires this test"
)]
async fn the_console_works_end_to_end_in_headless_chromium() {
    let Some(chromium) = browser() else {
        return;
    };
    let app = spawn_app().await;
    let (queued_erasure, ambiguous_access) = seed(&app).await;
    let compliance_key = app.create_api_key("compliance").await;
    let marketer_key = app.create_api_key("marketer").await;
    let collector_key = app.create_api_key("collector").await;
    let screenshots = std::env::var_os("CUSTODIA_CONSOLE_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
                "console-screenshots-{}",
                uuid::Uuid::new_v4().simple()
            ))
        });
    std::fs::create_dir_all(&screenshots).unwrap();
    let output = tokio::task::spawn_blocking({
        let address = app.address.clone();
        let screenshots = screenshots.clone();
        let queued_erasure = queued_erasure.clone();
        let ambiguous_access = ambiguous_access.clone();
        move || {
            Command::new("node")
                .args(["--test", "--test-concurrency=1", "console.test.mjs"])
                .current_dir(e2e_dir())
                .env("CONSOLE_URL", address)
                .env("COMPLIANCE_KEY", compliance_key)
                .env("MARKETER_KEY", marketer_key)
                .env("COLLECTOR_KEY", collector_key)
                .env("SUBJECT_ID", SUBJECT_ID)
                .env("SUBJECT_EMAIL", SUBJECT_EMAIL)
                .env("QUEUED_SUBJECT_ID", QUEUED_SUBJECT_ID)
                .env("QUEUED_ERASURE_ID", &queued_erasure)
                .env("SHARED_EMAIL", SHARED_EMAIL)
                .env("AMBIGUOUS_ACCESS_ID", &ambiguous_access)
                .env("SCREENSHOT_DIR", &screenshots)
                .env("CHROMIUM", chromium)
                .output()
                .expect("node runs")
        }
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("# fail 0"), "{report}");
    assert!(!report.contains("# pass 0"), "{report}");

    // What the browser did is in the database: the person is gone, the request completed, the
    // chain verifies, and every screen was captured.
    let compliance = app.token_for("compliance").await;
    let response = app
        .get(
            &format!("/v1/subjects/{SUBJECT_ID}/consents"),
            Some(&compliance),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    // The officer chose suppression in the erase dialog: data about the id is refused.
    let collector = app.token_for("collector").await;
    let refused = app
        .request(
            Method::PUT,
            &format!("/v1/subjects/{SUBJECT_ID}"),
            Some(&collector),
            Some(&json!({"traits": {"country": "DE"}})),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["code"], "subject_suppressed", "{refused}");
    // Only the two people who share an e-mail address are left, and the six buyers with their
    // purchases (the marketer's insights).
    assert_eq!(count_rows(&app, "subjects").await, 2 + 6);
    assert_eq!(count_rows(&app, "interactions").await, 6 * 10);
    // The invoice is held, without the person's key: under the hold's own.
    assert_eq!(count_rows(&app, "held_interactions").await, 1);
    let queue: Value = app
        .get_json("/v1/requests?status=completed", Some(&compliance))
        .await;
    let completed = queue["requests"].as_array().unwrap();
    assert_eq!(completed.len(), 4, "{queue}");
    // The person's open restriction request was completed by their erasure, explained.
    let restriction = completed
        .iter()
        .find(|r| r["type"] == "restriction")
        .unwrap();
    assert!(
        restriction["result"]["closed_by_erasure"].is_string(),
        "{restriction}"
    );
    let access = completed.iter().find(|r| r["type"] == "access").unwrap();
    assert!(access["extended"]["reason"].is_string());
    // The erasure request executed from the queue, after its typed confirmation.
    let erasure = completed.iter().find(|r| r["type"] == "erasure").unwrap();
    assert_eq!(erasure["id"], queued_erasure.as_str());
    assert_eq!(erasure["result"]["subject_found"], true, "{erasure}");
    let rejected: Value = app
        .get_json("/v1/requests?status=rejected", Some(&compliance))
        .await;
    assert_eq!(rejected["requests"].as_array().unwrap().len(), 1);
    assert_eq!(rejected["requests"][0]["type"], "erasure");
    let verify: Value = app.get_json("/v1/audit/verify", Some(&compliance)).await;
    assert_eq!(verify["ok"], true, "{verify}");
    for screen in [
        "sign-in",
        "requests",
        "request",
        "subject",
        "erase-confirm",
        "erasure-receipt",
        "request-erasure-confirm",
        "request-erasure-receipt",
        "audit",
        "policy",
        "requests-390",
    ] {
        let file = screenshots.join(format!("{screen}.png"));
        let bytes = std::fs::read(&file).unwrap_or_else(|_| panic!("{} exists", file.display()));
        assert!(bytes.starts_with(b"\x89PNG"), "{screen}");
    }
}
