//! Policy loading and validation (every error names file:line), `GET /v1/policy` and
//! `GET /v1/ropa`.

use std::path::Path;

use custodia::policy::load_dir;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_problem, custodia_command, sample_policy_dir, spawn_app};

/// The documented digest: for each file in name order, its name, a NUL, its length as a
/// big-endian u64, its bytes.
fn expected_digest(dir: &Path) -> String {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for path in files {
        let text = std::fs::read(&path).unwrap();
        context.update(path.file_name().unwrap().to_str().unwrap().as_bytes());
        context.update(&[0]);
        context.update(&(text.len() as u64).to_be_bytes());
        context.update(&text);
    }
    hex::encode(context.finish())
}

#[tokio::test]
async fn get_policy_returns_the_loaded_policy_and_its_sha256() {
    let app = spawn_app().await;
    let token = app.token_for("compliance").await;

    let response = app.get("/v1/policy", Some(&token)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["sha256"], expected_digest(&sample_policy_dir()));
    assert_eq!(body["segments"]["min_size"], 10);
    assert_eq!(body["tracking"]["default_purposes"], json!(["analytics"]));
    assert_eq!(
        body["tracking"]["events"]["Order Completed"],
        json!(["support", "legal_compliance"])
    );
    assert_eq!(
        body["tracking"]["consent_categories"]["Advertising"],
        json!(["marketing"])
    );
    assert_eq!(body["tracking"]["merge_consent"], "most_restrictive");
    assert_eq!(
        body["tracking"]["consent_events"],
        json!(["Segment Consent Preference Updated"])
    );
    assert_eq!(
        body["tracking"]["consent_notice"],
        json!({"id": "cookies", "version": "1"})
    );
    let purposes = body["purposes"].as_array().unwrap();
    let find = |id: &str| purposes.iter().find(|p| p["id"] == id).unwrap().clone();
    assert_eq!(find("marketing.email")["legal_basis"], "consent");
    assert_eq!(find("marketing.email")["gpc"], true);
    let personalization = find("marketing.personalization");
    assert_eq!(personalization["categories_inherited"], true);
    assert_eq!(
        personalization["categories"],
        find("marketing")["categories"]
    );
    let roles: Vec<&str> = body["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "admin",
            "collector",
            "compliance",
            "marketer",
            "opendsr_controller",
            "support"
        ]
    );
    assert!(body["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| !f.as_str().unwrap().contains('/')));
}

/// Writes a policy directory: the sample's fields and roles plus the given files.
fn policy_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const FIELDS: &str = r#"
[[field]]
name = "email"
category = "contact.email"

[[field]]
name = "country"
category = "location.country"
segmentable = true
"#;

const ROLES: &str = r#"
[[role]]
id = "admin"
actions = ["keys.manage", "policy.read"]
"#;

const MARKETING: &str = r#"
[[purpose]]
id = "marketing"
legal_basis = "consent"
description = "Offers"
retention_days = 365
categories = ["contact", "location.country"]
"#;

/// Loads a directory made of the base files plus `extra` and returns the error lines.
fn errors_for(extra: &[(&str, &str)]) -> Vec<String> {
    let mut files = vec![("fields.toml", FIELDS), ("roles.toml", ROLES)];
    files.extend_from_slice(extra);
    let dir = policy_dir(&files);
    let errors = load_dir(dir.path()).expect_err("the policy is invalid");
    let prefix = format!("{}/", dir.path().display());
    errors
        .0
        .iter()
        .map(|e| e.to_string().replace(&prefix, ""))
        .collect()
}

#[test]
fn the_sample_policy_is_valid() {
    let policy = load_dir(&sample_policy_dir()).expect("the sample policy loads");
    for purpose in [
        "support",
        "analytics",
        "marketing",
        "marketing.email",
        "fraud_prevention",
    ] {
        assert!(policy.purpose(purpose).is_some(), "{purpose}");
    }
}

#[test]
fn unknown_keys_are_errors_at_their_line() {
    let errors = errors_for(&[(
        "p.toml",
        "[[purpose]]\nid = \"x\"\nlegal_basis = \"consent\"\ndescription = \"d\"\nretention_days = 1\ncategories = [\"contact\"]\ncolour = \"red\"\n",
    )]);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("p.toml:7: "), "{errors:?}");
    assert!(errors[0].contains("colour"), "{errors:?}");
}

