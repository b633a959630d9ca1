//! Segments through the API: counts equal a brute-force evaluation of the same rules over the
//! same generated people; withdrawal, objection, restriction and erasure change counts and
//! membership at once; refusals (purpose, filter, k, differencing) are precise.

use chrono::{Duration, Utc};
use custodia::config::Switch;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, policy_with_extra_roles, population_counts, spawn_app, spawn_app_with, TestApp,
};

/// A role that may count people for a purpose whose legal basis is legitimate interest.
const ANALYST: &str = r#"
[[role]]
id = "analyst"
actions = ["segments.query"]
purposes = ["analytics"]
"#;

/// The purposes the brute-force test asks about: consent-based (`marketing`), consent-based with
/// an ancestor (`marketing.email`: its own statements and those on `marketing` count, the later
/// wins), and legitimate interest (`analytics`: everyone not restricted or objecting).
pub(crate) const PURPOSES: [&str; 3] = ["marketing", "marketing.email", "analytics"];

/// One generated person, and what the rules make of them.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub(crate) country: &'static str,
    pub(crate) language: &'static str,
    /// Per purpose of [`PURPOSES`]: the interactions usable for it, `(type, channel, days
    /// ago)`.
    pub(crate) usable: [Vec<(&'static str, &'static str, i64)>; 3],
    /// Per purpose of [`PURPOSES`]: has an effective legal basis for it now.
    pub(crate) basis: [bool; 3],
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
    consent_to(app, token, id, "marketing", status).await;
}

