//! Insights through the API (`docs/insights.md`): answers are the exact aggregate of the rules
//! (checked against a brute-force evaluation over generated people) plus noise of the declared
//! scale; the budget is charged once per fresh answer, atomically, and refuses with 429 when
//! spent; repeats are the released answer; rare values are suppressed; a withdrawal leaves the
//! next answer; bad questions are precise 4xx and spend nothing.

use chrono::{Duration, Utc};
use custodia::config::Switch;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::helpers::{assert_problem, policy_with_extra_roles, spawn_app_with, TestApp};
use crate::segments::{generate, matches, Person, PURPOSES};

/// An analyst who may ask insights about analytics; a supporter who may ask about a purpose
/// without a budget.
const ROLES: &str = r#"
[[role]]
id = "analyst"
actions = ["insights.query"]
purposes = ["analytics"]

[[role]]
id = "support_lead"
actions = ["insights.query"]
purposes = ["support"]
"#;

/// The sample policy with the roles above and each insights budget set to `epsilon` per day.
fn policy(epsilon: f64) -> TempDir {
    let dir = policy_with_extra_roles(ROLES);
    let path = dir.path().join("purposes.toml");
    let purposes = std::fs::read_to_string(&path).unwrap();
    let sample = "insights = { epsilon_per_day = 1.0, delta_per_day = 1e-6 }";
    assert_eq!(
        purposes.matches(sample).count(),
        2,
        "the sample policy's budgets"
    );
    std::fs::write(
        &path,
        purposes.replace(
            sample,
            &format!("insights = {{ epsilon_per_day = {epsilon}, delta_per_day = 1e-6 }}"),
        ),
    )
    .unwrap();
    dir
}

async fn app_with(epsilon: f64, index: Switch) -> (TestApp, TempDir) {
    let policies = policy(epsilon);
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| {
        options.policy_dir = Some(path);
        options.population_index = Some(index);
    })
    .await;
    (app, policies)
}

async fn ask(app: &TestApp, token: &str, question: &Value) -> (StatusCode, Value) {
    let response = app.post_json("/v1/insights", Some(token), question).await;
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The released cells of an answer, by their key's values in the question's order.
fn cells(answer: &Value, keys: &[&str]) -> Vec<(Vec<String>, i64)> {
    answer["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cell| {
            let key = keys
                .iter()
                .map(|k| cell["key"][*k].as_str().unwrap().to_owned())
                .collect();
            (key, cell["value"].as_i64().unwrap())
        })
        .collect()
}

/// The days of the questions: far enough back to hold every generated interaction.
fn range() -> (String, String) {
    let today = Utc::now().date_naive();
    ((today - Duration::days(120)).to_string(), today.to_string())
}

/// What one brute-force question counts for a person: the keys of the cells they are in.
type Cells = dyn Fn(&Person, usize) -> Vec<Vec<String>>;

/// A brute-force case: purpose, filter, group keys, bound, and the cells a person is in.
type Case<'a> = (&'a str, Option<Value>, Vec<&'a str>, Value, Box<Cells>);

/// The exact aggregate, by cell: per person with a basis who matches the filter, one per cell
/// they are in.
fn expected(
    people: &[Person],
    purpose: usize,
    filter: Option<&Value>,
    cells_of: &Cells,
) -> std::collections::BTreeMap<Vec<String>, i64> {
    let mut totals = std::collections::BTreeMap::new();
    for person in people {
        if !person.basis[purpose] || filter.is_some_and(|f| !matches(f, person, purpose)) {
            continue;
        }
        let mut keys = cells_of(person, purpose);
        keys.sort();
        keys.dedup();
        for key in keys {
            *totals.entry(key).or_insert(0) += 1;
        }
    }
    totals
}

#[tokio::test]
async fn answers_are_the_exact_aggregate_of_the_rules_plus_noise_from_the_index() {
    answers_are_the_exact_aggregate_plus_noise(Switch::On).await;
}

