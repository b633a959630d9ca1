//! Consent standards (docs/standards.md): IAB TCF v2.2 and GPP strings in — encoded here by the
//! IAB Tech Lab's own libraries (`@iabtechlabtcf/core`, `@iabgpp/cmpapi`, driven by
//! `tests/sdk/consent-strings.mjs` with the vendor list `tests/sdk/vendor-list.json`) and by
//! hand for each mapping rule — ISO/IEC TS 27560 records and the DPV record of processing out,
//! checked with rdflib (`tests/sdk/check_jsonld.py`) against the shipped vocabulary, and the GPC
//! support resource.
//!
//! Needs Node.js and Python with rdflib, like the SDK tests: ignored with the reason where
//! `build.rs` did not find them, unless `CUSTODIA_REQUIRE_SDK_TESTS=1` (`.ci/run`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, contains_in_any_encoding, count_rows, custodia_command, database_dump,
    sample_policy_dir, spawn_app, TestApp,
};

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// Strings encoded by the IAB Tech Lab's libraries from a spec (see consent-strings.mjs).
fn iab(spec: Value) -> Value {
    crate::sdks::ensure_node_sdks();
    let output = Command::new("node")
        .arg(sdk_dir().join("consent-strings.mjs"))
        .arg(spec.to_string())
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "consent-strings.mjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the script prints JSON")
}

