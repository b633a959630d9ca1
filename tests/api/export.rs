//! Art. 15/20 exports through the API: every value written for the person is in the export, in
//! both forms, and nothing of anyone else; the processing context comes from the policy; the
//! access log shows who read the data; the export itself is audited.

use std::collections::BTreeSet;
use std::io::Read;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp};

/// Everything one person can have, with values unique to `tag`; returns those values.
async fn populate(app: &TestApp, token: &str, subject: &str, tag: &str) -> Vec<String> {
    let email = format!("{tag}.mail@example.org");
    let phone = "+4930123456".to_owned();
    let name = format!("Name {tag}");
    let put = app
        .request(
            Method::PUT,
            &format!("/v1/subjects/{subject}"),
            Some(token),
            Some(&json!({"identifiers": {"email": email, "phone": phone},
                         "traits": {"country": "PT", "full_name": name, "loyalty_tier": "gold"}})),
        )
        .await;
    assert_eq!(put.status(), StatusCode::CREATED);
    let mut values = vec![subject.to_owned(), email, name];
    for i in 0..3 {
        let message = format!("message {i} from {tag}, with \"quotes\"");
        let stored = app
            .post_json(
                "/v1/interactions",
                Some(token),
                &json!({"id": format!("{tag}-evt-{i}"), "subject_id": subject,
                        "type": "support_chat", "channel": "chat",
                        "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["support"],
                        "data": {"message": message, "order_total": 12.5 + i as f64}}),
            )
            .await;
        assert_eq!(stored.status(), StatusCode::CREATED);
        values.push(format!("{tag}-evt-{i}"));
        values.push(message);
    }
    let fraud = app
        .post_json(
            "/v1/interactions",
            Some(token),
            &json!({"id": format!("{tag}-login"), "subject_id": subject, "type": "login",
                    "channel": "web", "occurred_at": "2026-11-02T10:00:00Z",
                    "purposes": ["fraud_prevention"],
                    "data": {"ip_address": format!("203.0.113.{}", tag.len())}}),
        )
        .await;
    assert_eq!(fraud.status(), StatusCode::CREATED);
    values.push(format!("{tag}-login"));
    let consent = app
        .post_json(
            &format!("/v1/subjects/{subject}/consents"),
            Some(token),
            &json!({"id": format!("{tag}-consent"), "purpose": "marketing", "status": "granted",
                    "source": "web", "method": "checkbox",
                    "notice": {"id": "newsletter", "version": "3"},
                    "evidence": {"user_agent": format!("Agent/{tag}")}}),
        )
        .await;
    assert_eq!(consent.status(), StatusCode::CREATED);
    values.push(format!("{tag}-consent"));
    values.push(format!("Agent/{tag}"));
    let objection = app
        .post_json(
            &format!("/v1/subjects/{subject}/objections"),
            Some(token),
            &json!({"purpose": "analytics"}),
        )
        .await;
    assert_eq!(objection.status(), StatusCode::OK);
    values
}