#[tokio::test]
async fn answers_are_the_exact_aggregate_of_the_rules_plus_noise_from_the_database() {
    answers_are_the_exact_aggregate_plus_noise(Switch::Off).await;
}

/// With ε = 9 per question and a sensitivity of one, the discrete Laplace noise is 0 but for one
/// draw in about 8,000, and ±2 or more one in 10⁷: a cell within 1 of the brute-force count is
/// the rules computed exactly. Each question is asked on a day of its own (the clock moves), so
/// that the day's budget of 10 pays for it.
async fn answers_are_the_exact_aggregate_plus_noise(index: Switch) {
    let (app, _policies) = app_with(10.0, index).await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let people = generate(&app, &collector, &compliance).await;
    app.run_job("population_index").await;
    let (from, to) = range();
    let any_usable = |person: &Person, p: usize| -> Vec<Vec<String>> {
        if person.usable[p].is_empty() {
            Vec::new()
        } else {
            vec![Vec::new()]
        }
    };
    let by_country = |person: &Person, p: usize| -> Vec<Vec<String>> {
        if person.usable[p].is_empty() {
            Vec::new()
        } else {
            vec![vec![person.country.to_owned()]]
        }
    };
    let by_type = |person: &Person, p: usize| -> Vec<Vec<String>> {
        person.usable[p]
            .iter()
            .map(|(kind, _, _)| vec![(*kind).to_owned()])
            .collect()
    };
    let narrowed = json!({"trait": "country", "in": ["DE", "AT"]});
    let cases: Vec<Case> = vec![
        ("marketing", None, vec![], json!({}), Box::new(any_usable)),
        (
            "marketing",
            Some(narrowed.clone()),
            vec![],
            json!({}),
            Box::new(any_usable),
        ),
        (
            "marketing.email",
            None,
            vec!["trait:country"],
            json!({}),
            Box::new(by_country),
        ),
        ("analytics", None, vec![], json!({}), Box::new(any_usable)),
        (
            "analytics",
            Some(json!({"interactions": {"type": "visit"}})),
            vec!["trait:country"],
            json!({}),
            Box::new(by_country),
        ),
        // A person may have both types: two cells each, a sensitivity of 2 (tolerance below).
        (
            "analytics",
            None,
            vec!["type"],
            json!({"cells": 2}),
            Box::new(by_type),
        ),
    ];
    let mut released = 0;
    for (purpose, filter, group_by, bound, cells_of) in &cases {
        app.clock.advance(std::time::Duration::from_secs(86_400));
        let role = if *purpose == "analytics" {
            "analyst"
        } else {
            "marketer"
        };
        let token = app.token_for(role).await;
        let mut question = json!({"purpose": purpose, "from": from, "to": to,
                                  "measure": "people", "group_by": group_by,
                                  "epsilon": 9.0, "bound": bound});
        if let Some(filter) = filter {
            question["filter"] = filter.clone();
        }
        let (status, answer) = ask(&app, &token, &question).await;
        assert_eq!(status, StatusCode::OK, "{question}: {answer}");
        let p = PURPOSES.iter().position(|x| x == purpose).unwrap();
        let exact = expected(&people, p, filter.as_ref(), cells_of.as_ref());
        let got = cells(&answer, group_by);
        // Keys from the data spend half of ε on choosing the values: the cells get 4.5, whose
        // noise at a sensitivity of 2 (`type`) is ±5 or more once in 40,000.
        let tolerance = if group_by.contains(&"type") { 4 } else { 1 };
        assert_eq!(answer["epsilon_spent"], 9.0);
        match answer["threshold"].as_i64() {
            None => {
                // Keys the question fixes: every cell, zeros included.
                assert_eq!(got.len(), 1.max(exact.len()), "{question}: {answer}");
                for (key, value) in &got {
                    let truth = exact.get(key).copied().unwrap_or(0);
                    assert!(
                        (value - truth).abs() <= tolerance,
                        "{question}: {key:?} {value} vs {truth}"
                    );
                }
            }
            Some(threshold) => {
                // Keys from the data: every cell released is one the data has, close to its
                // count; every cell well above the threshold is released.
                for (key, value) in &got {
                    let truth = exact.get(key).copied();
                    assert!(
                        truth.is_some(),
                        "{question}: a cell the data lacks: {key:?}"
                    );
                    assert!(
                        (value - truth.unwrap()).abs() <= tolerance,
                        "{question}: {key:?}"
                    );
                }
                for (key, truth) in &exact {
                    if *truth >= threshold + tolerance {
                        assert!(
                            got.iter().any(|(k, _)| k == key),
                            "{question}: {key:?} ({truth}) suppressed"
                        );
                    }
                }
            }
        }
        released += got.iter().filter(|(_, v)| *v > 0).count();
    }
    assert!(released >= 8, "the generated data gives real cells");
}