/// Checks JSON-LD with rdflib (`record` or `ropa`); returns what the script printed.
fn rdflib_check(kind: &str, document: &Value) -> (bool, String) {
    let mut child = Command::new("python3")
        .arg(sdk_dir().join("check_jsonld.py"))
        .arg(kind)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(document.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A TCF v2 core string built bit by bit (the format's own field table), for the mapping
/// rules: purposes consented, vendors consented, special features, policy version, age.
pub(crate) struct HandTc {
    pub(crate) version: u64,
    pub(crate) policy_version: u64,
    pub(crate) updated_deciseconds: u64,
    pub(crate) purposes: Vec<u64>,
    pub(crate) vendors: Vec<u64>,
    pub(crate) special_features: Vec<u64>,
}

impl HandTc {
    pub(crate) fn new() -> HandTc {
        HandTc {
            version: 2,
            policy_version: 5,
            updated_deciseconds: (chrono::Utc::now().timestamp_millis() / 100) as u64,
            purposes: vec![],
            vendors: vec![],
            special_features: vec![],
        }
    }

    pub(crate) fn encode(&self) -> String {
        let mut bits: Vec<bool> = Vec::new();
        let mut put = |value: u64, width: usize| {
            for i in (0..width).rev() {
                bits.push((value >> i) & 1 == 1);
            }
        };
        let set = |numbers: &[u64], width: usize| -> Vec<bool> {
            (1..=width as u64).map(|n| numbers.contains(&n)).collect()
        };
        put(self.version, 6);
        put(self.updated_deciseconds, 36); // Created
        put(self.updated_deciseconds, 36); // LastUpdated
        put(10, 12); // CmpId
        put(1, 12); // CmpVersion
        put(1, 6); // ConsentScreen
        put(4, 6); // ConsentLanguage "EN": E = 4, N = 13
        put(13, 6);
        put(100, 12); // VendorListVersion
        put(self.policy_version, 6);
        put(1, 1); // IsServiceSpecific
        put(0, 1); // UseNonStandardTexts
        let mut fields = set(&self.special_features, 12);
        fields.extend(set(&self.purposes, 24));
        fields.extend(vec![false; 24]); // PurposesLITransparency
        for bit in fields {
            put(u64::from(bit), 1);
        }
        put(0, 1); // PurposeOneTreatment
        put(3, 6); // PublisherCC "DE": D = 3, E = 4
        put(4, 6);
        let max = self.vendors.iter().copied().max().unwrap_or(0);
        put(max, 16);
        put(0, 1); // bit field
        for vendor in 1..=max {
            put(u64::from(self.vendors.contains(&vendor)), 1);
        }
        put(0, 16); // no vendor legitimate interests
        put(0, 1);
        put(0, 12); // no publisher restrictions
        while bits.len() % 8 != 0 {
            bits.push(false);
        }
        let bytes: Vec<u8> = bits
            .chunks(8)
            .map(|byte| {
                byte.iter()
                    .fold(0u8, |acc, &bit| (acc << 1) | u8::from(bit))
            })
            .collect();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}

const SUBJECT: &str = "tcf-visitor-1";

async fn post(app: &TestApp, token: &str, subject: &str, body: Value) -> reqwest::Response {
    app.post_json(
        &format!("/v1/subjects/{subject}/consents"),
        Some(token),
        &body,
    )
    .await
}

fn strings_call(tcf: Option<&str>, gpp: Option<&str>) -> Value {
    let mut body = json!({"source": "web", "method": "banner",
                          "notice": {"id": "cookies", "version": "1"}});
    if let Some(tcf) = tcf {
        body["tcf_string"] = json!(tcf);
    }
    if let Some(gpp) = gpp {
        body["gpp_string"] = json!(gpp);
    }
    body
}

fn statuses(answer: &Value) -> Vec<(String, String)> {
    answer["statements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["purpose"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The payload of a compact JWS receipt, as JSON, once its signature verifies with the key
/// the service publishes.
async fn verified_payload(app: &TestApp, receipt: &Value) -> Value {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwks: Value = app.get_json("/v1/consents/receipt-key", None).await;
    let public = b64.decode(jwks["keys"][0]["x"].as_str().unwrap()).unwrap();
    let parts: Vec<&str> = receipt.as_str().unwrap().split('.').collect();
    assert_eq!(parts.len(), 3);
    let signature = b64.decode(parts[2]).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("the receipt verifies with the published key");
    serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap()
}

fn sha256(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

#[tokio::test]
#[cfg_attr(
    any(node_sdk_tests_unavailable, python_sdk_tests_unavailable),
    ignore = "needs Node.js and Python with rdflib (npm and pip install tests/sdk)"
)]
async fn strings_encoded_by_the_iab_libraries_become_receipted_statements_with_sealed_evidence() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let strings = iab(json!({
        "tcf": {"purposes": [1, 3, 4], "vendors": [755], "specialFeatures": [1]},
        "gpp": {"sections": {"usnat": {"SaleOptOut": 2, "SaleOptOutNotice": 1}}},
    }));
    let (tcf, gpp) = (
        strings["tcf"].as_str().unwrap(),
        strings["gpp"].as_str().unwrap(),
    );
    let mut body = strings_call(Some(tcf), Some(gpp));
    body["id"] = json!("banner-42");
    let response = post(&app, &collector, SUBJECT, body.clone()).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        statuses(&answer),
        [("marketing.personalization".to_owned(), "granted".to_owned())]
    );
    let statement = &answer["statements"][0];
    assert_eq!(statement["id"], "banner-42/marketing.personalization");
    assert_eq!(
        statement["consent_strings"],
        json!([{"standard": "tcf", "sha256": sha256(tcf)}, {"standard": "gpp", "sha256": sha256(gpp)}])
    );
    // The receipt names the strings too.
    let claims = verified_payload(&app, &statement["receipt"]).await;
    assert_eq!(claims["consent_strings"][0]["sha256"], sha256(tcf));

    // A retried call records nothing new.
    let again = post(&app, &collector, SUBJECT, body).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(count_rows(&app, "consent_records").await, 1);

    // The strings are evidence: decrypted for compliance, never stored in clear.
    let state = app
        .get_json(
            &format!("/v1/subjects/{SUBJECT}/consents"),
            Some(&compliance),
        )
        .await;
    let evidence = &state["history"][0]["evidence"];
    assert_eq!(evidence["tcf_string"], tcf);
    assert_eq!(evidence["gpp_string"], gpp);
    assert_eq!(state["history"][0]["consent_strings"][1]["standard"], "gpp");
    let dump = database_dump(&app).await;
    assert!(!contains_in_any_encoding(&dump, tcf));
    assert!(!contains_in_any_encoding(&dump, gpp));
}

#[tokio::test]
#[cfg_attr(
    node_sdk_tests_unavailable,
    ignore = "needs Node.js (npm install in tests/sdk)"
)]
async fn each_mapping_rule_decides_as_documented() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let cases: Vec<(&str, Value, &str)> = vec![
        // Purposes 3 and 4 with vendor 755: granted.
        (
            "both purposes",
            json!({"tcf": {"purposes": [3, 4], "vendors": [755]}}),
            "granted",
        ),
        // One of the two TCF purposes mapped to it is missing: withdrawn.
        (
            "purpose 4 missing",
            json!({"tcf": {"purposes": [3], "vendors": [755]}}),
            "withdrawn",
        ),
        // The purposes, but another vendor's consent: withdrawn.
        (
            "vendor missing",
            json!({"tcf": {"purposes": [3, 4], "vendors": [756]}}),
            "withdrawn",
        ),
        // The publisher forbids purpose 3 for vendor 755 (restriction type 0): withdrawn.
        (
            "restricted",
            json!({"tcf": {"purposes": [3, 4], "vendors": [755],
            "restrictions": [{"purpose": 3, "type": 0, "vendor": 755}]}}),
            "withdrawn",
        ),
        // GPP: an opt-out of sale, sharing or targeted advertising withdraws.
        (
            "usnat sale",
            json!({"gpp": {"sections": {"usnat": {"SaleOptOut": 1, "SaleOptOutNotice": 1}}}}),
            "withdrawn",
        ),
        (
            "usca sharing",
            json!({"gpp": {"sections": {"usca": {"SharingOptOut": 1, "SharingOptOutNotice": 1}}}}),
            "withdrawn",
        ),
        (
            "usva targeted",
            json!({"gpp": {"sections": {"usva": {"TargetedAdvertisingOptOut": 1, "TargetedAdvertisingOptOutNotice": 1}}}}),
            "withdrawn",
        ),
        // GPP carrying a TCF EU v2 section reads it like a TC string.
        (
            "gpp tcfeuv2",
            json!({"gpp": {"tcfeuv2": {"purposes": [3, 4], "vendors": [755]}}}),
            "granted",
        ),
        // A TC string's grant loses to a GPP opt-out in the same call.
        (
            "withdrawal wins",
            json!({"tcf": {"purposes": [3, 4], "vendors": [755]},
            "gpp": {"sections": {"usnat": {"TargetedAdvertisingOptOut": 1, "TargetedAdvertisingOptOutNotice": 1}}}}),
            "withdrawn",
        ),
    ];
    for (index, (name, spec, expected)) in cases.into_iter().enumerate() {
        let strings = iab(spec);
        let body = strings_call(strings["tcf"].as_str(), strings["gpp"].as_str());
        let response = post(&app, &collector, &format!("rule-{index}"), body).await;
        assert_eq!(response.status(), StatusCode::CREATED, "{name}");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(
            statuses(&answer),
            [("marketing.personalization".to_owned(), expected.to_owned())],
            "{name}"
        );
    }
    // "Did not opt out" is not consent: nothing recorded.
    let strings =
        iab(json!({"gpp": {"sections": {"usnat": {"SaleOptOut": 2, "SaleOptOutNotice": 1}}}}));
    let before = count_rows(&app, "consent_records").await;
    let response = post(
        &app,
        &collector,
        "rule-none",
        strings_call(None, strings["gpp"].as_str()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["statements"], json!([]));
    assert_eq!(count_rows(&app, "consent_records").await, before);

    // A GPP section's GPC field acts as Sec-GPC: 1 (withdrawals with method gpc, objections).
    let strings =
        iab(json!({"gpp": {"sections": {"usca": {"Gpc": true, "GpcSegmentIncluded": true}}}}));
    let response = post(
        &app,
        &collector,
        "rule-gpc",
        strings_call(None, strings["gpp"].as_str()),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    let applied = answer["gpc_applied"].as_array().unwrap();
    assert!(applied.contains(&json!("marketing")), "{answer}");
    assert!(applied.contains(&json!("analytics")), "{answer}");
    let compliance = app.token_for("compliance").await;
    let state = app
        .get_json("/v1/subjects/rule-gpc/consents", Some(&compliance))
        .await;
    let methods: Vec<&str> = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["method"].as_str().unwrap())
        .collect();
    assert!(
        !methods.is_empty() && methods.iter().all(|m| *m == "gpc"),
        "{state}"
    );
    // Each GPC withdrawal keeps its evidence: the signal, and the GPP string it came in.
    let gpp = strings["gpp"].as_str().unwrap();
    for statement in state["history"].as_array().unwrap() {
        assert_eq!(statement["evidence"]["signal"], "GPC field of a GPP string");
        assert_eq!(statement["evidence"]["gpp_string"], gpp);
        assert_eq!(statement["consent_strings"][0]["sha256"], sha256(gpp));
    }
}

#[tokio::test]
async fn hand_built_strings_follow_each_rule_and_bad_ones_are_refused_storing_nothing() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let call = |tc: &HandTc| strings_call(Some(&tc.encode()), None);
    let mut tc = HandTc::new();
    tc.purposes = vec![1, 3, 4];
    tc.vendors = vec![2, 755];
    let response = post(&app, &collector, "hand-1", call(&tc)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(statuses(&response.json().await.unwrap())[0].1, "granted");
    tc.vendors = vec![754];
    let response = post(&app, &collector, "hand-2", call(&tc)).await;
    assert_eq!(statuses(&response.json().await.unwrap())[0].1, "withdrawn");
    let stored = count_rows(&app, "consent_records").await;
    let subjects = count_rows(&app, "subjects").await;

    let mut outdated = HandTc::new();
    outdated.purposes = vec![3, 4];
    outdated.policy_version = 2;
    let mut stale = HandTc::new();
    stale.updated_deciseconds -= 400 * 24 * 3600 * 10;
    let mut v1 = HandTc::new();
    v1.version = 1;
    let good = HandTc::new().encode();
    let refusals: Vec<(Value, &str)> = vec![
        (call(&outdated), "tcf_policy_outdated"),
        (call(&stale), "tcf_string_stale"),
        (call(&v1), "tcf_version_unsupported"),
        // A TCF v1 consent string as CMPs wrote them before 2020.
        (
            strings_call(Some("BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA"), None),
            "tcf_version_unsupported",
        ),
        (
            strings_call(Some(&good[..good.len() / 2]), None),
            "invalid_tcf_string",
        ),
        (
            strings_call(Some("C not base64!"), None),
            "invalid_tcf_string",
        ),
        (strings_call(Some(""), None), "invalid_tcf_string"),
        (
            strings_call(None, Some("not a gpp string")),
            "invalid_gpp_string",
        ),
        (
            strings_call(None, Some("DBABLA~CEAQAAAAAABA.YA~extra")),
            "invalid_gpp_string",
        ),
        (strings_call(None, Some("DBABLA")), "invalid_gpp_string"),
        // The retired US Privacy section.
        (
            strings_call(None, Some("DBABTA~1YNN")),
            "gpp_section_outdated",
        ),
    ];
    for (body, code) in refusals {
        let response = post(&app, &collector, "hand-refused", body.clone()).await;
        assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, code).await;
    }
    // Strings and a purpose of its own: refused.
    let mut both = call(&tc);
    both["purpose"] = json!("marketing");
    both["status"] = json!("granted");
    let response = post(&app, &collector, "hand-refused", both).await;
    assert_problem(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "consent_string_with_purpose",
    )
    .await;
    assert_eq!(count_rows(&app, "consent_records").await, stored);
    assert_eq!(count_rows(&app, "subjects").await, subjects);
}