async fn export_json(app: &TestApp, token: &str, subject: &str) -> (String, Value) {
    let response = app
        .get(&format!("/v1/subjects/{subject}/export"), Some(token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let text = response.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    (text, body)
}

fn unzip(bytes: &[u8]) -> std::collections::BTreeMap<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut files = std::collections::BTreeMap::new();
    for index in 0..archive.len() {
        let mut file = archive.by_index(index).unwrap();
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        files.insert(file.name().to_owned(), text);
    }
    files
}

#[tokio::test]
async fn the_export_holds_every_value_of_the_person_and_nothing_of_anyone_else() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let support = app.token_for("support").await;
    let mine = populate(&app, &collector, "cust-export", "alpha").await;
    let theirs = populate(&app, &collector, "cust-other", "omega").await;
    let restricted = app
        .post_json(
            "/v1/subjects/cust-export/restriction",
            Some(&compliance),
            &json!({}),
        )
        .await;
    assert_eq!(restricted.status(), StatusCode::OK);
    // A read by support before the restriction would show in the access log; read the other
    // person's data too, which must not.
    let read = app
        .get(
            "/v1/subjects/cust-other/interactions?purpose=support",
            Some(&support),
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    let consents = app
        .get("/v1/subjects/cust-export/consents", Some(&compliance))
        .await;
    assert_eq!(consents.status(), StatusCode::OK);

    let (text, body) = export_json(&app, &compliance, "cust-export").await;
    for value in &mine {
        let encoded = serde_json::to_string(value).unwrap();
        assert!(text.contains(&encoded), "{value} missing from the export");
    }
    for value in theirs.iter().filter(|v| !v.starts_with('+')) {
        assert!(!text.contains(value.as_str()), "{value} of another person");
    }
    assert_eq!(body["format"], "custodia.export/1");
    // When an erasure now would reach every backup: the end of the key epoch plus the backup
    // retention (the defaults: a day, 30 days).
    let erasure = &body["erasure"];
    assert_eq!(erasure["key_epoch_seconds"], 86_400, "{erasure}");
    assert_eq!(erasure["backup_retention_seconds"], 2_592_000, "{erasure}");
    let bound: chrono::DateTime<chrono::Utc> = erasure["backups_unreadable_by_if_erased_now"]
        .as_str()
        .expect("the bound")
        .parse()
        .unwrap();
    let from_now = bound - chrono::Utc::now();
    assert!(
        from_now > chrono::Duration::days(31)
            && from_now <= chrono::Duration::days(31) + chrono::Duration::hours(1),
        "{bound}"
    );
    assert_eq!(body["subject"]["subject_id"], "cust-export");
    assert_eq!(
        body["subject"]["identifiers"],
        json!({"email": "alpha.mail@example.org", "phone": "+4930123456"})
    );
    assert_eq!(
        body["subject"]["traits"],
        json!({"country": "PT", "full_name": "Name alpha", "loyalty_tier": "gold"})
    );
    assert!(body["restriction"]["since"].is_string());
    assert_eq!(body["objections"][0]["purpose"], "analytics");
    assert_eq!(
        body["consent_state"],
        json!([{"purpose": "marketing", "status": "granted",
                "since": body["consents"][0]["recorded_at"]}])
    );
    assert_eq!(body["consents"].as_array().unwrap().len(), 1);
    assert_eq!(body["consents"][0]["id"], "alpha-consent");
    // Proof of the exact text the person saw: its hash, language and where it is published.
    assert_eq!(
        body["consents"][0]["notice"],
        json!({"id": "newsletter", "version": "3", "language": "en",
               "text_sha256": "5b11ab05604ffabf38ef6a4bcdc12d742156a197a05631c7534cada6035b4972",
               "url": "https://shop.example.com/privacy/notices/newsletter/3/en"})
    );
    assert_eq!(
        body["consents"][0]["evidence"],
        json!({"user_agent": "Agent/alpha"})
    );

    let interactions = body["interactions"].as_array().unwrap();
    assert_eq!(interactions.len(), 4);
    let chat = interactions
        .iter()
        .find(|i| i["id"] == "alpha-evt-1")
        .unwrap();
    assert_eq!(
        chat["data"],
        json!({"message": "message 1 from alpha, with \"quotes\"", "order_total": 13.5})
    );
    assert_eq!(chat["purposes"], json!(["support"]));
    assert_eq!(chat["collected_for"], json!(["support"]));
    assert_eq!(
        chat["categories"],
        json!(["commerce.order", "user.content"])
    );
    assert_eq!(chat["occurred_at"], "2026-11-01T10:00:00.000000Z");

    // The processing context, from the policy: restricted, so no basis is in effect now.
    let processing = body["processing"].as_array().unwrap();
    let purposes: Vec<&str> = processing
        .iter()
        .map(|p| p["purpose"].as_str().unwrap())
        .collect();
    assert_eq!(
        purposes,
        ["analytics", "fraud_prevention", "marketing", "support"]
    );
    let support_purpose = &processing[3];
    assert_eq!(support_purpose["interactions"], 3);
    assert_eq!(support_purpose["sources"], json!(["chat"]));
    assert_eq!(support_purpose["legal_basis_in_effect"], false);
    assert_eq!(support_purpose["not_in_effect_because"], "restricted");
    assert!(support_purpose["retention_days"].as_u64().unwrap() > 0);
    assert!(support_purpose["description"].as_str().unwrap().len() > 3);

    // Who read the person's data: the consent read by compliance, not support's read of the
    // other person.
    let access_log = body["access_log"].as_array().unwrap();
    let actions: Vec<&str> = access_log
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["consents.read"]);
    assert_eq!(access_log[0]["role"], "compliance");

    // The export is audited, naming the person by pseudonym only; a second export lists the
    // first in its access log.
    let audit: Value = app
        .get_json(
            "/v1/audit?subject_id=cust-export&action=subjects.export",
            Some(&compliance),
        )
        .await;
    let entry = &audit["entries"][0];
    assert_eq!(entry["decision"], "allow");
    assert_eq!(entry["records"], 1 + 4 + 1);
    assert!(entry["categories"]
        .as_array()
        .unwrap()
        .contains(&json!("identifiers")));
    assert!(!audit.to_string().contains("cust-export"));
    let (_, again) = export_json(&app, &compliance, "cust-export").await;
    let last = again["access_log"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["action"], "subjects.export");

    // The portable form: the same values, in CSV files.
    let response = app
        .get(
            "/v1/subjects/cust-export/export?format=csv",
            Some(&compliance),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/zip");
    let files = unzip(&response.bytes().await.unwrap());
    let names: BTreeSet<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "README.txt",
            "access_log.csv",
            "consent_records.jsonld",
            "consent_state.csv",
            "consents.csv",
            "interactions.csv",
            "processing.csv",
            "rights.csv",
            "subject.csv",
        ])
    );
    let all: String = files.values().cloned().collect();
    for value in &mine {
        let quoted = value.replace('"', "\"\"");
        assert!(all.contains(&quoted), "{value} missing from the CSV export");
    }
    for value in theirs.iter().filter(|v| !v.starts_with('+')) {
        assert!(!all.contains(value.as_str()), "{value} of another person");
    }
    assert!(files["subject.csv"].contains("identifier,email,alpha.mail@example.org\r\n"));
    assert!(files["interactions.csv"]
        .contains("alpha-evt-2,support_chat,chat,2026-11-01T10:00:00.000000Z,"));
    assert!(files["interactions.csv"].contains(
        "Z,support,support,message,user.content,\"message 2 from alpha, with \"\"quotes\"\"\"\r\n"
    ));
    assert!(files["rights.csv"].contains("objection,analytics,"));
    // The consent statements as ISO/IEC TS 27560 records too, the same as in the JSON export.
    let records: Value = serde_json::from_str(&files["consent_records.jsonld"]).unwrap();
    assert_eq!(records["@graph"], again["consent_records"]["@graph"]);
    assert!(!records["@graph"].as_array().unwrap().is_empty());
    assert!(files["rights.csv"].contains("restriction,,"));
    assert!(
        files["README.txt"].contains("Were the person erased now, that would be by 20"),
        "the CSV export states the erasure bound too"
    );

    let verify: Value = app.get_json("/v1/audit/verify", Some(&compliance)).await;
    assert_eq!(verify["ok"], true);
}