async fn consent_to(app: &TestApp, token: &str, id: &str, purpose: &str, status: &str) {
    let mut body = json!({"purpose": purpose, "status": status, "source": "web",
                          "method": "checkbox"});
    if status == "granted" {
        body["notice"] = json!({"id": "newsletter", "version": "3"});
    }
    let response = app
        .post_json(&format!("/v1/subjects/{id}/consents"), Some(token), &body)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

async fn object(app: &TestApp, token: &str, id: &str, purpose: &str) {
    let response = app
        .post_json(
            &format!("/v1/subjects/{id}/objections"),
            Some(token),
            &json!({"purpose": purpose}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
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

/// Page views of an anonymous visitor `days_ago` each, then the login that merges the visitor
/// into the person `id` (a member of them until the consolidation job folds them in), through
/// the tracking protocol; pages are collected for analytics (policies/tracking.toml).
async fn visit_then_log_in(app: &TestApp, write_key: &str, id: &str, days_ago: &[i64]) {
    let anonymous = format!("anon-{id}");
    let mut messages: Vec<Value> = days_ago
        .iter()
        .enumerate()
        .map(|(n, days)| {
            let at = Utc::now() - Duration::days(*days) - Duration::hours(1);
            json!({"type": "page", "messageId": format!("{id}-page-{n}"),
                   "anonymousId": anonymous, "name": "Home", "properties": {"page_url": "/"},
                   "timestamp": at.to_rfc3339()})
        })
        .collect();
    let login = json!({"type": "identify", "messageId": format!("{id}-login"), "userId": id,
                       "anonymousId": anonymous});
    for batch in [std::mem::take(&mut messages), vec![login]] {
        let sent =
            crate::tracking::send(app, "/v1/batch", write_key, &json!({ "batch": batch })).await;
        assert_eq!(sent.status(), StatusCode::OK);
    }
}

/// Sixty people with varied traits, consents (on `marketing` and on `marketing.email`),
/// interactions, objections, restrictions and later changes of mind; a quarter of them browsed
/// anonymously first and were merged at their login.
pub(crate) async fn generate(app: &TestApp, collector: &str, compliance: &str) -> Vec<Person> {
    let write_key = app.create_api_key("collector").await;
    let mut people = Vec::new();
    for i in 0..60_usize {
        let id = format!("gen-{i:02}");
        let country = ["DE", "AT", "FR"][i % 3];
        let language = ["de", "en"][i % 2];
        put_traits(app, collector, &id, country, language).await;
        let mut pages = Vec::new();
        if i % 4 == 1 {
            let days_ago = [(i % 30) as i64, ((i * 11) % 50) as i64];
            visit_then_log_in(app, &write_key, &id, &days_ago).await;
            pages = days_ago.iter().map(|days| ("page", "web", *days)).collect();
        }
        // Statements in the order they are made: (is it on `marketing.email`, granted).
        let mut statements = Vec::new();
        let granted = i % 4 != 0;
        let mut purchases = Vec::new();
        if granted {
            consent(app, collector, &id, "granted").await;
            statements.push((false, true));
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
                purchases.push(("purchase", "web", days_ago));
            }
        }
        // The child purpose on its own: withdrawn after a grant of its parent, or granted
        // without one.
        if granted && i % 6 == 1 {
            consent_to(app, collector, &id, "marketing.email", "withdrawn").await;
            statements.push((true, false));
        }
        if !granted && i % 8 == 4 {
            consent_to(app, collector, &id, "marketing.email", "granted").await;
            statements.push((true, true));
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
        // Usable for analytics only.
        let mut visits = Vec::new();
        if i % 3 != 2 {
            let days_ago = (i % 20) as i64;
            interaction(
                app,
                collector,
                (&id, 12),
                ("visit", "web"),
                days_ago,
                &["analytics"],
            )
            .await;
            visits.push(("visit", "web", days_ago));
        }
        visits.extend(pages);
        if i % 7 == 0 && granted {
            // A withdrawal of the parent after everything else: the latest statement wins.
            consent(app, collector, &id, "withdrawn").await;
            statements.push((false, false));
        }
        let mut objected = [false; 3];
        if i % 11 == 0 {
            // An objection to the parent covers the child.
            object(app, collector, &id, "marketing").await;
            objected[0] = true;
            objected[1] = true;
        }
        if i % 9 == 2 {
            object(app, collector, &id, "analytics").await;
            objected[2] = true;
        }
        let restricted = i % 13 == 0;
        if restricted {
            let response = app
                .post_json(
                    &format!("/v1/subjects/{id}/restriction"),
                    Some(compliance),
                    &json!({}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::OK);
        }
        let latest_grant = |counts: &dyn Fn(bool) -> bool| {
            statements
                .iter()
                .rev()
                .find(|(child, _)| counts(*child))
                .is_some_and(|(_, grant)| *grant)
        };
        let consented = [latest_grant(&|child| !child), latest_grant(&|_| true), true];
        let basis: [bool; 3] = std::array::from_fn(|p| consented[p] && !objected[p] && !restricted);
        people.push(Person {
            country,
            language,
            usable: [purchases.clone(), purchases, visits],
            basis,
        });
    }
    people
}

/// The brute-force evaluation of a filter for one person and purpose (index into [`PURPOSES`]).
pub(crate) fn matches(filter: &Value, person: &Person, purpose: usize) -> bool {
    if let Some(children) = filter.get("all") {
        return children
            .as_array()
            .unwrap()
            .iter()
            .all(|c| matches(c, person, purpose));
    }
    if let Some(children) = filter.get("any") {
        return children
            .as_array()
            .unwrap()
            .iter()
            .any(|c| matches(c, person, purpose));
    }
    if let Some(child) = filter.get("not") {
        return !matches(child, person, purpose);
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
    let within = leaf.get("within_days").and_then(Value::as_i64);
    let at_least = leaf.get("at_least").and_then(Value::as_u64).unwrap_or(1) as usize;
    person.usable[purpose]
        .iter()
        .filter(|(kind, channel, days_ago)| {
            leaf.get("type").is_none_or(|t| t == kind)
                && leaf.get("channel").is_none_or(|c| c == channel)
                && within.is_none_or(|d| *days_ago < d)
        })
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
    counts_equal_a_brute_force_evaluation(Switch::On).await;
}

#[tokio::test]
async fn counts_in_the_database_equal_a_brute_force_evaluation_of_the_rules() {
    counts_equal_a_brute_force_evaluation(Switch::Off).await;
}

/// The brute-force comparison, answered by the population index (`On`: every count, checked by
/// the server's metrics) or by the database (`Off`).
async fn counts_equal_a_brute_force_evaluation(index: Switch) {
    let policies = policy_with_extra_roles(ANALYST);
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| {
        options.policy_dir = Some(path);
        options.population_index = Some(index);
    })
    .await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let people = generate(&app, &collector, &compliance).await;
    // Built at start (before the people came): what follows reaches it through the feed.
    app.run_job("population_index").await;
    let before = population_counts(&app.address).await;
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
        json!({"all": [{"interactions": {"channel": "web", "within_days": 10}},
                       {"not": {"trait": "country", "in": ["AT"]}}]}),
        // What merged visitors brought: their pages alone, and with the person's own visits.
        json!({"interactions": {"type": "page"}}),
        json!({"interactions": {"channel": "web", "within_days": 40, "at_least": 2}}),
        json!({"not": {"interactions": {"type": "page", "at_least": 2}}}),
    ];
    let mut revealed = 0;
    // Checked with the visitors as members of their person, then once the consolidation job
    // has folded them in: the same counts.
    for round in 0..2 {
        if round == 1 {
            app.run_job("member_consolidation").await;
        }
        for filter in &filters {
            // A key of its own per question: the differencing guard compares answers given to one
            // key, and these overlap on purpose.
            let marketer = app.token_for("marketer").await;
            let analyst = app.token_for("analyst").await;
            for (p, purpose) in PURPOSES.iter().enumerate() {
                let expected = people
                    .iter()
                    .filter(|person| person.basis[p] && matches(filter, person, p))
                    .count() as i64;
                let token = if *purpose == "analytics" {
                    &analyst
                } else {
                    &marketer
                };
                let answer = preview(&app, token, purpose, filter).await;
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
    }
    // The generated data separates the purposes: each has people with a basis the others lack.
    for (p, first) in PURPOSES.iter().enumerate() {
        for (q, second) in PURPOSES.iter().enumerate() {
            assert!(
                p == q
                    || people
                        .iter()
                        .any(|person| person.basis[p] && !person.basis[q]),
                "{first} vs {second}"
            );
        }
    }
    assert!(revealed >= 16, "the generated data exercises real counts");
    let (from_index, from_database) = population_counts(&app.address).await;
    let asked = (filters.len() * PURPOSES.len() * 2) as f64;
    if index == Switch::On {
        assert_eq!(
            (from_index - before.0, from_database - before.1),
            (asked, 0.0)
        );
    } else {
        assert_eq!(
            (from_index - before.0, from_database - before.1),
            (0.0, asked)
        );
    }
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
            .get_json(
                &format!("/v1/segments/{segment}/members?limit=5&cursor={cursor}"),
                Some(token),
            )
            .await;
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
        .get_json(&format!("/v1/segments/{id}"), Some(&marketer))
        .await;
    assert_eq!(shown["size"], 14);
    assert_eq!(shown["name"], "Germany");
    let listed: Value = app.get_json("/v1/segments", Some(&marketer)).await;
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
            .get_json(&format!("/v1/segments/{id}"), Some(&fresh))
            .await;
        assert_eq!(shown["size"], expected.len(), "after {what}");
    }
    // Ten left; one more withdrawal and the activation list is refused.
    assert_eq!(expected.len(), 10);
    consent(&app, &collector, &expected[0], "withdrawn").await;
    let refused = member_ids(&app, &marketer, &id).await.unwrap_err();
    assert_eq!(refused["code"], "segment_too_small");

    // Member exports are audited with the purpose and the people disclosed (by pseudonym).
    let audit: Value = app
        .get_json("/v1/audit?action=segments.export", Some(&compliance))
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries[0]["decision"], "deny");
    assert_eq!(entries[0]["reason"], "segment_too_small");
    assert_eq!(
        entries.iter().filter(|e| e["decision"] == "deny").count(),
        1,
        "the refusal is audited once: {audit}"
    );
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
async fn small_sizes_are_suppressed_and_the_differencing_attack_is_withheld() {
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
        json!({"size": null, "suppressed": true, "min_size": 10, "noisy": false})
    );

    let everyone = json!({"trait": "country", "in": ["DE"]});
    let first = preview(&app, &marketer, "marketing", &everyone).await;
    assert_eq!(first["size"], 15);
    // The same question again: the same answer.
    assert_eq!(
        preview(&app, &marketer, "marketing", &everyone).await["size"],
        15
    );
    // The same filter minus one person: withheld, whether or not that person is in it, in the
    // same words as a size below min_size.
    for minus in ["fr", "it"] {
        let attack = json!({"all": [everyone, {"not": {"trait": "language", "in": [minus]}}]});
        assert_eq!(preview(&app, &marketer, "marketing", &attack).await, small);
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
        .get_json(
            "/v1/audit?action=segments.preview&decision=deny",
            Some(&compliance),
        )
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["reason"], "differencing_refused");
    assert_eq!(entries[0]["purposes"], json!(["marketing"]));
}

/// The set `DE` has exactly min_size (10) people; `ora-03` is the one with tier `gold`.
async fn threshold_set(app: &TestApp) {
    let collector = app.token_for("collector").await;
    for i in 0..10 {
        let id = format!("ora-{i:02}");
        let tier = if i == 3 { "gold" } else { "silver" };
        let response = app
            .request(
                Method::PUT,
                &format!("/v1/subjects/{id}"),
                Some(&collector),
                Some(&json!({"traits": {"country": "DE", "language": "de", "loyalty_tier": tier}})),
            )
            .await;
        assert!(response.status().is_success());
        consent(app, &collector, &id, "granted").await;
    }
}

async fn preview_raw(app: &TestApp, token: &str, filter: &Value) -> (StatusCode, String) {
    let response = app
        .post_json(
            "/v1/segments/preview",
            Some(token),
            &json!({"purpose": "marketing", "filter": filter}),
        )
        .await;
    (response.status(), response.text().await.unwrap())
}

#[tokio::test]
async fn the_threshold_oracle_answers_alike_whether_or_not_the_person_has_the_trait() {
    let app = spawn_app().await;
    threshold_set(&app).await;
    let set = json!({"trait": "country", "in": ["DE"]});
    let minus =
        |tier: &str| json!({"all": [set, {"not": {"trait": "loyalty_tier", "in": [tier]}}]});
    // The attack of the review: learn the set's size (exactly k), then "the set and not (the
    // target has X)": 9 (the target has X) was `suppressed`, 10 (it has not) was a 403. Now
    // both answers are byte for byte the same.
    let marketer = app.token_for("marketer").await;
    assert_eq!(
        preview(&app, &marketer, "marketing", &set).await["size"],
        10
    );
    let has = preview_raw(&app, &marketer, &minus("gold")).await;
    let has_not = preview_raw(&app, &marketer, &minus("platinum")).await;
    assert_eq!(has.0, StatusCode::OK);
    assert_eq!(has, has_not);
    assert_eq!(
        serde_json::from_str::<Value>(&has.1).unwrap(),
        json!({"size": null, "suppressed": true, "min_size": 10, "noisy": false})
    );
    // In the other order (the probe first, then the set) the set is withheld either way: a
    // suppressed answer is remembered too.
    for tier in ["gold", "platinum"] {
        let key = app.token_for("marketer").await;
        let probe = preview(&app, &key, "marketing", &minus(tier)).await;
        assert_eq!(probe["suppressed"], tier == "gold", "{probe}");
        let after = preview(&app, &key, "marketing", &set).await;
        assert_eq!(
            after,
            json!({"size": null, "suppressed": true, "min_size": 10, "noisy": false}),
            "{tier}"
        );
    }
    // Asked again, a question gets the same answer.
    assert_eq!(preview_raw(&app, &marketer, &minus("gold")).await, has_not);
    assert_eq!(
        preview(&app, &marketer, "marketing", &set).await["size"],
        10
    );
}

#[tokio::test]
async fn refused_probes_alert_compliance_and_are_limited_per_key() {
    let policies = policy_with_extra_roles("max_withheld = 4\nalert_refusals = 2\n");
    let dir = policies.path().to_path_buf();
    let app = spawn_app_with(|options| options.policy_dir = Some(dir)).await;
    let collector = app.token_for("collector").await;
    for i in 0..15 {
        put_traits(&app, &collector, &format!("pl-{i:02}"), "DE", "de").await;
        consent(&app, &collector, &format!("pl-{i:02}"), "granted").await;
    }
    for i in 0..12 {
        put_traits(&app, &collector, &format!("pa-{i:02}"), "AT", "de").await;
        consent(&app, &collector, &format!("pa-{i:02}"), "granted").await;
    }
    let compliance = app.token_for("compliance").await;
    let marketer_key = app.create_api_key("marketer").await;
    let marketer = app.token_for_key(&marketer_key).await;
    let everyone = json!({"trait": "country", "in": ["DE"]});
    assert_eq!(
        preview(&app, &marketer, "marketing", &everyone).await["size"],
        15
    );
    let alerts = || async {
        let page: Value = app
            .get_json("/v1/audit?action=segments.probe_alert", Some(&compliance))
            .await;
        page["entries"].as_array().unwrap().clone()
    };
    for (n, language) in ["it", "es", "pt", "nl"].iter().enumerate() {
        let attack = json!({"all": [everyone, {"not": {"trait": "language", "in": [language]}}]});
        let answer = preview(&app, &marketer, "marketing", &attack).await;
        assert_eq!(answer["suppressed"], true);
        // The second refusal raises the alert, the fourth raises it again.
        let refusals = n + 1;
        assert_eq!(
            alerts().await.len(),
            refusals / 2,
            "after refusal {refusals}"
        );
    }
    // Newest first: the alert at four refusals, then the one at two.
    let raised = alerts().await;
    assert_eq!(raised[0]["records"], 4);
    assert_eq!(raised[1]["records"], 2);
    let alert = &raised[0];
    assert_eq!(alert["action"], "segments.probe_alert");
    assert_eq!(alert["purposes"], json!(["marketing"]));
    let key_id = marketer_key.split('_').nth(1).unwrap();
    assert_eq!(alert["target"], format!("key:{key_id}"));
    // Four withheld answers: the key gets no more counts, even for a harmless question.
    let response = app
        .post_json(
            "/v1/segments/preview",
            Some(&marketer),
            &json!({"purpose": "marketing", "filter": {"trait": "country", "in": ["AT"]}}),
        )
        .await;
    let retry: i64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 23 * 3600 && retry <= 24 * 3600, "{retry}");
    assert_problem(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "segment_probe_limit",
    )
    .await;
    let limited: Value = app
        .get_json(
            "/v1/audit?action=segments.preview&decision=deny",
            Some(&compliance),
        )
        .await;
    let reasons: Vec<&str> = limited["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == "differencing_refused")
            .count(),
        4
    );
    assert_eq!(
        reasons
            .iter()
            .filter(|r| **r == "segment_probe_limit")
            .count(),
        1
    );
    // Another key is not affected.
    let other = app.token_for("marketer").await;
    assert_eq!(
        preview(
            &app,
            &other,
            "marketing",
            &json!({"trait": "country", "in": ["AT"]})
        )
        .await["size"],
        12
    );
}

#[tokio::test]
async fn a_filter_may_name_only_traits_its_purpose_may_use() {
    let policies = policy_with_extra_roles(
        r#"
[[role]]
id = "sms_marketer"
actions = ["segments.query", "segments.export"]
purposes = ["marketing.sms"]
"#,
    );
    let dir = policies.path().to_path_buf();
    let app = spawn_app_with(|options| options.policy_dir = Some(dir)).await;
    let marketer = app.token_for("sms_marketer").await;
    let tier = json!({"all": [{"trait": "country", "in": ["DE"]},
                              {"trait": "loyalty_tier", "in": ["gold"]}]});
    assert_problem(
        app.post_json(
            "/v1/segments",
            Some(&marketer),
            &json!({"name": "gold", "purpose": "marketing.sms", "filter": tier}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "trait_not_permitted",
    )
    .await;
    let problem = assert_problem(
        app.post_json(
            "/v1/segments/preview",
            Some(&marketer),
            &json!({"purpose": "marketing.sms", "filter": tier}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "trait_not_permitted",
    )
    .await;
    assert_eq!(
        problem["detail"],
        "filter.all[1].trait: `loyalty_tier` (category `preferences.loyalty`) is not among the categories purpose `marketing.sms` may use"
    );
    assert_eq!(crate::helpers::count_rows(&app, "segments").await, 0);
    // What the purpose may use is accepted.
    let fine = json!({"trait": "language", "in": ["de"]});
    assert_eq!(
        preview(&app, &marketer, "marketing.sms", &fine).await["suppressed"],
        true
    );
}

/// Moves every remembered question `by` into the past, as if that much time had passed.
async fn age_answers(app: &TestApp, by: Duration) {
    use custodia::store::schema::segment_answers;
    use diesel::prelude::*;
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().expect("a connection");
        let rows: Vec<(String, chrono::NaiveDateTime)> = segment_answers::table
            .select((segment_answers::id, segment_answers::answered_at))
            .load(&mut *conn)
            .unwrap();
        for (id, at) in rows {
            diesel::update(segment_answers::table.find(id))
                .set(segment_answers::answered_at.eq(at - by))
                .execute(&mut *conn)
                .unwrap();
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_questions_the_guard_remembers_are_forgotten_after_its_window() {
    let app = spawn_app().await;
    let marketer = app.token_for("marketer").await;
    preview(
        &app,
        &marketer,
        "marketing",
        &json!({"trait": "country", "in": ["DE"]}),
    )
    .await;
    assert_eq!(crate::helpers::count_rows(&app, "segment_answers").await, 1);
    // Within the window the server's retention keeps it (it still counts against the key).
    app.run_job("retention").await;
    assert_eq!(crate::helpers::count_rows(&app, "segment_answers").await, 1);
    // Past the window it is forgotten; a question asked now is kept.
    age_answers(&app, Duration::hours(25)).await;
    preview(
        &app,
        &marketer,
        "marketing",
        &json!({"trait": "country", "in": ["AT"]}),
    )
    .await;
    app.run_job("retention").await;
    assert_eq!(crate::helpers::count_rows(&app, "segment_answers").await, 1);
}