#[tokio::test]
#[cfg_attr(
    python_sdk_tests_unavailable,
    ignore = "needs Python with rdflib (pip install -r tests/sdk/requirements.txt)"
)]
async fn records_and_the_record_of_processing_are_json_ld_with_every_mandatory_field() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let mut tc = HandTc::new();
    tc.purposes = vec![3, 4];
    tc.vendors = vec![755];
    let response = post(
        &app,
        &collector,
        SUBJECT,
        strings_call(Some(&tc.encode()), None),
    )
    .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json!({"purpose": "marketing.email", "status": "granted", "source": "web",
                      "method": "checkbox", "notice": {"id": "newsletter", "version": "3"}});
    let response = app
        .post_json(
            &format!("/v1/subjects/{SUBJECT}/consents?receipt=iso27560"),
            Some(&collector),
            &body,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let answer: Value = response.json().await.unwrap();
    let receipt = verified_payload(&app, &answer["receipt"]).await;
    assert_eq!(
        receipt["dct:conformsTo"]["@id"],
        "https://w3id.org/dpv/schema/dpv-27560#receipt-eu-gdpr"
    );
    let (ok, report) = rdflib_check("record", &receipt);
    assert!(ok, "the receipt: {report}");

    // A withdrawal without a notice, so that the record has both kinds of event.
    let body = json!({"purpose": "marketing.sms", "status": "withdrawn", "source": "web", "method": "toggle"});
    let response = app
        .post_json(
            &format!("/v1/subjects/{SUBJECT}/consents"),
            Some(&collector),
            &body,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);

    let response = app
        .get(
            &format!("/v1/subjects/{SUBJECT}/consents?format=iso27560"),
            Some(&compliance),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/ld+json"));
    let records: Value = response.json().await.unwrap();
    assert_eq!(records["@graph"].as_array().unwrap().len(), 3, "{records}");
    let (ok, report) = rdflib_check("record", &records);
    assert!(ok, "the records: {report}");

    let text = records.to_string();
    for term in [
        "dpv:PersonalisedAdvertising",
        "eu-gdpr:A6-1-a",
        "pd:EmailAddress",
        "dpv:ConsentGiven",
        "dpv:ConsentWithdrawn",
    ] {
        assert!(text.contains(term), "{term} in {text}");
    }

    // The same records in the access export.
    let export = app
        .get_json(&format!("/v1/subjects/{SUBJECT}/export"), Some(&compliance))
        .await;
    assert_eq!(export["consent_records"]["@graph"], records["@graph"]);

    let admin = app.token_for("admin").await;
    let response = app.get("/v1/ropa?format=dpv", Some(&admin)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let ropa: Value = response.json().await.unwrap();
    let (ok, report) = rdflib_check("ropa", &ropa);
    assert!(ok, "the record of processing: {report}");
    assert_eq!(ropa["dpv:hasProcess"].as_array().unwrap().len(), 8);

    // A checker that cannot fail is no checker: a record missing its controller and naming a
    // made-up DPV term is caught.
    let mut broken = records.clone();
    broken["@graph"][0]["dpv:hasProcess"]
        .as_object_mut()
        .unwrap()
        .remove("dpv:hasDataController");
    broken["@graph"][0]["dpv:hasLegalBasis"] = json!([{"@id": "dpv:MadeUpConsent"}]);
    let (ok, report) = rdflib_check("record", &broken);
    assert!(!ok);
    assert!(
        report.contains("hasDataController") && report.contains("MadeUpConsent"),
        "{report}"
    );
    // A role that only records consent sees the current statement of each of its purposes, as
    // in the JSON view: one event per record, no history.
    let marketing_withdrawal = json!({"purpose": "marketing.email", "status": "withdrawn",
                                      "source": "web", "method": "toggle"});
    let response = app
        .post_json(
            &format!("/v1/subjects/{SUBJECT}/consents"),
            Some(&collector),
            &marketing_withdrawal,
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let limited = app
        .get_json(
            &format!("/v1/subjects/{SUBJECT}/consents?format=iso27560"),
            Some(&collector),
        )
        .await;
    let events: Vec<usize> = limited["@graph"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["dpv:hasConsentStatus"].as_array().unwrap().len())
        .collect();
    assert_eq!(events, [1, 1, 1], "{limited}");
}

#[tokio::test]
async fn formats_and_the_gpc_resource_answer_as_declared() {
    let app = spawn_app().await;
    let response = app.get("/.well-known/gpc.json", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, json!({"gpc": true, "lastUpdate": "2026-11-01"}));
    let compliance = app.token_for("compliance").await;
    let response = app
        .get(
            &format!("/v1/subjects/{SUBJECT}/consents?format=xml"),
            Some(&compliance),
        )
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query").await;
    let collector = app.token_for("collector").await;
    let body =
        json!({"purpose": "marketing", "status": "withdrawn", "source": "web", "method": "toggle"});
    let response = app
        .post_json(
            &format!("/v1/subjects/{SUBJECT}/consents?receipt=pdf"),
            Some(&collector),
            &body,
        )
        .await;
    assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query").await;
    assert_eq!(count_rows(&app, "consent_records").await, 0);
}

/// The sample policy with `standards.toml` replaced by `text`.
fn policy_with_standards(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(sample_policy_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(dir.path().join("standards.toml"), text).unwrap();
    dir
}

#[test]
fn a_policy_naming_an_unknown_dpv_term_or_a_wrong_mapping_fails_policy_check_with_its_line() {
    let sample = std::fs::read_to_string(sample_policy_dir().join("standards.toml")).unwrap();
    let cases = [
        (
            "marketing = [\"dpv:Marketing\"]",
            "marketing = [\"dpv:Marketting\"]",
            "`dpv:Marketting` is not a term of the embedded DPV vocabulary",
        ),
        (
            "\"contact.email\" = [\"pd:EmailAddress\"]",
            "\"contact.email\" = [\"dpv:Marketing\"]",
            "`dpv:Marketing` is not a dpv:PersonalData",
        ),
        (
            "\"3\" = [\"marketing.personalization\"]",
            "\"12\" = [\"marketing.personalization\"]",
            "tcf purpose `12` is not a TCF v2.2 number",
        ),
        (
            "sale = [\"marketing.personalization\"]",
            "sale = [\"analytics\"]",
            "gpp sale names `analytics`, which does not rest on consent",
        ),
    ];
    for (from, to, message) in cases {
        assert!(sample.contains(from), "{from}");
        let text = sample.replace(from, to);
        let line = text.lines().position(|l| l.contains(to)).unwrap() + 1;
        let dir = policy_with_standards(&text);
        let output = custodia_command()
            .args(["policy", "check"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!output.status.success());
        let errors = String::from_utf8_lossy(&output.stderr);
        let expected = format!("standards.toml:{line}: ");
        assert!(
            errors
                .lines()
                .any(|l| l.contains(&expected) && l.contains(message)),
            "{expected}{message} in {errors}"
        );
    }
    // A second [controller] table (in another file) is one error, said once.
    let dir = policy_with_standards(&sample);
    let controller =
        &sample[sample.find("[controller]").unwrap()..sample.find("# DPV purposes").unwrap()];
    std::fs::write(dir.path().join("zz-controller.toml"), controller).unwrap();
    let output = custodia_command()
        .args(["policy", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let errors = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        errors.matches("duplicate [controller] table").count(),
        1,
        "{errors}"
    );
}

#[tokio::test]
async fn a_consent_event_carrying_a_tc_string_records_its_statements_and_a_bad_one_is_refused() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let compliance = app.token_for("compliance").await;
    let mut tc = HandTc::new();
    tc.purposes = vec![3, 4];
    tc.vendors = vec![755];
    let event = |id: &str, tcf: &str| {
        json!({"type": "track", "messageId": id, "userId": "user-tcf",
               "event": "Segment Consent Preference Updated",
               "context": {"consent": {"tcfString": tcf}, "ip": "198.51.100.7"}})
    };
    let response =
        crate::tracking::send(&app, "/v1/track", &write_key, &event("m-1", &tc.encode())).await;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["success"], true, "{answer}");
    let state = app
        .get_json("/v1/subjects/user-tcf/consents", Some(&compliance))
        .await;
    let history = state["history"].as_array().unwrap();
    assert_eq!(history.len(), 1, "{state}");
    assert_eq!(history[0]["purpose"], "marketing.personalization");
    assert_eq!(history[0]["status"], "granted");
    assert_eq!(history[0]["id"], "m-1/marketing.personalization");
    assert_eq!(history[0]["evidence"]["tcf_string"], tc.encode());
    let response =
        crate::tracking::send(&app, "/v1/track", &write_key, &event("m-2", "C garbage")).await;
    assert_problem(response, StatusCode::BAD_REQUEST, "invalid_tcf_string").await;
    assert_eq!(count_rows(&app, "consent_records").await, 1);
}

#[tokio::test]
#[cfg_attr(
    node_sdk_tests_unavailable,
    ignore = "needs Node.js (npm install in tests/sdk)"
)]
async fn as_publisher_the_publisher_segment_decides_and_special_features_count() {
    let sample = std::fs::read_to_string(sample_policy_dir().join("standards.toml")).unwrap();
    let start = sample.find("[tcf]").unwrap();
    let end = sample.find("# IAB GPP").unwrap();
    let text = format!(
        "{}[tcf]\n[tcf.purposes]\n\"1\" = [\"marketing.email\"]\n[tcf.special_features]\n\"1\" = [\"marketing.sms\"]\n\n{}",
        &sample[..start],
        &sample[end..]
    );
    let dir = policy_with_standards(&text);
    let path = dir.path().to_owned();
    let app = crate::helpers::spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let collector = app.token_for("collector").await;
    let call = |strings: &Value| {
        let mut body = strings_call(strings["tcf"].as_str(), None);
        body["notice"] = json!({"id": "privacy", "version": "4", "language": "en"});
        body
    };
    // Purpose 1 consented globally but not in the publisher segment: withdrawn; the special
    // feature opted into: granted.
    let strings = iab(json!({"tcf": {"purposes": [1], "vendors": [755], "specialFeatures": [1]}}));
    let response = post(&app, &collector, "publisher-1", call(&strings)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        statuses(&response.json().await.unwrap()),
        [
            ("marketing.email".to_owned(), "withdrawn".to_owned()),
            ("marketing.sms".to_owned(), "granted".to_owned())
        ]
    );
    // The publisher's own purpose consent: granted; no special feature: withdrawn.
    let strings = iab(json!({"tcf": {"publisherPurposes": [1]}}));
    let response = post(&app, &collector, "publisher-2", call(&strings)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        statuses(&response.json().await.unwrap()),
        [
            ("marketing.email".to_owned(), "granted".to_owned()),
            ("marketing.sms".to_owned(), "withdrawn".to_owned())
        ]
    );
}
