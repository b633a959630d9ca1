//! Segments through the API: counts equal a brute-force evaluation of the same rules over the
//! same generated people; withdrawal, objection, restriction and erasure change counts and
//! membership at once; refusals (purpose, filter, k, differencing) are precise.

use chrono::{Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_problem, spawn_app, TestApp};

/// One generated person, and what the rules make of them.
#[derive(Debug, Clone)]
struct Person {
    country: &'static str,
    language: &'static str,
    /// Purchases on the web, tagged `marketing`, this many days ago each.
    purchases: Vec<i64>,
    /// Has a legal basis for `marketing` now (granted, not withdrawn, not objected, not
    /// restricted).
    basis: bool,
}

async fn put_traits(app: &TestApp, token: &str, id: &str, country: &str, language: &str) {
    let response = app
        .request(
            Method::PUT,
            &format!("/v1/subjects/{id}"),
            Some(token),
            Some(&json!({"traits": {"country": country, "language": language,
                                    "full_name": format!("Name of {id}")}})),
        )
        .await;
    assert!(response.status().is_success());
}

async fn consent(app: &TestApp, token: &str, id: &str, status: &str) {
    let mut body = json!({"purpose": "marketing", "status": status, "source": "web",
                          "method": "checkbox"});
    if status == "granted" {
        body["notice"] = json!({"id": "n", "version": "1"});
    }
    let response = app
        .post_json(&format!("/v1/subjects/{id}/consents"), Some(token), &body)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// Interaction `n` of person `id`: `(kind, channel)`, this many days ago, for `purposes`.
async fn interaction(
    app: &TestApp,
    token: &str,
    (id, n): (&str, usize),
    (kind, channel): (&str, &str),
    days_ago: i64,
    purposes: &[&str],
) {
    let occurred = Utc::now() - Duration::days(days_ago) - Duration::hours(1);
    let response = app
        .post_json(
            "/v1/interactions",
            Some(token),
            &json!({"id": format!("{id}-{n}"), "subject_id": id, "type": kind,
                    "channel": channel, "occurred_at": occurred.to_rfc3339(),
                    "purposes": purposes}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED, "{id}-{n}");
}

/// Sixty people with varied traits, consents, purchases and later changes of mind.
async fn generate(app: &TestApp, collector: &str, compliance: &str) -> Vec<Person> {
    let mut people = Vec::new();
    for i in 0..60_usize {
        let id = format!("gen-{i:02}");
        let country = ["DE", "AT", "FR"][i % 3];
        let language = ["de", "en"][i % 2];
        put_traits(app, collector, &id, country, language).await;
        let granted = i % 4 != 0;
        let mut purchases = Vec::new();
        if granted {
            consent(app, collector, &id, "granted").await;
            for n in 0..(i % 5) {
                let days_ago = ((i * 7 + n * 13) % 40) as i64;
                interaction(
                    app,
                    collector,
                    (&id, n),
                    ("purchase", "web"),
                    days_ago,
                    &["marketing"],
                )
                .await;
                purchases.push(days_ago);
            }
        }
        // Not usable for marketing: another purpose, or another channel.
        interaction(
            app,
            collector,
            (&id, 10),
            ("purchase", "web"),
            1,
            &["support"],
        )
        .await;
        interaction(app, collector, (&id, 11), ("visit", "app"), 2, &["support"]).await;
        let mut basis = granted;
        if i % 7 == 0 && granted {
            consent(app, collector, &id, "withdrawn").await;
            basis = false;
        }
        if i % 11 == 0 {
            let response = app
                .post_json(
                    &format!("/v1/subjects/{id}/objections"),
                    Some(collector),
                    &json!({"purpose": "marketing"}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
            basis = false;
        }
        if i % 13 == 0 {
            let response = app
                .post_json(
                    &format!("/v1/subjects/{id}/restriction"),
                    Some(compliance),
                    &json!({}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
            basis = false;
        }
        people.push(Person {
            country,
            language,
            purchases,
            basis,
        });
    }
    people
}

/// The brute-force evaluation of a filter for one person (purpose `marketing`).
fn matches(filter: &Value, person: &Person) -> bool {
    if let Some(children) = filter.get("all") {
        return children
            .as_array()
            .unwrap()
            .iter()
            .all(|c| matches(c, person));
    }
    if let Some(children) = filter.get("any") {
        return children
            .as_array()
            .unwrap()
            .iter()
            .any(|c| matches(c, person));
    }
    if let Some(child) = filter.get("not") {
        return !matches(child, person);
    }
    if let Some(name) = filter.get("trait") {
        let value = match name.as_str().unwrap() {
            "country" => person.country,
            "language" => person.language,
            other => panic!("{other}"),
        };
        return filter["in"].as_array().unwrap().iter().any(|v| v == value);
    }
    let leaf = &filter["interactions"];
    // Only purchases on the web are tagged `marketing`; visits and `support` purchases never
    // count for the purpose.
    if leaf.get("type").is_some_and(|t| t != "purchase")
        || leaf.get("channel").is_some_and(|c| c != "web")
    {
        return false;
    }
    let within = leaf.get("within_days").and_then(Value::as_i64);
    let at_least = leaf.get("at_least").and_then(Value::as_u64).unwrap_or(1) as usize;
    person
        .purchases
        .iter()
        .filter(|days_ago| within.is_none_or(|d| **days_ago < d))
        .count()
        >= at_least
}

async fn preview(app: &TestApp, token: &str, purpose: &str, filter: &Value) -> Value {
    let response = app
        .post_json(
            "/v1/segments/preview",
            Some(token),
            &json!({"purpose": purpose, "filter": filter}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{filter}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn counts_equal_a_brute_force_evaluation_of_the_rules() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let people = generate(&app, &collector, &compliance).await;
    let filters = [
        json!({"trait": "country", "in": ["DE"]}),
        json!({"trait": "country", "in": ["DE", "AT"]}),
        json!({"not": {"trait": "country", "in": ["AT"]}}),
        json!({"interactions": {"type": "purchase"}}),
        json!({"interactions": {"type": "purchase", "channel": "web", "within_days": 20,
                                "at_least": 2}}),
        json!({"all": [{"trait": "country", "in": ["DE", "FR"]},
                       {"interactions": {"within_days": 30}}]}),
        json!({"any": [{"trait": "language", "in": ["en"]},
                       {"not": {"interactions": {"type": "purchase"}}}]}),
        json!({"any": [{"interactions": {"type": "visit"}},
                       {"all": [{"trait": "country", "in": ["FR"]},
                                {"not": {"trait": "language", "in": ["de"]}}]}]}),
        json!({"interactions": {"channel": "app"}}),
        json!({"interactions": {"at_least": 3}}),
    ];
    let mut revealed = 0;
    for filter in &filters {
        let expected = people
            .iter()
            .filter(|p| p.basis && matches(filter, p))
            .count() as i64;
        // A key of its own per question: the differencing guard compares answers given to one
        // key, and these overlap on purpose.
        let marketer = app.token_for("marketer").await;
        for purpose in ["marketing", "marketing.email"] {
            let answer = preview(&app, &marketer, purpose, filter).await;
            assert_eq!(answer["min_size"], 10);
            if expected >= 10 {
                assert_eq!(answer["size"], expected, "{purpose} {filter}");
                assert_eq!(answer["suppressed"], false);
                revealed += 1;
            } else {
                assert_eq!(answer["size"], Value::Null, "{purpose} {filter}");
                assert_eq!(answer["suppressed"], true);
            }
        }
    }
    assert!(revealed >= 8, "the generated data exercises real counts");
}

async fn member_ids(app: &TestApp, token: &str, segment: &str) -> Result<Vec<String>, Value> {
    let response = app
        .get(
            &format!("/v1/segments/{segment}/members?limit=5"),
            Some(token),
        )
        .await;
    if response.status() != StatusCode::OK {
        return Err(response.json().await.unwrap());
    }
    // Pages of five, to exercise the cursor.
    let mut page: Value = response.json().await.unwrap();
    let mut ids = Vec::new();
    loop {
        for id in page["members"].as_array().unwrap() {
            ids.push(id.as_str().unwrap().to_owned());
        }
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        page = app
            .get(
                &format!("/v1/segments/{segment}/members?limit=5&cursor={cursor}"),
                Some(token),
            )
            .await
            .json()
            .await
            .unwrap();
    }
    ids.sort();
    Ok(ids)
}

#[tokio::test]
async fn withdrawal_objection_restriction_and_erasure_take_effect_at_once() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let marketer = app.token_for("marketer").await;
    let mut expected: Vec<String> = Vec::new();
    for i in 0..14 {
        let id = format!("seg-{i:02}");
        put_traits(&app, &collector, &id, "DE", "de").await;
        consent(&app, &collector, &id, "granted").await;
        expected.push(id);
    }
    // Someone in DE without consent never counts.
    put_traits(&app, &collector, "seg-nobasis", "DE", "de").await;
    let created = app
        .post_json(
            "/v1/segments",
            Some(&marketer),
            &json!({"name": "Germany", "purpose": "marketing",
                    "filter": {"trait": "country", "in": ["DE"]}}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let segment: Value = created.json().await.unwrap();
    let id = segment["id"].as_str().unwrap().to_owned();
    assert_eq!(segment["filter"], json!({"trait": "country", "in": ["DE"]}));
    let shown: Value = app
        .get(&format!("/v1/segments/{id}"), Some(&marketer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["size"], 14);
    assert_eq!(shown["name"], "Germany");
    let listed: Value = app
        .get("/v1/segments", Some(&marketer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["segments"][0]["id"], id.as_str());
    assert_eq!(member_ids(&app, &marketer, &id).await.unwrap(), expected);

    type Change = Box<dyn Fn(&str) -> (Method, String, Option<Value>)>;
    let changes: [(&str, Change); 4] = [
        (
            "withdrawal",
            Box::new(|s| {
                (
                    Method::POST,
                    format!("/v1/subjects/{s}/consents"),
                    Some(json!({"purpose": "marketing", "status": "withdrawn",
                                "source": "web", "method": "checkbox"})),
                )
            }),
        ),
        (
            "objection",
            Box::new(|s| {
                (
                    Method::POST,
                    format!("/v1/subjects/{s}/objections"),
                    Some(json!({"purpose": "marketing"})),
                )
            }),
        ),
        (
            "restriction",
            Box::new(|s| {
                (
                    Method::POST,
                    format!("/v1/subjects/{s}/restriction"),
                    Some(json!({})),
                )
            }),
        ),
        (
            "erasure",
            Box::new(|s| (Method::DELETE, format!("/v1/subjects/{s}"), None)),
        ),
    ];
    for (what, change) in &changes {
        let person = expected.remove(0);
        let (method, path, body) = change(&person);
        let token = if matches!(*what, "restriction" | "erasure") {
            &compliance
        } else {
            &collector
        };
        let response = app.request(method, &path, Some(token), body.as_ref()).await;
        assert!(response.status().is_success(), "{what}");
        assert_eq!(
            member_ids(&app, &marketer, &id).await.unwrap(),
            expected,
            "after {what}"
        );
        // The count moves at once too (a fresh key: the guard would refuse a count one person
        // away from the last one this key saw).
        let fresh = app.token_for("marketer").await;
        let shown: Value = app
            .get(&format!("/v1/segments/{id}"), Some(&fresh))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(shown["size"], expected.len(), "after {what}");
    }
    // Ten left; one more withdrawal and the activation list is refused.
    assert_eq!(expected.len(), 10);
    consent(&app, &collector, &expected[0], "withdrawn").await;
    let refused = member_ids(&app, &marketer, &id).await.unwrap_err();
    assert_eq!(refused["code"], "segment_too_small");

    // Member exports are audited with the purpose and the people disclosed (by pseudonym).
    let audit: Value = app
        .get("/v1/audit?action=segments.export", Some(&compliance))
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries[0]["decision"], "deny");
    assert_eq!(entries[0]["reason"], "segment_too_small");
    let allowed = entries.iter().find(|e| e["decision"] == "allow").unwrap();
    assert_eq!(allowed["purposes"], json!(["marketing"]));
    assert_eq!(allowed["target"], id.as_str());
    assert!(!allowed["subjects"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn refusals_are_precise() {
    let app = spawn_app().await;
    let marketer = app.token_for("marketer").await;
    let collector = app.token_for("collector").await;
    let filter = json!({"trait": "country", "in": ["DE"]});
    assert_problem(
        app.post_json(
            "/v1/segments/preview",
            Some(&marketer),
            &json!({"purpose": "support", "filter": filter}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "purpose_not_permitted",
    )
    .await;
    assert_problem(
        app.post_json(
            "/v1/segments/preview",
            Some(&collector),
            &json!({"purpose": "marketing", "filter": filter}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    let cases = [
        (
            json!({"trait": "full_name", "in": ["x"]}),
            "non_segmentable_trait",
            "full_name",
        ),
        (
            json!({"all": [{"trait": "shoe_size", "in": ["44"]}]}),
            "undeclared_field",
            "shoe_size",
        ),
        (
            json!({"all": [{"xor": []}]}),
            "invalid_filter",
            "filter.all[0].xor",
        ),
        (
            json!({"interactions": {"within_days": 0}}),
            "invalid_filter",
            "filter.interactions.within_days",
        ),
    ];
    for (filter, code, named) in cases {
        let problem = assert_problem(
            app.post_json(
                "/v1/segments/preview",
                Some(&marketer),
                &json!({"purpose": "marketing", "filter": filter}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            code,
        )
        .await;
        assert!(
            problem["detail"].as_str().unwrap().contains(named),
            "{problem}"
        );
    }
    assert_problem(
        app.post_json(
            "/v1/segments/preview",
            Some(&marketer),
            &json!({"purpose": "astrology", "filter": {"trait": "country", "in": ["DE"]}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_purpose",
    )
    .await;
    assert_problem(
        app.get(
            "/v1/segments/0191d6a4-0000-7000-8000-000000000000",
            Some(&marketer),
        )
        .await,
        StatusCode::NOT_FOUND,
        "segment_not_found",
    )
    .await;
}

#[tokio::test]
async fn small_sizes_are_suppressed_and_the_differencing_attack_is_refused() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    for i in 0..15 {
        let language = if i == 7 { "fr" } else { "de" };
        put_traits(&app, &collector, &format!("diff-{i:02}"), "DE", language).await;
        consent(&app, &collector, &format!("diff-{i:02}"), "granted").await;
    }
    for i in 0..12 {
        put_traits(&app, &collector, &format!("at-{i:02}"), "AT", "de").await;
        consent(&app, &collector, &format!("at-{i:02}"), "granted").await;
    }
    let marketer = app.token_for("marketer").await;
    let small = preview(
        &app,
        &marketer,
        "marketing",
        &json!({"trait": "language", "in": ["fr"]}),
    )
    .await;
    assert_eq!(
        small,
        json!({"size": null, "suppressed": true, "min_size": 10})
    );

    let everyone = json!({"trait": "country", "in": ["DE"]});
    let first = preview(&app, &marketer, "marketing", &everyone).await;
    assert_eq!(first["size"], 15);
    // The same question again: the same answer.
    assert_eq!(
        preview(&app, &marketer, "marketing", &everyone).await["size"],
        15
    );
    // The same filter minus one person: refused, whether or not that person is in it.
    for minus in ["fr", "it"] {
        let attack = json!({"all": [everyone, {"not": {"trait": "language", "in": [minus]}}]});
        assert_problem(
            app.post_json(
                "/v1/segments/preview",
                Some(&marketer),
                &json!({"purpose": "marketing", "filter": attack}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "differencing_refused",
        )
        .await;
    }
    // A question about other people is answered.
    let austria = preview(
        &app,
        &marketer,
        "marketing",
        &json!({"trait": "country", "in": ["AT"]}),
    )
    .await;
    assert_eq!(austria["size"], 12);
    // The refusals are audited as denials with the purpose.
    let audit: Value = app
        .get(
            "/v1/audit?action=segments.preview&decision=deny",
            Some(&compliance),
        )
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["reason"], "differencing_refused");
    assert_eq!(entries[0]["purposes"], json!(["marketing"]));
}
