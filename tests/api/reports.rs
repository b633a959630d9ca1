//! Consent reporting through the API: exact counts per purpose and notice version, the opt-in
//! rate and the share of GPC withdrawals, in JSON and CSV, audited, for compliance only.

use chrono::{Datelike, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp};

async fn statement(app: &TestApp, token: &str, id: &str, purpose: &str, granted: bool, gpc: bool) {
    let mut body = json!({"purpose": purpose, "status": if granted { "granted" } else { "withdrawn" },
                          "source": "web", "method": "checkbox"});
    if granted {
        body["notice"] = json!({"id": "newsletter", "version": "3"});
    }
    let mut request = app
        .client
        .post(format!("{}/v1/subjects/{id}/consents", app.address))
        .bearer_auth(token)
        .json(&body);
    if gpc {
        request = request.header("Sec-GPC", "1");
    }
    assert_eq!(request.send().await.unwrap().status(), StatusCode::CREATED);
}

fn row<'a>(rows: &'a [Value], purpose: &str, notice: Option<&str>) -> &'a Value {
    rows.iter()
        .find(|r| r["purpose"] == purpose && r["notice_version"].as_str() == notice)
        .unwrap_or_else(|| panic!("no row for {purpose} {notice:?} in {rows:?}"))
}

#[tokio::test]
async fn consent_reports_count_grants_withdrawals_gpc_and_objections_per_notice() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    statement(&app, &collector, "rep-a", "marketing", true, false).await;
    statement(&app, &collector, "rep-b", "marketing", true, false).await;
    statement(&app, &collector, "rep-b", "marketing", false, false).await;
    // A GPC signal withdraws every purpose it covers first, then the explicit grant is recorded.
    statement(&app, &collector, "rep-g", "marketing.email", true, true).await;
    let response = app
        .post_json(
            "/v1/subjects/rep-d/objections",
            Some(&collector),
            &json!({"purpose": "analytics"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);

    let today = Utc::now().date_naive().to_string();
    let compliance = app.token_for("compliance").await;
    let response = app
        .get(
            &format!("/v1/reports/consents?from={today}&to={today}&bucket=day"),
            Some(&compliance),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["bucket"], "day");
    let rows = report["rows"].as_array().unwrap();
    assert!(rows.iter().all(|r| r["period"] == today));
    let granted = row(rows, "marketing", Some("3"));
    assert_eq!(
        (granted["grants"].clone(), granted["withdrawals"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(granted["notice_id"], "newsletter");
    let withdrawn = row(rows, "marketing", None);
    assert_eq!(
        (
            withdrawn["withdrawals"].clone(),
            withdrawn["gpc_withdrawals"].clone()
        ),
        (json!(2), json!(1))
    );
    // Analytics rests on legitimate interest: the GPC signal objected to it (no consent to
    // withdraw), beside the explicit objection.
    let analytics = row(rows, "analytics", None);
    assert_eq!(
        (
            analytics["withdrawals"].clone(),
            analytics["objections"].clone()
        ),
        (json!(0), json!(2))
    );
    assert_eq!(analytics["opt_in_rate"], Value::Null);
    assert_eq!(row(rows, "marketing.email", Some("3"))["grants"], 1);
    assert_eq!(rows.len(), 7, "{rows:?}");
    let totals = report["totals"].as_array().unwrap();
    let marketing = totals.iter().find(|t| t["purpose"] == "marketing").unwrap();
    assert_eq!(marketing["opt_in_rate"], 0.5);
    assert_eq!(marketing["gpc_share"], 0.5);
    assert!(marketing.get("period").is_none());
    let sms = totals
        .iter()
        .find(|t| t["purpose"] == "marketing.sms")
        .unwrap();
    assert_eq!(
        (sms["opt_in_rate"].clone(), sms["gpc_share"].clone()),
        (json!(0.0), json!(1.0))
    );

    // The same as CSV, narrowed to a purpose, by ISO week.
    let response = app
        .get(
            &format!("/v1/reports/consents?from={today}&to={today}&purpose=marketing&format=csv"),
            Some(&compliance),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "period,purpose,notice_id,notice_version,grants,withdrawals,gpc_withdrawals,objections,opt_in_rate,gpc_share"
    );
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[1].contains(",marketing,,,0,2,1,0,0.0000,0.5000"),
        "{text}"
    );
    assert!(
        lines[2].contains(",marketing,newsletter,3,2,0,0,0,1.0000,"),
        "{text}"
    );
    let week = chrono::Utc::now().date_naive().iso_week();
    assert!(lines[1].starts_with(&format!("{}-W{:02},", week.year(), week.week())));

    // Each reading is audited; nobody is named.
    let audit: Value = app
        .get("/v1/audit?action=reports.consents", Some(&compliance))
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries
        .iter()
        .all(|e| e["subjects"].as_array().is_none_or(Vec::is_empty)));

    // Refusals: a marketer; bad queries; an unknown purpose.
    let marketer = app.token_for("marketer").await;
    let response = app
        .get(
            &format!("/v1/reports/consents?from={today}&to={today}"),
            Some(&marketer),
        )
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "action_not_permitted").await;
    for query in [
        format!("from={today}"),
        format!("from=2026-1-1&to={today}"),
        "from=2026-02-01&to=2026-01-01".to_owned(),
        "from=2020-01-01&to=2026-01-01".to_owned(),
        format!("from={today}&to={today}&bucket=month"),
        format!("from={today}&to={today}&format=xml"),
        format!("from={today}&to={today}&colour=red"),
    ] {
        let response = app
            .get(&format!("/v1/reports/consents?{query}"), Some(&compliance))
            .await;
        assert_problem(response, StatusCode::BAD_REQUEST, "invalid_query").await;
    }
    let response = app
        .get(
            &format!("/v1/reports/consents?from={today}&to={today}&purpose=nope"),
            Some(&compliance),
        )
        .await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_purpose",
    )
    .await;
}