#[tokio::test]
async fn repeats_are_free_the_budget_runs_out_with_429_and_every_answer_is_audited() {
    let (app, _policies) = app_with(1.0, Switch::On).await;
    let marketer = app.token_for("marketer").await;
    let (from, to) = range();
    let question = |epsilon: f64| {
        json!({"purpose": "marketing", "from": from, "to": to, "measure": "interactions",
               "group_by": ["week"], "epsilon": epsilon})
    };
    let (status, first) = ask(&app, &marketer, &question(0.4)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["epsilon_spent"], 0.4);
    assert_eq!(first["repeated"], false);
    assert_eq!(first["budget"]["epsilon_left"], 0.6);
    // Every week of the range, zeros included, each with its interval.
    let weeks = {
        let monday = |day: chrono::NaiveDate| {
            day - Duration::days(i64::from(
                chrono::Datelike::weekday(&day).num_days_from_monday(),
            ))
        };
        let (first_day, last_day) = (from.parse().unwrap(), to.parse().unwrap());
        (monday(last_day) - monday(first_day)).num_days() / 7 + 1
    };
    assert_eq!(first["cells"].as_array().unwrap().len() as i64, weeks);
    for cell in first["cells"].as_array().unwrap() {
        let (value, interval) = (cell["value"].as_i64().unwrap(), &cell["interval"]);
        assert!(interval[0].as_i64().unwrap() <= value && value <= interval[1].as_i64().unwrap());
    }
    // The default bound: a cell per week, ten interactions each; the scale is its L1 over ε.
    assert_eq!(first["bound"], json!({"cells": weeks, "per_cell": 10}));
    let scale = first["noise_scale"].as_f64().unwrap();
    assert!((scale - weeks as f64 * 10.0 / 0.4).abs() < 1e-6, "{scale}");

    // The same question again, by another key of the same role: the released answer, free.
    let other = app.token_for("marketer").await;
    let (status, again) = ask(&app, &other, &question(0.4)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["cells"], first["cells"]);
    assert_eq!(
        (again["repeated"].clone(), again["epsilon_spent"].clone()),
        (json!(true), json!(0.0))
    );
    assert_eq!(again["budget"]["epsilon_left"], 0.6);

    // A child purpose draws on its parent's budget: marketing.email has none of its own.
    let (status, child) = ask(
        &app,
        &marketer,
        &json!({"purpose": "marketing.email",
        "from": from, "to": to, "measure": "people", "epsilon": 0.5}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{child}");
    assert_eq!(child["budget"]["epsilon_left"], 0.1);

    // More than is left: refused, with the time it resets.
    let response = app
        .post_json("/v1/insights", Some(&marketer), &question(0.2))
        .await;
    let retry_after: i64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after));
    assert_problem(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "privacy_budget_exhausted",
    )
    .await;

    let budget: Value = app
        .get("/v1/insights/budget", Some(&marketer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(budget["budgets"].as_array().unwrap().len(), 1, "{budget}");
    let marketing = &budget["budgets"][0];
    assert_eq!(marketing["purpose"], "marketing");
    assert_eq!(marketing["epsilon_per_day"], 1.0);
    assert_eq!(marketing["epsilon_spent"], 0.9);
    let resets_at = marketing["resets_at"].as_str().unwrap();
    assert!(resets_at.ends_with("T00:00:00Z"), "{resets_at}");

    // Each answer and the refusal are audited with the purpose, ε and the filter's hash.
    let compliance = app.token_for("compliance").await;
    let audit: Value = app
        .get("/v1/audit?action=insights.query", Some(&compliance))
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{audit}");
    let targets: Vec<&str> = entries
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets
            .iter()
            .filter(|t| t.ends_with(";epsilon:0.4;delta:0"))
            .count(),
        1
    );
    assert_eq!(
        targets
            .iter()
            .filter(|t| t.ends_with(";epsilon:0;delta:0"))
            .count(),
        1
    );
    assert!(targets.iter().all(|t| t.starts_with("filter:")));
    let denied: Vec<&Value> = entries.iter().filter(|e| e["decision"] == "deny").collect();
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["reason"], "privacy_budget_exhausted");
    assert!(entries
        .iter()
        .all(|e| e["purposes"].as_array().unwrap().len() == 1));

    // The next day, the budget is whole again.
    app.clock.advance(std::time::Duration::from_secs(86_400));
    let marketer = app.token_for("marketer").await;
    let (status, next_day) = ask(&app, &marketer, &question(0.2)).await;
    assert_eq!(status, StatusCode::OK, "{next_day}");
    assert_eq!(next_day["budget"]["epsilon_left"], 0.8);
}