#[tokio::test]
async fn exports_refuse_what_they_must() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    populate(&app, &collector, "cust-x", "xray").await;
    assert_problem(
        app.get("/v1/subjects/cust-x/export", Some(&collector))
            .await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    assert_problem(
        app.get("/v1/subjects/nobody/export", Some(&compliance))
            .await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;
    assert_problem(
        app.get("/v1/subjects/cust-x/export?format=xml", Some(&compliance))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_format",
    )
    .await;
    assert_problem(
        app.get("/v1/subjects/cust-x/export?limit=3", Some(&compliance))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    // Refusals export nothing and are audited as denials, not as exports.
    let audit: Value = app
        .get_json("/v1/audit?action=subjects.export", Some(&compliance))
        .await;
    assert!(audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["decision"] == "deny"));
}

#[tokio::test]
async fn a_large_export_streams_every_interaction_exactly_once() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let total = 1_234;
    for start in (0..total).step_by(500) {
        let items: Vec<Value> = (start..(start + 500).min(total))
            .map(|i| {
                json!({"id": format!("big-{i}"), "subject_id": "cust-big", "type": "visit",
                       "channel": "web", "occurred_at": "2026-11-01T10:00:00Z",
                       "purposes": ["support"], "data": {"page_url": format!("/p/{i}")}})
            })
            .collect();
        let response = app
            .post_json(
                "/v1/interactions/batch",
                Some(&collector),
                &json!({"interactions": items}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let (_, body) = export_json(&app, &compliance, "cust-big").await;
    let ids: Vec<&str> = body["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    let distinct: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), total);
    assert_eq!(distinct.len(), total);
    assert_eq!(body["processing"][0]["interactions"], total);

    let response = app
        .get("/v1/subjects/cust-big/export?format=csv", Some(&compliance))
        .await;
    let files = unzip(&response.bytes().await.unwrap());
    // A header and one row per interaction (each has one field).
    assert_eq!(files["interactions.csv"].lines().count(), total + 1);
    for i in [0, 499, 500, 1_233] {
        assert!(files["interactions.csv"].contains(&format!("big-{i},visit,web,")));
    }
}
