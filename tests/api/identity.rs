//! Identity resolution through the tracking protocol (docs/tracking.md, "Identity
//! resolution"): anonymous visitors collected under their own ids, linked to a user when they
//! log in (one person for reads, segments, exports and erasure, including everything recorded
//! before), consent merged by the policy's rule, one anonymous id never folding two known
//! people into one, and nobody erased coming back through a link.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    contains_in_any_encoding, count_rows, database_dump, policy_with_extra_roles, spawn_app,
    spawn_app_with, TestApp,
};
use crate::tracking::{send, tracked};

const CONSENT_EVENT: &str = "Segment Consent Preference Updated";

/// A consent manager's answer from an anonymous visitor, with the evidence a browser SDK sends.
fn consent_event(message_id: &str, anonymous_id: &str, preferences: Value) -> Value {
    json!({
        "type": "track", "messageId": message_id, "anonymousId": anonymous_id,
        "event": CONSENT_EVENT,
        "context": {"ip": "198.51.100.23", "userAgent": "IdentityTest/1.0 (visitor)",
                    "library": {"name": "analytics.js", "version": "5.0.0"},
                    "consent": {"categoryPreferences": preferences}},
        "timestamp": "2026-11-01T09:00:00.000Z"
    })
}

/// A page view sent with the banner's answer in its context (as analytics.js does).
fn page(message_id: &str, who: (&str, &str), url: &str, advertising: bool) -> Value {
    let (key, id) = who;
    let mut message = json!({
        "type": "page", "messageId": message_id, "name": "Product",
        "properties": {"page_url": url},
        "context": {"library": {"name": "analytics.js", "version": "5.0.0"},
                    "consent": {"categoryPreferences": {"Advertising": advertising}}},
        "timestamp": "2026-11-01T09:05:00.000Z"
    });
    message[key] = json!(id);
    message
}

fn identify(message_id: &str, user_id: &str, anonymous_id: &str, traits: Value) -> Value {
    json!({"type": "identify", "messageId": message_id, "userId": user_id,
           "anonymousId": anonymous_id, "traits": traits,
           "timestamp": "2026-11-02T12:00:00.000Z"})
}

async fn batch(app: &TestApp, write_key: &str, messages: Vec<Value>) {
    let response = send(app, "/v1/batch", write_key, &json!({ "batch": messages })).await;
    let status = response.status();
    assert_eq!(status, StatusCode::OK, "{}", response.text().await.unwrap());
}