#[tokio::test]
async fn parallel_questions_never_spend_more_than_the_budget() {
    let (app, _policies) = app_with(1.0, Switch::On).await;
    let (from, to) = range();
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(app.token_for("marketer").await);
    }
    // Twenty different questions at 0.1 each, from four keys at once, against a budget of 1.
    let asks = (0..20).map(|n| {
        let (app, token) = (&app, tokens[n % 4].clone());
        let question = json!({"purpose": "marketing", "from": from, "to": to,
                              "measure": "people", "epsilon": 0.1,
                              "filter": {"interactions": {"within_days": n + 1}}});
        async move { ask(app, &token, &question).await.0 }
    });
    let statuses = futures_util::future::join_all(asks).await;
    let answered = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((answered, refused), (10, 10), "{statuses:?}");
    let marketer = app.token_for("marketer").await;
    let budget: Value = app
        .get("/v1/insights/budget", Some(&marketer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(budget["budgets"][0]["epsilon_spent"], 1.0);
    assert_eq!(budget["budgets"][0]["epsilon_left"], 0.0);
}

/// People in countries of their own, consenting to marketing and buying once.
async fn buyers(app: &TestApp, collector: &str, country: &str, n: usize) {
    for i in 0..n {
        let id = format!("{country}-{i}");
        let response = app
            .request(
                reqwest::Method::PUT,
                &format!("/v1/subjects/{id}"),
                Some(collector),
                Some(&json!({"traits": {"country": country}})),
            )
            .await;
        assert!(response.status().is_success());
        let response = app
            .post_json(
                &format!("/v1/subjects/{id}/consents"),
                Some(collector),
                &json!({"purpose": "marketing", "status": "granted", "source": "web",
                        "method": "checkbox", "notice": {"id": "newsletter", "version": "3"}}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let response = app
            .post_json(
                "/v1/interactions",
                Some(collector),
                &json!({"id": format!("{id}-buy"), "subject_id": id, "type": "purchase",
                        "channel": "web", "occurred_at": (Utc::now() - Duration::days(2)).to_rfc3339(),
                        "purposes": ["marketing"]}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
}

#[tokio::test]
async fn a_value_only_one_person_has_is_suppressed_and_a_withdrawal_leaves_the_next_answer() {
    for index in [Switch::On, Switch::Off] {
        let (app, _policies) = app_with(10.0, index).await;
        let collector = app.token_for("collector").await;
        buyers(&app, &collector, "DE", 12).await;
        buyers(&app, &collector, "LU", 6).await;
        buyers(&app, &collector, "LI", 1).await;
        let (from, to) = range();
        let question = json!({"purpose": "marketing", "from": from, "to": to,
                              "measure": "people", "group_by": ["trait:country"],
                              "epsilon": 9.0});
        let marketer = app.token_for("marketer").await;
        let (status, before) = ask(&app, &marketer, &question).await;
        assert_eq!(status, StatusCode::OK, "{before}");
        let got = cells(&before, &["trait:country"]);
        let keys: Vec<&str> = got.iter().map(|(k, _)| k[0].as_str()).collect();
        assert_eq!(keys, ["DE", "LU"], "{before}");
        assert!(before["threshold"].as_i64().unwrap() > 1);
        assert!((got[1].1 - 6).abs() <= 1);

        // By week and country: every week of the range for each country selected, zeros
        // included; still no LI.
        app.clock.advance(std::time::Duration::from_secs(86_400));
        let marketer = app.token_for("marketer").await;
        let mut weekly = question.clone();
        weekly["group_by"] = json!(["week", "trait:country"]);
        let (status, by_week) = ask(&app, &marketer, &weekly).await;
        assert_eq!(status, StatusCode::OK, "{by_week}");
        let got = cells(&by_week, &["week", "trait:country"]);
        let weeks: std::collections::BTreeSet<&str> =
            got.iter().map(|(k, _)| k[0].as_str()).collect();
        assert!(weeks.len() >= 18, "{by_week}");
        assert_eq!(got.len(), weeks.len() * 2, "{by_week}");
        assert!(got.iter().all(|(k, _)| k[1] == "DE" || k[1] == "LU"));

        // Everyone in LU withdraws: the next answer (tomorrow's, or another question) has no
        // LU, and DE is untouched.
        for i in 0..6 {
            let response = app
                .post_json(
                    &format!("/v1/subjects/LU-{i}/consents"),
                    Some(&collector),
                    &json!({"purpose": "marketing", "status": "withdrawn", "source": "web",
                            "method": "checkbox"}),
                )
                .await;
            assert_eq!(response.status(), StatusCode::CREATED);
        }
        app.clock.advance(std::time::Duration::from_secs(86_400));
        let marketer = app.token_for("marketer").await;
        let (status, after) = ask(&app, &marketer, &question).await;
        assert_eq!(status, StatusCode::OK, "{after}");
        assert_eq!(after["repeated"], false);
        let got = cells(&after, &["trait:country"]);
        assert_eq!(got.len(), 1, "{after}");
        assert_eq!(got[0].0, ["DE"]);
        assert!((got[0].1 - 12).abs() <= 1);
    }
}

#[tokio::test]
async fn bad_questions_are_precise_and_spend_nothing() {
    let (app, _policies) = app_with(1.0, Switch::On).await;
    let marketer = app.token_for("marketer").await;
    let base = json!({"purpose": "marketing", "from": "2026-01-01", "to": "2026-03-31",
                      "measure": "people"});
    let with = |changes: Value| {
        let mut question = base.clone();
        for (k, v) in changes.as_object().unwrap() {
            question[k] = v.clone();
        }
        question
    };
    let cases = [
        (
            with(json!({"from": "2026-13-01"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_date",
        ),
        (
            with(json!({"to": "2025-12-31"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_range",
        ),
        (
            with(json!({"from": "2024-01-01"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "range_too_long",
        ),
        (
            with(json!({"measure": "revenue"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_measure",
        ),
        (
            with(json!({"group_by": ["week", "month"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_group_key",
        ),
        (
            with(json!({"group_by": ["day", "type", "channel"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_group_keys",
        ),
        (
            with(json!({"group_by": ["hour"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_group_key",
        ),
        (
            with(json!({"group_by": ["trait:email"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "non_segmentable_trait",
        ),
        (
            with(json!({"group_by": ["trait:shoe_size"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "undeclared_field",
        ),
        (
            with(json!({"epsilon": 0})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_epsilon",
        ),
        (
            with(json!({"epsilon": 11})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_epsilon",
        ),
        (
            with(json!({"bound": {"per_cell": 3}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_bound",
        ),
        (
            with(json!({"bound": {"cells": 0}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_bound",
        ),
        (
            with(json!({"filter": {"trait": "full_name", "in": ["x"]}})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "non_segmentable_trait",
        ),
        (
            with(json!({"purpose": "support"})),
            StatusCode::FORBIDDEN,
            "purpose_not_permitted",
        ),
        (
            with(json!({"purpose": "nope"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_purpose",
        ),
        (
            with(json!({"colour": "red"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
    ];
    for (question, status, code) in cases {
        let response = app
            .post_json("/v1/insights", Some(&marketer), &question)
            .await;
        assert_problem(response, status, code).await;
    }
    // A purpose the role holds but that has no budget.
    let lead = app.token_for("support_lead").await;
    let response = app
        .post_json(
            "/v1/insights",
            Some(&lead),
            &with(json!({"purpose": "support"})),
        )
        .await;
    assert_problem(response, StatusCode::FORBIDDEN, "no_privacy_budget").await;
    // Nothing was spent or released.
    let budget: Value = app
        .get("/v1/insights/budget", Some(&marketer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(budget["budgets"][0]["epsilon_spent"], 0.0);
    assert_eq!(
        crate::helpers::count_rows(&app, "insight_releases").await,
        0
    );
    // A role without the action.
    let collector = app.token_for("collector").await;
    let response = app.post_json("/v1/insights", Some(&collector), &base).await;
    assert_problem(response, StatusCode::FORBIDDEN, "action_not_permitted").await;
}

#[tokio::test]
async fn noisy_segment_sizes_draw_on_the_budget_and_are_never_suppressed() {
    let policies = policy(10.0);
    let roles = policies.path().join("roles.toml");
    let text = std::fs::read_to_string(&roles).unwrap();
    assert!(text.contains("[segments]\nmin_size = 10\n"));
    std::fs::write(
        &roles,
        text.replace(
            "[segments]\nmin_size = 10\n",
            "[segments]\nmin_size = 10\ncounts = \"noisy\"\nepsilon = 4.5\n",
        ),
    )
    .unwrap();
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let collector = app.token_for("collector").await;
    buyers(&app, &collector, "DE", 12).await;
    buyers(&app, &collector, "LI", 2).await;
    let marketer = app.token_for("marketer").await;
    let preview = |filter: Value| {
        let (app, marketer) = (&app, marketer.clone());
        async move {
            let response = app
                .post_json(
                    "/v1/segments/preview",
                    Some(&marketer),
                    &json!({"purpose": "marketing", "filter": filter}),
                )
                .await;
            (
                response.status(),
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let de = json!({"trait": "country", "in": ["DE"]});
    let (status, first) = preview(de.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["noisy"], true);
    assert_eq!(first["suppressed"], false);
    assert_eq!(first["epsilon_spent"], 4.5);
    // ε 4.5 at sensitivity one: the noise is 0 or ±1 but for about one draw in 8,000 × 7.
    assert!((first["size"].as_i64().unwrap() - 12).abs() <= 2, "{first}");
    let interval = first["interval"].as_array().unwrap();
    assert!(interval[0].as_i64().unwrap() <= first["size"].as_i64().unwrap());
    // Below min_size, and differing from the first by exactly the two people: answered all the
    // same (no suppression, no guard: the budget bounds what the answers reveal).
    let (status, small) = preview(json!({"trait": "country", "in": ["LI"]})).await;
    assert_eq!(status, StatusCode::OK, "{small}");
    assert!((small["size"].as_i64().unwrap() - 2).abs() <= 2, "{small}");
    assert_eq!(small["suppressed"], false);
    // The same filter again: the same size, free.
    let (_, again) = preview(de.clone()).await;
    assert_eq!(
        (again["size"].clone(), again["epsilon_spent"].clone()),
        (first["size"].clone(), json!(0.0))
    );
    // The budget of 10 paid for two sizes at 4.5; a third new filter is refused.
    let (status, refused) = preview(json!({"trait": "country", "in": ["DE", "LI"]})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{refused}");
    assert_eq!(refused["code"], "privacy_budget_exhausted");
    let budget: Value = app
        .get("/v1/insights/budget", Some(&marketer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(budget["budgets"][0]["epsilon_spent"], 9.0);
    let compliance = app.token_for("compliance").await;
    let audit: Value = app
        .get("/v1/audit?action=segments.preview", Some(&compliance))
        .await
        .json()
        .await
        .unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "{audit}");
    assert!(entries
        .iter()
        .all(|e| e["target"].as_str().unwrap().contains(";epsilon:")));
    assert_eq!(
        entries
            .iter()
            .filter(|e| e["reason"] == "privacy_budget_exhausted")
            .count(),
        1
    );
}

/// Buyers who each bought many times on one day.
async fn heavy_buyers(app: &TestApp, collector: &str, n: usize, purchases: usize) {
    buyers(app, collector, "NL", n).await;
    for i in 0..n {
        let batch: Vec<Value> = (0..purchases)
            .map(|k| {
                json!({"id": format!("NL-{i}-extra-{k}"), "subject_id": format!("NL-{i}"),
                       "type": "purchase", "channel": "web",
                       "occurred_at": (Utc::now() - Duration::days(2)).to_rfc3339(),
                       "purposes": ["marketing"]})
            })
            .collect();
        let response = app
            .post_json(
                "/v1/interactions/batch",
                Some(collector),
                &json!({ "interactions": batch }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn each_person_counts_at_most_the_bound_and_asking_a_differencing_pair_again_gains_nothing() {
    let (app, _policies) = app_with(10.0, Switch::On).await;
    let collector = app.token_for("collector").await;
    // Twelve people with 1 + 19 purchases each: 240 interactions.
    heavy_buyers(&app, &collector, 12, 19).await;
    let (from, to) = range();
    let marketer = app.token_for("marketer").await;
    let question = json!({"purpose": "marketing", "from": from, "to": to,
                          "measure": "interactions", "epsilon": 4.5,
                          "bound": {"cells": 1, "per_cell": 5}});
    let (status, bounded) = ask(&app, &marketer, &question).await;
    assert_eq!(status, StatusCode::OK, "{bounded}");
    // Five each at most: 60, not 240 (scale 5 / 4.5: ±8 is one draw in a million).
    let value = bounded["cells"][0]["value"].as_i64().unwrap();
    assert!((value - 60).abs() <= 8, "{bounded}");
    assert!((bounded["noise_scale"].as_f64().unwrap() - 5.0 / 4.5).abs() < 1e-6);

    // A differencing pair: everyone, and everyone but one person (by a trait only they have).
    let response = app
        .request(
            reqwest::Method::PUT,
            "/v1/subjects/NL-0",
            Some(&collector),
            Some(&json!({"traits": {"language": "fy"}})),
        )
        .await;
    assert!(response.status().is_success());
    let pair = [
        json!({"purpose": "marketing", "from": from, "to": to, "measure": "people",
               "epsilon": 2.5}),
        json!({"purpose": "marketing", "from": from, "to": to, "measure": "people",
               "epsilon": 2.5, "filter": {"not": {"trait": "language", "in": ["fy"]}}}),
    ];
    let mut first = Vec::new();
    for round in 0..5 {
        for (n, question) in pair.iter().enumerate() {
            let token = app.token_for("marketer").await;
            let (status, answer) = ask(&app, &token, question).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            if round == 0 {
                first.push(answer["cells"].clone());
            } else {
                // The same answer every time, from any key: nothing to average.
                assert_eq!(answer["cells"], first[n]);
                assert_eq!(answer["epsilon_spent"], 0.0);
            }
        }
    }
    let budget: Value = app
        .get("/v1/insights/budget", Some(&marketer))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(budget["budgets"][0]["epsilon_spent"], 4.5 + 2.5 + 2.5);
}
