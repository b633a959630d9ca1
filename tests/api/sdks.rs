//! The real tracking SDKs against a running Custodia (docs/tracking.md): Segment's
//! `@segment/analytics-node` and RudderStack's `@rudderstack/rudder-sdk-node`, from npm
//! (`tests/sdk/package-lock.json`, driven by `tests/sdk/send.mjs`), and Segment's Python
//! library (`segment-analytics-python`, `tests/sdk/requirements.txt`, driven by
//! `tests/sdk/send.py`), each sending through its own batching, Basic write key and (RudderStack,
//! and Python as configured) gzip compression.
//!
//! Needs Node.js and Python; the npm packages are installed on first use, the Python library by
//! `.ci/run` (`tests/sdk/requirements.txt`). Where one is missing its tests show as ignored,
//! with the reason (`build.rs`), unless `CUSTODIA_REQUIRE_SDK_TESTS=1` (set by `.ci/run`), which
//! makes them run and fail loudly.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{count_rows, spawn_app};

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// Segment's Python library, which `.ci/run` installs (the test is ignored where `build.rs`
/// did not find it, unless required).
fn ensure_python_sdk() {
    let imported = Command::new("python3")
        .args(["-c", "import segment.analytics"])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        imported,
        "segment-analytics-python is not installed (pip install -r tests/sdk/requirements.txt)"
    );
}

/// Node.js and the SDKs' npm packages (installed here when missing; the tests are ignored where
/// `build.rs` did not find Node.js, unless required).
pub(crate) fn ensure_node_sdks() {
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|output| output.status.success()),
        "Node.js is not installed (apt-get install nodejs npm)"
    );
    let installed = [
        "@segment/analytics-node",
        "@rudderstack/rudder-sdk-node",
        "@iabtechlabtcf/core",
        "@iabgpp/cmpapi",
    ]
    .iter()
    .all(|package| sdk_dir().join("node_modules").join(package).exists());
    if !installed {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(sdk_dir())
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm ci in tests/sdk failed");
    }
}

/// Sends the script's messages with `sdk` for `user_id`, and checks what was stored: the
/// anonymous visitor's banner answer (a consent statement with its evidence) and page view,
/// linked to the user by the identify; the person's e-mail address and declared trait, the
/// order (support and legal compliance) and the page view (analytics), with declared fields
/// only; the event whose consent context denied its only purpose is not stored.
async fn events_from(sdk: &'static str, user_id: &'static str) {
    if sdk == "python" {
        ensure_python_sdk();
    } else {
        ensure_node_sdks();
    }
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let support = app.token_for("support").await;
    let compliance = app.token_for("compliance").await;
    let host = app.address.clone();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = if sdk == "python" {
            let mut python = Command::new("python3");
            python.arg("send.py");
            python
        } else {
            let mut node = Command::new("node");
            node.arg("send.mjs");
            node
        };
        command
            .current_dir(sdk_dir())
            .env("SDK", sdk)
            .env("HOST", host)
            .env("WRITE_KEY", write_key)
            .env("USER_ID", user_id)
            .env("ANON_ID", format!("anon-{user_id}"))
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{sdk}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("{sdk} printed no report: {stdout}"));
    assert_eq!(report["errors"], serde_json::json!([]), "{sdk}: {report}");

    // One person: the anonymous visit, the order and the page view after login.
    assert_eq!(count_rows(&app, "subjects").await, 1, "{sdk}");
    assert_eq!(count_rows(&app, "subject_aliases").await, 1, "{sdk}");
    assert_eq!(count_rows(&app, "interactions").await, 3, "{sdk}");
    // The banner's grant is a consent statement; the anonymous page view was collected for
    // analytics and, with that grant, marketing.
    assert_eq!(count_rows(&app, "consent_records").await, 1, "{sdk}");
    assert_eq!(count_rows(&app, "interaction_purposes").await, 5, "{sdk}");
    let bundle: Value = app
        .get(&format!("/v1/subjects/{user_id}/export"), Some(&compliance))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        bundle["subject"]["anonymous_ids"],
        serde_json::json!([format!("anon-{user_id}")]),
        "{sdk}"
    );
    assert_eq!(
        bundle["consents"][0]["evidence"]["ip_address"], "192.0.2.44",
        "{sdk}"
    );
    let read = app
        .get_json(
            &format!("/v1/subjects/{user_id}/interactions?purpose=support"),
            Some(&support),
        )
        .await;
    let items = read["interactions"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{sdk}: {read}");
    assert_eq!(items[0]["type"], "order_completed");
    assert_eq!(items[0]["channel"], "server");
    assert_eq!(
        items[0]["data"],
        serde_json::json!({"order_id": "ORD-SDK-1"}),
        "{sdk}: undeclared and nested properties are never stored"
    );
    // The identify: the e-mail address finds the person; the declared trait is kept.
    let found = app
        .post_json(
            "/v1/lookup/subjects",
            Some(&compliance),
            &serde_json::json!({"email": format!("{user_id}@example.com")}),
        )
        .await;
    assert_eq!(found.status(), StatusCode::OK, "{sdk}");
    assert_eq!(count_rows(&app, "subject_traits").await, 1, "{sdk}");
    let metrics = app.get("/metrics", None).await;
    assert_eq!(metrics.status(), StatusCode::OK);
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("custodia_tracking_total{outcome=\"no_purpose\"} 1"),
        "{sdk}: {metrics}"
    );
}

#[tokio::test]
#[cfg_attr(
    node_sdk_tests_unavailable,
    ignore = "Node.js is not installed here (apt-get install nodejs npm); .ci/run installs it and requires this test"
)]
async fn segments_node_sdk_is_collected_as_the_native_api_would() {
    events_from("segment", "sdk-user-segment").await;
}

#[tokio::test]
#[cfg_attr(
    node_sdk_tests_unavailable,
    ignore = "Node.js is not installed here (apt-get install nodejs npm); .ci/run installs it and requires this test"
)]
async fn rudderstacks_node_sdk_is_collected_with_its_gzip_bodies() {
    events_from("rudderstack", "sdk-user-rudder").await;
}

#[tokio::test]
#[cfg_attr(
    python_sdk_tests_unavailable,
    ignore = "Segment's Python library is not installed here (pip install -r tests/sdk/requirements.txt); .ci/run installs it and requires this test"
)]
async fn segments_python_library_is_collected_with_its_gzip_bodies() {
    events_from("python", "sdk-user-python").await;
}