/// The value of `custodia_identity_links_total{outcome=…}` (0 when absent).
async fn links(app: &TestApp, outcome: &str) -> u64 {
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    let prefix = format!("custodia_identity_links_total{{outcome=\"{outcome}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// Records a withdrawal of marketing consent through the native API.
async fn withdraw_marketing(app: &TestApp, token: &str, subject: &str) {
    let withdrawn = app
        .post_json(
            &format!("/v1/subjects/{subject}/consents"),
            Some(token),
            &json!({"purpose": "marketing", "status": "withdrawn", "source": "web",
                    "method": "preference_center"}),
        )
        .await;
    assert_eq!(withdrawn.status(), StatusCode::CREATED);
}

/// The status of the person's current statement on marketing.
async fn current_marketing(app: &TestApp, token: &str, subject: &str) -> String {
    let state: Value = app
        .get_json(&format!("/v1/subjects/{subject}/consents"), Some(token))
        .await;
    let marketing = state["current"]
        .as_array()
        .unwrap()
        .iter()
        .find(|statement| statement["purpose"] == "marketing")
        .unwrap_or_else(|| panic!("{state}"));
    marketing["status"].as_str().unwrap().to_owned()
}

/// An application whose policy adds a role `id` with these `actions` for `analytics`; the
/// policy directory comes with it (it must live as long as the application).
async fn with_analytics_role(id: &str, actions: &str) -> (TestApp, tempfile::TempDir) {
    let policies = policy_with_extra_roles(&format!(
        "[[role]]\nid = \"{id}\"\nactions = {actions}\npurposes = [\"analytics\"]\n"
    ));
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    (app, policies)
}

async fn export(app: &TestApp, token: &str, subject: &str) -> Value {
    let response = app
        .get(&format!("/v1/subjects/{subject}/export"), Some(token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn an_anonymous_visitor_who_consents_browses_and_logs_in_is_one_person_until_erased() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let compliance = app.token_for("compliance").await;
    // Ten visitors (a segment count is shown from ten people): each answers the banner and
    // browses anonymously, then logs in and browses on.
    for n in 0..10 {
        let anonymous = format!("anon-visitor-{n}");
        batch(
            &app,
            &write_key,
            vec![
                consent_event(&format!("c-{n}"), &anonymous, json!({"Advertising": true})),
                page(
                    &format!("p-{n}"),
                    ("anonymousId", &anonymous),
                    "/shoes",
                    true,
                ),
            ],
        )
        .await;
    }
    assert_eq!(count_rows(&app, "subjects").await, 10);
    assert_eq!(count_rows(&app, "consent_records").await, 10);
    assert_eq!(tracked(&app, "consented").await, 10);
    // Each page view was collected for analytics and, with the grant, for marketing.
    assert_eq!(count_rows(&app, "interaction_purposes").await, 20);

    for n in 0..10 {
        let user = format!("user-visitor-{n}");
        batch(
            &app,
            &write_key,
            vec![
                identify(
                    &format!("i-{n}"),
                    &user,
                    &format!("anon-visitor-{n}"),
                    json!({"email": format!("visitor{n}@example.com"), "country": "DE"}),
                ),
                page(&format!("q-{n}"), ("userId", &user), "/checkout", true),
            ],
        )
        .await;
    }
    // The anonymous person took the user id: nothing to merge, one person each.
    assert_eq!(links(&app, "linked").await, 10);
    assert_eq!(count_rows(&app, "subjects").await, 10);
    assert_eq!(count_rows(&app, "subject_aliases").await, 10);
    assert_eq!(count_rows(&app, "interactions").await, 20);
    // The page after login was collected for marketing on the anonymous grant: one person.
    assert_eq!(count_rows(&app, "interaction_purposes").await, 40);

    // Marketers count each visitor once, with their anonymous and known history together.
    let marketer = app.token_for("marketer").await;
    let answer = app
        .post_json(
            "/v1/segments/preview",
            Some(&marketer),
            &json!({"purpose": "marketing",
                    "filter": {"interactions": {"type": "page", "at_least": 2}}}),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let answer: Value = answer.json().await.unwrap();
    assert_eq!(answer["size"], 10, "{answer}");

    // The export holds the anonymous period: the anonymous id, the statement with its
    // evidence and notice, and the pages browsed before the login.
    let bundle = export(&app, &compliance, "user-visitor-3").await;
    assert_eq!(bundle["subject"]["subject_id"], "user-visitor-3");
    assert_eq!(
        bundle["subject"]["anonymous_ids"],
        json!(["anon-visitor-3"])
    );
    let consents = bundle["consents"].as_array().unwrap();
    assert_eq!(consents.len(), 1, "{bundle}");
    assert_eq!(consents[0]["purpose"], "marketing");
    assert_eq!(consents[0]["status"], "granted");
    assert_eq!(consents[0]["notice"]["id"], "cookies");
    assert_eq!(consents[0]["method"], "banner");
    assert_eq!(consents[0]["source"], "web");
    assert_eq!(consents[0]["evidence"]["ip_address"], "198.51.100.23");
    assert_eq!(consents[0]["id"], "c-3/marketing");
    let receipt = consents[0]["receipt"].as_str().expect("a receipt");
    assert_eq!(receipt.split('.').count(), 3, "a compact JWS");
    let pages: Vec<&str> = bundle["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert_eq!(pages.len(), 2, "{bundle}");
    assert!(
        pages.contains(&"p-3") && pages.contains(&"q-3"),
        "{pages:?}"
    );

    // Neither id, nor the evidence, is in the database in clear.
    let dump = database_dump(&app).await;
    for secret in [
        "anon-visitor-3",
        "user-visitor-3",
        "198.51.100.23",
        "IdentityTest",
    ] {
        assert!(
            !contains_in_any_encoding(&dump, secret),
            "{secret} is stored in clear"
        );
    }

    // Erasure removes both identities; with suppression neither comes back.
    let erased = app
        .delete(
            "/v1/subjects/user-visitor-3?suppress=true",
            Some(&compliance),
        )
        .await;
    assert_eq!(erased.status(), StatusCode::OK);
    assert_eq!(count_rows(&app, "subjects").await, 9);
    assert_eq!(count_rows(&app, "subject_aliases").await, 9);
    assert_eq!(count_rows(&app, "interactions").await, 18);
    assert_eq!(count_rows(&app, "consent_records").await, 9);
    let refused_before = tracked(&app, "refused").await;
    batch(
        &app,
        &write_key,
        vec![
            page("r-1", ("anonymousId", "anon-visitor-3"), "/back", false),
            identify("r-2", "user-new-3", "anon-visitor-3", json!({})),
        ],
    )
    .await;
    assert_eq!(tracked(&app, "refused").await, refused_before + 1);
    assert_eq!(links(&app, "suppressed").await, 1);
    // The new user exists (their identify stood), without the erased visitor's id or history.
    assert_eq!(count_rows(&app, "subject_aliases").await, 9);
    assert_eq!(count_rows(&app, "interactions").await, 18);
}

#[tokio::test]
async fn linking_merges_both_histories_under_the_known_person_with_the_stricter_consent() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    // Known: a customer who withdrew marketing consent, with a support chat.
    withdraw_marketing(&app, &collector, "user-merge").await;
    batch(
        &app,
        &write_key,
        vec![crate::tracking::track(
            "k-1",
            "user-merge",
            "Support Chat Started",
            json!({"message": "where is my order"}),
        )],
    )
    .await;
    // Anonymous, on another device, later: grants advertising and browses.
    batch(
        &app,
        &write_key,
        vec![
            consent_event("c-m", "anon-merge", json!({"Advertising": true})),
            page("p-m", ("anonymousId", "anon-merge"), "/sale", true),
        ],
    )
    .await;
    assert_eq!(count_rows(&app, "subjects").await, 2);
    assert_eq!(count_rows(&app, "data_keys").await, 2);

    batch(
        &app,
        &write_key,
        vec![identify("i-m", "user-merge", "anon-merge", json!({}))],
    )
    .await;
    assert_eq!(links(&app, "merged").await, 1);
    // The visitor is a member of the customer now: their row and key stay (their interactions
    // are sealed under it), found by no id of their own.
    assert_eq!(count_rows(&app, "subjects").await, 2);
    assert_eq!(count_rows(&app, "data_keys").await, 2);
    assert_eq!(count_rows(&app, "subject_members").await, 1);
    assert_eq!(count_rows(&app, "interactions").await, 2);
    assert_eq!(count_rows(&app, "consent_records").await, 2);

    // Both histories are the known person's, readable under their key.
    let bundle = export(&app, &compliance, "user-merge").await;
    assert_eq!(bundle["subject"]["anonymous_ids"], json!(["anon-merge"]));
    let ids: Vec<&str> = bundle["interactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"k-1") && ids.contains(&"p-m"), "{ids:?}");
    let consents = bundle["consents"].as_array().unwrap();
    assert_eq!(consents.len(), 2, "both histories are kept");
    let merged: Vec<&Value> = consents
        .iter()
        .filter(|statement| statement["merged_from"].is_string())
        .collect();
    assert_eq!(
        merged.len(),
        1,
        "the anonymous grant names where it came from"
    );
    assert_eq!(merged[0]["status"], "granted");
    assert!(merged[0]["sequence"].as_i64() > consents[0]["sequence"].as_i64());
    // Most restrictive: the known side's withdrawal stands over the later anonymous grant.
    assert_eq!(
        current_marketing(&app, &compliance, "user-merge").await,
        "withdrawn"
    );
    // So a page sent now with the banner's allowance is not collected for marketing.
    let before = count_rows(&app, "interaction_purposes").await;
    batch(
        &app,
        &write_key,
        vec![page("p-m2", ("anonymousId", "anon-merge"), "/sale", true)],
    )
    .await;
    assert_eq!(
        count_rows(&app, "interaction_purposes").await,
        before + 1,
        "analytics only"
    );

    // The merge is audited, naming both people by pseudonym.
    let audit: Value = app
        .get_json("/v1/audit?action=subjects.link", Some(&compliance))
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["decision"], "allow");
    assert_eq!(entries[0]["subjects"].as_array().unwrap().len(), 2);
    assert_eq!(entries[0]["records"], 2);

    // Erasing the known person erases the merged history and both ids.
    let erased = app
        .delete("/v1/subjects/user-merge", Some(&compliance))
        .await;
    assert_eq!(erased.status(), StatusCode::OK);
    for table in [
        "subjects",
        "interactions",
        "consent_records",
        "subject_aliases",
        "subject_members",
        "data_keys",
    ] {
        assert_eq!(count_rows(&app, table).await, 0, "{table}");
    }
}

#[tokio::test]
async fn under_the_latest_rule_the_later_statement_stands_after_a_merge() {
    let policies = policy_with_extra_roles("");
    let tracking = std::fs::read_to_string(policies.path().join("tracking.toml")).unwrap();
    std::fs::write(
        policies.path().join("tracking.toml"),
        tracking.replace(
            "merge_consent = \"most_restrictive\"",
            "merge_consent = \"latest\"",
        ),
    )
    .unwrap();
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let write_key = app.create_api_key("collector").await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    withdraw_marketing(&app, &collector, "user-latest").await;
    batch(
        &app,
        &write_key,
        vec![consent_event(
            "c-l",
            "anon-latest",
            json!({"Advertising": true}),
        )],
    )
    .await;
    batch(
        &app,
        &write_key,
        vec![
            json!({"type": "alias", "messageId": "a-l", "userId": "user-latest",
                    "previousId": "anon-latest"}),
        ],
    )
    .await;
    assert_eq!(links(&app, "merged").await, 1);
    assert_eq!(
        current_marketing(&app, &compliance, "user-latest").await,
        "granted"
    );
}

#[tokio::test]
async fn one_anonymous_id_never_folds_two_known_people_into_one() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let compliance = app.token_for("compliance").await;
    batch(
        &app,
        &write_key,
        vec![
            page("s-1", ("anonymousId", "anon-shared"), "/", false),
            identify("s-2", "user-first", "anon-shared", json!({})),
        ],
    )
    .await;
    // The shared tablet: a known customer logs in with the same anonymous id.
    batch(
        &app,
        &write_key,
        vec![
            json!({"type": "identify", "messageId": "s-0", "userId": "user-second",
                    "traits": {"country": "FR"}}),
        ],
    )
    .await;
    batch(
        &app,
        &write_key,
        vec![
            identify(
                "s-3",
                "user-second",
                "anon-shared",
                json!({"country": "FR"}),
            ),
            page("s-4", ("anonymousId", "anon-shared"), "/after", false),
        ],
    )
    .await;
    assert_eq!(links(&app, "linked").await, 1);
    assert_eq!(links(&app, "claimed").await, 1);
    // Two people: the second user's identify stood on its own, the link did not.
    assert_eq!(count_rows(&app, "subjects").await, 2);
    assert_eq!(count_rows(&app, "subject_aliases").await, 1);
    let first = export(&app, &compliance, "user-first").await;
    assert_eq!(first["interactions"].as_array().unwrap().len(), 2);
    let second = export(&app, &compliance, "user-second").await;
    assert_eq!(second["subject"]["anonymous_ids"], json!([]));
    assert_eq!(second["interactions"].as_array().unwrap().len(), 0);
    // Refused and audited, naming both people.
    let audit: Value = app
        .get_json("/v1/audit?action=subjects.link", Some(&compliance))
        .await;
    let refused: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["decision"] == "deny")
        .collect();
    assert_eq!(refused.len(), 1, "{audit}");
    assert_eq!(refused[0]["reason"], "identity_claimed");
    assert_eq!(refused[0]["subjects"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_request_may_name_a_visitor_by_their_anonymous_id() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let compliance = app.token_for("compliance").await;
    batch(
        &app,
        &write_key,
        vec![
            consent_event("c-r", "anon-request", json!({"Advertising": true})),
            page("p-r", ("anonymousId", "anon-request"), "/", true),
        ],
    )
    .await;
    let filed = app
        .post_json(
            "/v1/requests",
            Some(&compliance),
            &json!({"type": "erasure", "regulation": "gdpr", "anonymous_id": "anon-request"}),
        )
        .await;
    assert_eq!(filed.status(), StatusCode::CREATED);
    let filed: Value = filed.json().await.unwrap();
    assert_eq!(filed["subject"], json!({"anonymous_id": "anon-request"}));
    let id = filed["id"].as_str().unwrap();
    for action in ["verify", "execute"] {
        let response = app
            .post_json(
                &format!("/v1/requests/{id}/{action}"),
                Some(&compliance),
                &json!({}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{action}");
        if action == "execute" {
            let done: Value = response.json().await.unwrap();
            assert_eq!(done["status"], "completed", "{done}");
            assert_eq!(done["result"]["subject_found"], true, "{done}");
        }
    }
    for table in ["subjects", "interactions", "consent_records", "data_keys"] {
        assert_eq!(count_rows(&app, table).await, 0, "{table}");
    }
}

#[tokio::test]
async fn two_users_claiming_one_anonymous_id_at_once_get_one_link() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    const ROUNDS: usize = 6;
    for round in 0..ROUNDS {
        let anonymous = format!("anon-race-{round}");
        batch(
            &app,
            &write_key,
            vec![page(
                &format!("r{round}"),
                ("anonymousId", &anonymous),
                "/",
                false,
            )],
        )
        .await;
        let claim = |user: String| {
            let message = identify(&format!("{user}-i"), &user, &anonymous, json!({}));
            let (app, write_key) = (&app, &write_key);
            async move { batch(app, write_key, vec![message]).await }
        };
        tokio::join!(
            claim(format!("user-race-a{round}")),
            claim(format!("user-race-b{round}"))
        );
    }
    // Each anonymous id went to exactly one of the two users; the other was refused.
    assert_eq!(
        links(&app, "linked").await + links(&app, "merged").await,
        ROUNDS as u64
    );
    assert_eq!(links(&app, "claimed").await, ROUNDS as u64);
    assert_eq!(count_rows(&app, "subject_aliases").await, ROUNDS as i64);
    // Per round: the visitor, who became one of the users, and the other user.
    assert_eq!(count_rows(&app, "subjects").await, 2 * ROUNDS as i64);
    assert_eq!(count_rows(&app, "interactions").await, ROUNDS as i64);
}

#[tokio::test]
async fn a_consent_event_is_held_to_the_roles_purposes_and_a_grant_needs_the_banners_notice() {
    // A role that may collect events but record no consent.
    let policies = policy_with_extra_roles(
        "[[role]]\nid = \"tracker\"\nactions = [\"interactions.write\"]\npurposes = [\"analytics\", \"marketing\"]\n",
    );
    let tracking = std::fs::read_to_string(policies.path().join("tracking.toml")).unwrap();
    let without_notice: String = tracking
        .lines()
        .filter(|line| !line.starts_with("consent_notice"))
        .collect::<Vec<_>>()
        .join("\n");
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let compliance = app.token_for("compliance").await;
    let tracker = app.create_api_key("tracker").await;
    batch(
        &app,
        &tracker,
        vec![
            consent_event("c-t", "anon-tracker", json!({"Advertising": true})),
            page("p-t", ("anonymousId", "anon-tracker"), "/", true),
        ],
    )
    .await;
    // The statement was refused, and audited; the page was collected for analytics only.
    assert_eq!(count_rows(&app, "consent_records").await, 0);
    assert_eq!(tracked(&app, "refused").await, 1);
    assert_eq!(count_rows(&app, "interaction_purposes").await, 1);
    let audit: Value = app
        .get_json(
            "/v1/audit?action=consents.write&decision=deny",
            Some(&compliance),
        )
        .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["purposes"], json!(["marketing"]));

    // Without the banner's notice in the policy, a grant cannot say what the person agreed to.
    let policies = policy_with_extra_roles("");
    std::fs::write(policies.path().join("tracking.toml"), &without_notice).unwrap();
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let write_key = app.create_api_key("collector").await;
    let response = send(
        &app,
        "/v1/batch",
        &write_key,
        &json!({"batch": [consent_event("c-n", "anon-notice", json!({"Advertising": true}))]}),
    )
    .await;
    crate::helpers::assert_problem(
        response,
        StatusCode::BAD_REQUEST,
        "consent_notice_not_configured",
    )
    .await;
    // A withdrawal needs no notice.
    batch(
        &app,
        &write_key,
        vec![consent_event(
            "c-w",
            "anon-notice",
            json!({"Advertising": false}),
        )],
    )
    .await;
    assert_eq!(count_rows(&app, "consent_records").await, 1);
}

#[tokio::test]
async fn a_refusal_about_an_anonymous_visitor_names_them_not_a_user_with_the_same_id() {
    let (app, _policies) = with_analytics_role("web_tag", r#"["interactions.write"]"#).await;
    let write_key = app.create_api_key("web_tag").await;
    let compliance = app.token_for("compliance").await;
    // A user and an anonymous visitor whose ids are the same string: two people.
    batch(
        &app,
        &write_key,
        vec![page("s-1", ("userId", "same-id"), "/", false)],
    )
    .await;
    batch(
        &app,
        &write_key,
        vec![page("s-2", ("anonymousId", "same-id"), "/", false)],
    )
    .await;
    assert_eq!(count_rows(&app, "subjects").await, 2);
    let writes: Value = app
        .get_json(
            "/v1/audit?action=interactions.write&decision=allow",
            Some(&compliance),
        )
        .await;
    let pseudonyms: Vec<Value> = writes["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["subjects"][0].clone())
        .collect();
    assert_eq!(pseudonyms.len(), 2, "{writes}");
    assert_ne!(pseudonyms[0], pseudonyms[1]);
    // An order about the visitor, which this role may not collect for: refused, and the
    // refusal names the visitor.
    let mut order = crate::tracking::track("s-3", "ignored", "Order Completed", json!({}));
    order.as_object_mut().unwrap().remove("userId");
    order["anonymousId"] = json!("same-id");
    batch(&app, &write_key, vec![order]).await;
    let denied: Value = app
        .get_json(
            "/v1/audit?action=interactions.write&decision=deny",
            Some(&compliance),
        )
        .await;
    let entries = denied["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{denied}");
    // The user's pseudonym is the one the audit log finds by their user id.
    let about_user: Value = app
        .get_json("/v1/audit?subject_id=same-id", Some(&compliance))
        .await;
    let user = about_user["entries"][0]["subjects"][0].clone();
    assert!(pseudonyms.contains(&user), "{about_user}");
    let visitor = pseudonyms
        .iter()
        .find(|pseudonym| **pseudonym != user)
        .cloned()
        .unwrap();
    assert_eq!(entries[0]["subjects"], json!([visitor]), "{denied}");
}

/// The `id`s of a list of interactions, sorted.
fn ids_of(items: &Value) -> Vec<String> {
    let mut ids: Vec<String> = items
        .as_array()
        .unwrap_or_else(|| panic!("{items}"))
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

/// A segment preview's size for a fresh key of `role` (the differencing guard is per key).
async fn preview_size(app: &TestApp, role: &str, purpose: &str, filter: Value) -> Value {
    let token = app.token_for(role).await;
    let answer = app
        .post_json(
            "/v1/segments/preview",
            Some(&token),
            &json!({"purpose": purpose, "filter": filter}),
        )
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let answer: Value = answer.json().await.unwrap();
    answer["size"].clone()
}

#[tokio::test]
async fn a_merged_visitor_keeps_their_rows_and_every_reader_sees_one_person() {
    let (app, _policies) =
        with_analytics_role("analyst", r#"["segments.query", "interactions.read"]"#).await;
    let write_key = app.create_api_key("collector").await;
    let compliance = app.token_for("compliance").await;
    // Ten visitors who grant advertising and view two pages, and ten customers (one page each,
    // no consent), on other devices: twenty people.
    for n in 0..10 {
        let anonymous = format!("anon-member-{n}");
        let user = format!("user-member-{n}");
        batch(
            &app,
            &write_key,
            vec![
                consent_event(&format!("c-{n}"), &anonymous, json!({"Advertising": true})),
                page(&format!("a-{n}-1"), ("anonymousId", &anonymous), "/a", true),
                page(&format!("a-{n}-2"), ("anonymousId", &anonymous), "/b", true),
                page(&format!("u-{n}"), ("userId", &user), "/account", false),
            ],
        )
        .await;
    }
    assert_eq!(count_rows(&app, "subjects").await, 20);
    for n in 0..10 {
        batch(
            &app,
            &write_key,
            vec![identify(
                &format!("i-{n}"),
                &format!("user-member-{n}"),
                &format!("anon-member-{n}"),
                json!({}),
            )],
        )
        .await;
    }
    assert_eq!(links(&app, "merged").await, 10);
    // Nothing of the visitors' interactions moved: each visitor is a member of the customer,
    // with their own key, which their interactions stay sealed under.
    assert_eq!(count_rows(&app, "subjects").await, 20);
    assert_eq!(count_rows(&app, "data_keys").await, 20);
    assert_eq!(count_rows(&app, "subject_members").await, 10);
    assert_eq!(count_rows(&app, "interactions").await, 30);
    // The consent statements did move (the ledger is the person's).
    assert_eq!(
        current_marketing(&app, &compliance, "user-member-4").await,
        "granted"
    );

    // Segments count people, not rows: ten, whatever the members hold, and a person's count
    // is their own interactions and their members' together.
    let page_views =
        |at_least: u32| json!({"interactions": {"type": "page", "at_least": at_least}});
    assert_eq!(
        preview_size(&app, "analyst", "analytics", page_views(1)).await,
        10
    );
    assert_eq!(
        preview_size(&app, "analyst", "analytics", page_views(3)).await,
        10
    );
    assert_eq!(
        preview_size(&app, "analyst", "analytics", page_views(4)).await,
        Value::Null
    );
    // Nobody has fewer than three: neither a customer counted without their visitor's pages,
    // nor a visitor counted as a person of their own.
    assert_eq!(
        preview_size(&app, "analyst", "analytics", json!({"not": page_views(3)})).await,
        Value::Null
    );
    // Marketing: only the visitors' pages were collected for it, and the grant is the person's.
    assert_eq!(
        preview_size(&app, "marketer", "marketing", page_views(2)).await,
        10
    );

    // Reading the customer's interactions returns the visitor's too, each opened with the key
    // it was sealed under.
    let analyst = app.token_for("analyst").await;
    let read: Value = app
        .get_json(
            "/v1/subjects/user-member-3/interactions?purpose=analytics",
            Some(&analyst),
        )
        .await;
    assert_eq!(
        ids_of(&read["interactions"]),
        ["a-3-1", "a-3-2", "u-3"],
        "{read}"
    );
    // The export and the console's glance hold all three.
    let bundle = export(&app, &compliance, "user-member-3").await;
    assert_eq!(ids_of(&bundle["interactions"]), ["a-3-1", "a-3-2", "u-3"]);
    assert_eq!(bundle["subject"]["anonymous_ids"], json!(["anon-member-3"]));
    let glance: Value = app
        .get_json("/v1/subjects/user-member-3", Some(&compliance))
        .await;
    assert_eq!(
        ids_of(&glance["timeline"]),
        ["a-3-1", "a-3-2", "u-3"],
        "{glance}"
    );

    // The SDK retrying a page sent before the login is recognised, under the member; a new
    // page from the anonymous id is the person's.
    batch(
        &app,
        &write_key,
        vec![
            page("a-3-1", ("anonymousId", "anon-member-3"), "/a", true),
            page("a-3-3", ("anonymousId", "anon-member-3"), "/c", true),
        ],
    )
    .await;
    assert_eq!(count_rows(&app, "interactions").await, 31);
    let bundle = export(&app, &compliance, "user-member-3").await;
    assert_eq!(
        ids_of(&bundle["interactions"]),
        ["a-3-1", "a-3-2", "a-3-3", "u-3"]
    );

    // Erasure: the preview counts the members' interactions, and the erasure destroys both
    // keys and every row of both.
    let preview: Value = app
        .get_json(
            "/v1/subjects/user-member-3/erasure-preview",
            Some(&compliance),
        )
        .await;
    assert_eq!(preview["interactions"], 4, "{preview}");
    let erased = app
        .delete("/v1/subjects/user-member-3", Some(&compliance))
        .await;
    assert_eq!(erased.status(), StatusCode::OK);
    let erased: Value = erased.json().await.unwrap();
    assert_eq!(erased["counts"]["data_keys"], 2, "{erased}");
    assert_eq!(erased["counts"]["interactions"], 4, "{erased}");
    assert_eq!(count_rows(&app, "subjects").await, 18);
    assert_eq!(count_rows(&app, "data_keys").await, 18);
    assert_eq!(count_rows(&app, "subject_members").await, 9);
    assert_eq!(count_rows(&app, "interactions").await, 27);
    let gone = app
        .get(
            "/v1/subjects/anon-member-3/erasure-preview",
            Some(&compliance),
        )
        .await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_sha256_index_backfill_finds_nothing_to_do_for_visitors_and_merged_people() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    // A visitor who stays anonymous, and one merged into the customer they log in as.
    batch(
        &app,
        &write_key,
        vec![
            page("b-1", ("anonymousId", "anon-backfill-1"), "/", false),
            page("b-2", ("anonymousId", "anon-backfill-2"), "/", false),
            page("b-3", ("userId", "user-backfill-2"), "/", false),
        ],
    )
    .await;
    batch(
        &app,
        &write_key,
        vec![identify(
            "b-4",
            "user-backfill-2",
            "anon-backfill-2",
            json!({}),
        )],
    )
    .await;
    assert_eq!(count_rows(&app, "subject_members").await, 1);
    // Neither has (nor can have) a SHA-256 index of a user id: a batch of the backfill must not
    // pick them up again, or it never finishes.
    let database = app.database();
    let master_key = app.settings.master_key_file.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().expect("a connection");
        let vault = custodia::vault::Vault::open(&mut conn, &master_key).expect("the vault");
        custodia::subjects::backfill_hashed_indexes(&mut conn, &vault, 100).expect("a batch")
    })
    .await
    .unwrap();
    assert_eq!(done, 0);
}

#[tokio::test]
async fn the_consolidation_job_folds_merged_visitors_into_their_person_and_destroys_their_keys() {
    let (app, _policies) = with_analytics_role("analyst", r#"["segments.query"]"#).await;
    let write_key = app.create_api_key("collector").await;
    let compliance = app.token_for("compliance").await;
    for n in 0..10 {
        let anonymous = format!("anon-fold-{n}");
        let user = format!("user-fold-{n}");
        batch(
            &app,
            &write_key,
            vec![
                page(
                    &format!("a-{n}-1"),
                    ("anonymousId", &anonymous),
                    "/a",
                    false,
                ),
                page(
                    &format!("a-{n}-2"),
                    ("anonymousId", &anonymous),
                    "/b",
                    false,
                ),
                page(&format!("u-{n}"), ("userId", &user), "/account", false),
            ],
        )
        .await;
        batch(
            &app,
            &write_key,
            vec![identify(&format!("i-{n}"), &user, &anonymous, json!({}))],
        )
        .await;
    }
    assert_eq!(count_rows(&app, "subject_members").await, 10);
    assert_eq!(count_rows(&app, "data_keys").await, 20);

    app.run_job("member_consolidation").await;

    // Every visitor's pages are their person's now, under the person's key; the visitors' rows
    // and keys are gone.
    assert_eq!(count_rows(&app, "subject_members").await, 0);
    assert_eq!(count_rows(&app, "subjects").await, 10);
    assert_eq!(count_rows(&app, "data_keys").await, 10);
    assert_eq!(count_rows(&app, "interactions").await, 30);
    assert_eq!(count_rows(&app, "interaction_purposes").await, 30);
    let page_views =
        |at_least: u32| json!({"interactions": {"type": "page", "at_least": at_least}});
    assert_eq!(
        preview_size(&app, "analyst", "analytics", page_views(3)).await,
        10
    );
    assert_eq!(
        preview_size(&app, "analyst", "analytics", page_views(4)).await,
        Value::Null
    );
    let bundle = export(&app, &compliance, "user-fold-7").await;
    assert_eq!(ids_of(&bundle["interactions"]), ["a-7-1", "a-7-2", "u-7"]);
    assert_eq!(bundle["subject"]["anonymous_ids"], json!(["anon-fold-7"]));

    // A retry of a page sent before the login is still recognised; a new one is stored.
    batch(
        &app,
        &write_key,
        vec![
            page("a-7-2", ("anonymousId", "anon-fold-7"), "/b", false),
            page("a-7-3", ("anonymousId", "anon-fold-7"), "/c", false),
        ],
    )
    .await;
    assert_eq!(count_rows(&app, "interactions").await, 31);

    // Nothing in the database opens with a destroyed visitor key: the history reads whole.
    let bundle = export(&app, &compliance, "user-fold-7").await;
    assert_eq!(
        ids_of(&bundle["interactions"]),
        ["a-7-1", "a-7-2", "a-7-3", "u-7"]
    );
    let erased = app
        .delete("/v1/subjects/user-fold-7", Some(&compliance))
        .await;
    assert_eq!(erased.status(), StatusCode::OK);
    assert_eq!(count_rows(&app, "interactions").await, 27);
    assert_eq!(count_rows(&app, "data_keys").await, 9);
}

#[tokio::test]
async fn an_erasure_racing_the_consolidation_of_its_members_leaves_nothing_behind() {
    let app = spawn_app().await;
    let write_key = app.create_api_key("collector").await;
    let compliance = app.token_for("compliance").await;
    // One customer with three merged visitors of 1,200 pages each (several steps each).
    for n in 0..3 {
        let anonymous = format!("anon-race-{n}");
        for chunk in 0..3 {
            let pages = (0..400)
                .map(|i| {
                    page(
                        &format!("r-{n}-{chunk}-{i}"),
                        ("anonymousId", &anonymous),
                        "/p",
                        false,
                    )
                })
                .collect();
            batch(&app, &write_key, pages).await;
        }
        batch(
            &app,
            &write_key,
            vec![identify(
                &format!("i-{n}"),
                "user-race",
                &anonymous,
                json!({}),
            )],
        )
        .await;
    }
    assert_eq!(
        count_rows(&app, "subject_members").await,
        2,
        "the first visitor took the user id"
    );
    assert_eq!(count_rows(&app, "interactions").await, 3_600);

    let (_, erased) = tokio::join!(
        app.run_job("member_consolidation"),
        app.delete("/v1/subjects/user-race", Some(&compliance)),
    );
    assert_eq!(erased.status(), StatusCode::OK);
    let erased: Value = erased.json().await.unwrap();
    assert_eq!(erased["counts"]["interactions"], 3_600, "{erased}");
    for table in [
        "subjects",
        "data_keys",
        "interactions",
        "interaction_purposes",
        "subject_members",
    ] {
        assert_eq!(count_rows(&app, table).await, 0, "{table}");
    }
}

#[tokio::test]
async fn reads_during_a_consolidation_always_see_the_whole_person() {
    let (app, _policies) = with_analytics_role("analyst", r#"["interactions.read"]"#).await;
    let write_key = app.create_api_key("collector").await;
    let compliance = app.token_for("compliance").await;
    let analyst = app.token_for("analyst").await;
    // A customer with two merged visitors of 1,000 pages each (two steps each to fold in).
    batch(
        &app,
        &write_key,
        vec![page("own", ("userId", "user-reads"), "/", false)],
    )
    .await;
    for n in 0..2 {
        let anonymous = format!("anon-reads-{n}");
        for chunk in 0..2 {
            let pages = (0..500)
                .map(|i| {
                    page(
                        &format!("p-{n}-{chunk}-{i}"),
                        ("anonymousId", &anonymous),
                        "/",
                        false,
                    )
                })
                .collect();
            batch(&app, &write_key, pages).await;
        }
        batch(
            &app,
            &write_key,
            vec![identify(
                &format!("i-{n}"),
                "user-reads",
                &anonymous,
                json!({}),
            )],
        )
        .await;
    }
    assert_eq!(count_rows(&app, "subject_members").await, 2);

    let reads = async {
        let mut seen = Vec::new();
        for _ in 0..30 {
            let read = app
                .get(
                    "/v1/subjects/user-reads/interactions?purpose=analytics&limit=100",
                    Some(&analyst),
                )
                .await;
            assert_eq!(read.status(), StatusCode::OK);
            let read: Value = read.json().await.unwrap();
            seen.push(read["interactions"].as_array().unwrap().len());
            let preview: Value = app
                .get_json("/v1/subjects/user-reads/erasure-preview", Some(&compliance))
                .await;
            assert_eq!(preview["interactions"], 2_001, "{preview}");
        }
        seen
    };
    let ((), seen) = tokio::join!(app.run_job("member_consolidation"), reads);
    assert!(seen.iter().all(|n| *n == 100), "{seen:?}");
    assert_eq!(count_rows(&app, "subject_members").await, 0);
    let bundle = export(&app, &compliance, "user-reads").await;
    assert_eq!(bundle["interactions"].as_array().unwrap().len(), 2_001);
}