#[test]
fn duplicate_ids_across_files_name_both_places() {
    let errors = errors_for(&[("a.toml", MARKETING), ("b.toml", MARKETING)]);
    assert_eq!(
        errors,
        ["b.toml:3: duplicate purpose `marketing` (first defined at a.toml:3)"]
    );
}

#[test]
fn unknown_parents_categories_actions_and_purposes_are_errors() {
    let purposes = format!(
        "{MARKETING}
[[purpose]]
id = \"analytics.web\"
legal_basis = \"legitimate_interest\"
description = \"Web analytics\"
retention_days = 30
categories = [\"location.country\"]

[[purpose]]
id = \"support\"
legal_basis = \"contract\"
description = \"Support\"
retention_days = 30
categories = [\"health.records\"]
"
    );
    let roles = "[[role]]\nid = \"marketer\"\nactions = [\"segments.query\", \"segments.drop\"]\npurposes = [\"marketing\", \"sales\"]\n";
    let errors = errors_for(&[("purposes.toml", &purposes), ("team.toml", roles)]);
    let expected = [
        "purposes.toml:21: unknown data category `health.records` in purpose `support`: no [[field]] belongs to it",
        "purposes.toml:10: unknown parent purpose `analytics` of `analytics.web`: declare it",
        "team.toml:3: unknown action `segments.drop` in role `marketer`",
        "team.toml:4: unknown purpose `sales` in role `marketer`",
    ];
    for (line, want) in expected.iter().enumerate() {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing error {line}: {want}\n got {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn bad_values_are_errors_at_their_line() {
    let errors = errors_for(&[(
        "p.toml",
        "[[purpose]]\nid = \"Marketing\"\nlegal_basis = \"consent\"\ndescription = \"d\"\nretention_days = 1\ncategories = [\"contact\"]\n\n[[purpose]]\nid = \"b\"\nlegal_basis = \"consent\"\ndescription = \"d\"\nretention_days = 0\ncategories = [\"contact\"]\n\n[segments]\nmin_size = 1\n",
    )]);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("p.toml:2: `Marketing` is not a valid purpose id")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("p.toml:12: retention_days of purpose `b`")),
        "{errors:#?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("p.toml:16: segments.min_size must be at least 2")),
        "{errors:#?}"
    );

    let basis = errors_for(&[(
        "q.toml",
        "[[purpose]]\nid = \"x\"\nlegal_basis = \"because\"\ndescription = \"d\"\nretention_days = 1\ncategories = [\"contact\"]\n",
    )]);
    assert_eq!(basis.len(), 1);
    assert!(
        basis[0].starts_with("q.toml:3: unknown variant `because`"),
        "{basis:?}"
    );

    // Segment counts are exact or noisy, their ε within bounds.
    let counts = errors_for(&[(
        "s.toml",
        "[segments]\nmin_size = 10\ncounts = \"fuzzy\"\nepsilon = 0\n",
    )]);
    assert!(
        counts
            .iter()
            .any(|e| e.starts_with("s.toml:3: segments.counts is \"exact\" or \"noisy\"")),
        "{counts:#?}"
    );
    assert!(
        counts
            .iter()
            .any(|e| e.starts_with("s.toml:4: segments.epsilon must be from 0.001")),
        "{counts:#?}"
    );

    // An insights budget beyond what the checker allows, of either kind.
    let budgets = errors_for(&[(
        "r.toml",
        "[[purpose]]\nid = \"x\"\nlegal_basis = \"consent\"\ndescription = \"d\"\nretention_days = 1\ncategories = [\"contact\"]\ninsights = { epsilon_per_day = 50.0 }\n\n[[purpose]]\nid = \"y\"\nlegal_basis = \"consent\"\ndescription = \"d\"\nretention_days = 1\ncategories = [\"contact\"]\ninsights = { epsilon_per_day = 1.0, delta_per_day = 0.5 }\n",
    )]);
    assert!(
        budgets.iter().any(|e| e.starts_with(
            "r.toml:7: insights.epsilon_per_day of purpose `x` must be from 0.001 to 10"
        )),
        "{budgets:#?}"
    );
    assert!(
        budgets.iter().any(|e| e.starts_with(
            "r.toml:15: insights.delta_per_day of purpose `y` must be 0 or from 1e-12"
        )),
        "{budgets:#?}"
    );
}

#[test]
fn a_sub_purpose_cannot_use_more_than_its_parent() {
    let child = format!(
        "{MARKETING}\n[[purpose]]\nid = \"marketing.email\"\nlegal_basis = \"consent\"\ndescription = \"E-mail\"\nretention_days = 30\ncategories = [\"contact.email\", \"location\"]\n"
    );
    let errors = errors_for(&[("p.toml", &child)]);
    assert_eq!(
        errors,
        ["p.toml:14: purpose `marketing.email` may not use category `location`: its parent `marketing` does not"]
    );
}

#[test]
fn an_empty_directory_or_one_without_roles_is_an_error() {
    let empty = tempfile::tempdir().unwrap();
    let errors = load_dir(empty.path()).unwrap_err();
    assert!(errors.to_string().contains("no *.toml policy files"));

    let dir = policy_dir(&[("fields.toml", FIELDS), ("p.toml", MARKETING)]);
    let errors = load_dir(dir.path()).unwrap_err();
    assert!(errors.to_string().contains("defines no [[role]]"));
}

#[test]
fn policy_check_exits_1_with_file_line_messages() {
    let dir = policy_dir(&[
        ("fields.toml", FIELDS),
        (
            "roles.toml",
            "[[role]]\nid = \"admin\"\nactions = [\"keys.destroy\"]\n",
        ),
    ]);

    let bad = custodia_command()
        .args(["policy", "check"])
        .arg(dir.path())
        .output()
        .unwrap();
    let good = custodia_command()
        .args(["policy", "check"])
        .arg(sample_policy_dir())
        .output()
        .unwrap();

    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8(bad.stderr).unwrap();
    let expected = format!(
        "{}:3: unknown action `keys.destroy`",
        dir.path().join("roles.toml").display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");
    assert_eq!(good.status.code(), Some(0), "{good:?}");
    assert!(String::from_utf8(good.stdout).unwrap().contains(": ok ("));
}

#[test]
fn serve_refuses_to_start_on_an_invalid_policy() {
    let data = tempfile::tempdir().unwrap();
    let policies = policy_dir(&[
        ("fields.toml", FIELDS),
        ("roles.toml", "[[role]]\nid = 5\n"),
    ]);

    let output = custodia_command()
        .arg("serve")
        .arg("--bind=127.0.0.1:0")
        .arg("--data-dir")
        .arg(data.path())
        .arg("--policies")
        .arg(policies.path())
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("is invalid"), "{stderr}");
    assert!(stderr.contains("roles.toml:2: "), "{stderr}");
}

#[tokio::test]
async fn the_record_of_processing_is_generated_from_the_loaded_policy() {
    let app = spawn_app().await;
    let compliance = app.token_for("compliance").await;
    let marketer = app.token_for("marketer").await;

    let response = app.get("/v1/ropa", Some(&compliance)).await;

    assert_eq!(response.status(), StatusCode::OK);
    let ropa: Value = response.json().await.unwrap();
    let policy: Value = app.get_json("/v1/policy", Some(&compliance)).await;
    assert_eq!(ropa["policy_sha256"], policy["sha256"]);
    // One activity per purpose, with the policy's basis, retention and effective categories.
    let activities = ropa["activities"].as_array().unwrap();
    let purposes = policy["purposes"].as_array().unwrap();
    assert_eq!(activities.len(), purposes.len());
    for (activity, purpose) in activities.iter().zip(purposes) {
        assert_eq!(activity["purpose"], purpose["id"]);
        assert_eq!(activity["legal_basis"], purpose["legal_basis"]);
        assert_eq!(activity["retention_days"], purpose["retention_days"]);
        assert_eq!(activity["data_categories"], purpose["categories"]);
    }
    let personalization = activities
        .iter()
        .find(|a| a["purpose"] == "marketing.personalization")
        .unwrap();
    // Inherited categories, and the recipients of its parent `marketing`.
    assert!(personalization["fields"]
        .as_array()
        .unwrap()
        .contains(&Value::from("phone")));
    assert_eq!(
        personalization["recipients"],
        serde_json::json!([
            {"role": "collector", "actions": ["interactions.write", "consents.write"]},
            {"role": "marketer", "actions": ["segments.query", "segments.export", "insights.query"]}
        ])
    );
    assert_eq!(
        ropa["data_subject_rights"],
        serde_json::json!([{"role": "compliance",
                            "actions": ["subjects.export", "subjects.erase", "subjects.rectify",
                                        "requests.manage"]},
                           {"role": "opendsr_controller", "actions": ["requests.manage"]}])
    );
    // `policy.read` only.
    assert_problem(
        app.get("/v1/ropa", Some(&marketer)).await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
}

#[test]
fn notices_are_validated_at_their_line() {
    let support = "[[purpose]]\nid = \"support\"\nlegal_basis = \"contract\"\ndescription = \"d\"\nretention_days = 1\ncategories = [\"contact\"]\n";
    let notices = r#"[[notice]]
id = "news letter"
version = "1"
language = "english"
url = "http://example.com/n"
sha256 = "ABC"
purposes = ["support", "astrology"]

[[notice]]
id = "ok"
version = "1"
language = "en"
url = "https://example.com/n"
sha256 = "5b11ab05604ffabf38ef6a4bcdc12d742156a197a05631c7534cada6035b4972"
purposes = ["marketing"]

[[notice]]
id = "ok"
version = "1"
language = "en"
url = "https://example.com/n"
sha256 = "5b11ab05604ffabf38ef6a4bcdc12d742156a197a05631c7534cada6035b4972"
purposes = ["marketing"]
"#;
    let errors = errors_for(&[
        ("m.toml", MARKETING),
        ("s.toml", support),
        ("n.toml", notices),
    ]);
    let expected = [
        "n.toml:2: notice id `news letter` must be 1 to 64 letters",
        "n.toml:4: notice language `english` must be a language tag",
        "n.toml:5: notice url must be an https:// URL",
        "n.toml:6: notice sha256 must be the SHA-256 of the text shown",
        "n.toml:7: notice purpose `support` does not rest on consent",
        "n.toml:7: unknown purpose `astrology` in notice",
        "n.toml:18: duplicate notice `ok version 1 (en)`",
    ];
    for line in expected {
        assert!(
            errors.iter().any(|error| error.starts_with(line)),
            "{line}: {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}

#[test]
fn the_tracking_table_names_only_declared_purposes_and_appears_once() {
    let tracking = "[tracking]\ndefault_purposes = [\"marketing\", \"analytics\"]\nmerge_consent = \"newest\"\nconsent_notice = { id = \"banner\", version = \"9\" }\n\n[tracking.events]\n\"Order Completed\" = [\"orders\"]\n\"\" = [\"marketing\"]\n\n[tracking.consent_categories]\nAdvertising = [\"marketing\"]\n";
    let again = "[tracking]\ndefault_purposes = []\n";
    let errors = errors_for(&[
        ("purposes.toml", MARKETING),
        ("tracking.toml", tracking),
        ("zz.toml", again),
    ]);
    let expected = [
        "tracking.toml:2: tracking.default_purposes names `analytics`, which is not a declared purpose",
        "tracking.toml:7: tracking.events.Order Completed names `orders`, which is not a declared purpose",
        "tracking.toml:3: tracking.merge_consent is `newest`: use `most_restrictive` or `latest`",
        "tracking.toml:4: tracking.consent_notice names `banner` version `9`, which no [[notice]] declares",
        "tracking.toml:1: tracking.events names ``: a name is 1 to 200 bytes without control characters",
        "zz.toml:1: duplicate [tracking] table (first defined at tracking.toml:1)",
    ];
    for want in expected {
        assert!(
            errors.iter().any(|e| e.starts_with(want)),
            "missing error: {want}\n got {errors:#?}"
        );
    }
    assert_eq!(errors.len(), expected.len(), "{errors:#?}");
}
