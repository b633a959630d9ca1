//! The audit log through the API and the command line: what is recorded (and what never is),
//! denials, queries, verification that finds each kind of tampering at its entry, signed
//! checkpoints that catch truncation and rewritten history, the database refusing changes,
//! and two server processes writing one chain.

use std::process::Output;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, custodia_command, fresh_database, policy_with_extra_roles, spawn_app,
    spawn_app_with, testing_postgres, TestApp,
};
use custodia::store::audit::AuditRow;

const READERS: &str = r#"
[[role]]
id = "marketing_reader"
actions = ["interactions.read"]
purposes = ["marketing"]
"#;

/// Every entry, in chain order, read straight from the database.
async fn stored_entries(app: &TestApp) -> Vec<AuditRow> {
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().unwrap();
        custodia::store::audit::range(&mut conn, 0, 1_000_000).unwrap()
    })
    .await
    .unwrap()
}

/// Runs SQL as an insider with full SQL access would: with the append-only guards out of the
/// way (PostgreSQL: triggers disabled for the session; SQLite: triggers dropped).
async fn tamper(app: &TestApp, sql: &str) {
    use diesel::connection::SimpleConnection;
    let database = app.database();
    let sql = sql.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().unwrap();
        let script = if testing_postgres() {
            format!("SET session_replication_role = replica; {sql}; SET session_replication_role = origin;")
        } else {
            let mut script = String::new();
            for trigger in [
                "audit_subjects_no_update",
                "audit_subjects_no_delete",
                "audit_log_no_update",
                "audit_log_no_delete",
                "audit_checkpoints_no_update",
                "audit_checkpoints_no_delete",
                "audit_head_forward",
                "audit_head_no_delete",
            ] {
                script.push_str(&format!("DROP TRIGGER IF EXISTS {trigger}; "));
            }
            script.push_str(&sql);
            script
        };
        conn.batch_execute(&script).unwrap();
    })
    .await
    .unwrap();
}

/// `custodia audit verify` against the app's database, with saved checkpoint files.
fn verify_offline(app: &TestApp, checkpoints: &[&std::path::Path]) -> (Output, Value) {
    let mut args = vec!["audit".to_owned(), "verify".to_owned()];
    for file in checkpoints {
        args.push("--checkpoint".into());
        args.push(file.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = app.run_cli(&args);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("a JSON report: {output:?}"));
    (output, report)
}

async fn verify_online(app: &TestApp, token: &str) -> Value {
    let response = app.get("/v1/audit/verify", Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn query(app: &TestApp, token: &str, query: &str) -> Value {
    let response = app.get(&format!("/v1/audit{query}"), Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK, "GET /v1/audit{query}");
    response.json().await.unwrap()
}

/// An app with eight entries: two keys created (1, 2), then six key listings (3–8).
async fn app_with_eight_entries() -> (TestApp, String) {
    let app = spawn_app().await;
    let admin = app.token_for("admin").await;
    let compliance = app.token_for("compliance").await;
    for _ in 0..6 {
        assert_eq!(
            app.get("/v1/keys", Some(&admin)).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(stored_entries(&app).await.len(), 8);
    (app, compliance)
}

async fn save_checkpoint(app: &TestApp, token: &str, dir: &std::path::Path, name: &str) -> Value {
    let response = app.get("/v1/audit/checkpoint", Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let checkpoint: Value = response.json().await.unwrap();
    std::fs::write(dir.join(name), checkpoint.to_string()).unwrap();
    checkpoint
}

fn assert_invalid(output: &Output, report: &Value, first_invalid: i64, reason: &str) {
    assert!(!output.status.success(), "verification must fail: {report}");
    assert_eq!(report["ok"], false, "{report}");
    assert_eq!(report["first_invalid"], first_invalid, "{report}");
    assert_eq!(report["reason"], reason, "{report}");
}

#[tokio::test]
async fn every_action_is_an_entry_that_names_the_person_only_by_pseudonym() {
    let policies = policy_with_extra_roles(READERS);
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let collector = app.token_for("collector").await;
    let support = app.token_for("support").await;
    let compliance = app.token_for("compliance").await;
    let subject = "cust-audit-7731";
    let email = "audit.canary@example.org";
    let message = "canary message 5f2b about a parcel";

    let put = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/subjects/{subject}"),
            Some(&collector),
            Some(&json!({"identifiers": {"email": email}, "traits": {"country": "DE"}})),
        )
        .await;
    assert_eq!(put.status(), StatusCode::CREATED);
    let stored = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "evt-audit-1", "subject_id": subject, "type": "support_chat",
                    "channel": "chat", "occurred_at": "2026-11-01T10:00:00Z",
                    "purposes": ["support", "marketing"], "data": {"message": message}}),
        )
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    let consent = app
        .post_json(
            &format!("/v1/subjects/{subject}/consents"),
            Some(&collector),
            &json!({"purpose": "analytics", "status": "withdrawn", "source": "web",
                    "method": "banner", "evidence": {"ip_address": "203.0.113.77"}}),
        )
        .await;
    assert_eq!(
        consent.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "analytics is not consent-based"
    );
    let consent = app
        .post_json(
            &format!("/v1/subjects/{subject}/consents"),
            Some(&collector),
            &json!({"purpose": "marketing", "status": "withdrawn", "source": "web",
                    "method": "banner", "evidence": {"ip_address": "203.0.113.77"}}),
        )
        .await;
    assert_eq!(consent.status(), StatusCode::CREATED);
    let read = app
        .get(
            &format!("/v1/subjects/{subject}/interactions?purpose=support"),
            Some(&support),
        )
        .await;
    assert_eq!(read.status(), StatusCode::OK);
    let lookup = app
        .post_json(
            "/v1/lookup/subjects",
            Some(&compliance),
            &json!({"email": email}),
        )
        .await;
    assert_eq!(lookup.status(), StatusCode::OK);

    let page = query(&app, &compliance, &format!("?subject_id={subject}")).await;
    let entries = page["entries"].as_array().unwrap();
    let actions: Vec<&str> = entries
        .iter()
        .rev()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "subjects.write",
            "interactions.write",
            "interactions.write",
            "consents.write",
            "interactions.read",
            "subjects.lookup"
        ],
        "{page}"
    );
    let pseudonym = entries[0]["subjects"][0].as_str().unwrap();
    assert_eq!(pseudonym.len(), 32);
    assert!(entries
        .iter()
        .all(|entry| entry["subjects"] == json!([pseudonym])));
    // The stored interaction, then the purpose refused at collection (no consent).
    let write = &entries[4];
    assert_eq!(write["decision"], "allow");
    assert_eq!(write["purposes"], json!(["support"]));
    assert_eq!(write["legal_bases"], json!(["contract"]));
    assert_eq!(write["categories"], json!(["user.content"]));
    assert_eq!(write["records"], 1);
    let refused = &entries[3];
    assert_eq!(refused["decision"], "deny");
    assert_eq!(refused["purposes"], json!(["marketing"]));
    assert_eq!(refused["reason"], "no_consent");
    let read = &entries[1];
    assert_eq!(read["role"], "support");
    assert_eq!(read["purposes"], json!(["support"]));
    assert_eq!(read["categories"], json!(["user.content"]));
    assert_eq!(read["records"], 1);
    assert!(read["request_id"].as_str().is_some_and(|id| id.len() == 36));
    let policy: Value = app
        .get("/v1/policy", Some(&app.token_for("admin").await))
        .await
        .json()
        .await
        .unwrap();
    assert!(entries
        .iter()
        .all(|entry| entry["policy_hash"] == policy["sha256"]));

    // Nothing the app sent is in the audit tables or in what the audit API answers.
    let rows = stored_entries(&app).await;
    let stored_text = format!("{rows:?}");
    let answered = page.to_string();
    for canary in [
        subject,
        email,
        message,
        "203.0.113.77",
        "evt-audit-1",
        "DE\"",
    ] {
        assert!(
            !stored_text.contains(canary),
            "`{canary}` is in the audit table"
        );
        assert!(!answered.contains(canary), "`{canary}` is in GET /v1/audit");
    }
}

#[tokio::test]
async fn denials_are_recorded_with_their_reason() {
    let policies = policy_with_extra_roles(READERS);
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let collector = app.token_for("collector").await;
    let marketer = app.token_for("marketer").await;
    let reader = app.token_for("marketing_reader").await;
    let compliance = app.token_for("compliance").await;

    // The role lacks the action.
    assert_problem(
        app.get("/v1/keys", Some(&marketer)).await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    // The person gave no consent for the purpose read for.
    let stored = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "evt-1", "subject_id": "cust-denied", "type": "visit", "channel": "web",
                    "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["support"], "data": {}}),
        )
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    assert_problem(
        app.get(
            "/v1/subjects/cust-denied/interactions?purpose=marketing",
            Some(&reader),
        )
        .await,
        StatusCode::FORBIDDEN,
        "no_consent",
    )
    .await;
    // Nothing has a legal basis at collection: 422, nothing stored, the refusal recorded.
    assert_problem(
        app.post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "evt-2", "subject_id": "cust-nobody", "type": "visit", "channel": "web",
                    "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["marketing"], "data": {}}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no_legal_basis",
    )
    .await;

    let denied = query(&app, &compliance, "?decision=deny").await;
    let entries = denied["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "{denied}");
    let nobody = &entries[0];
    assert_eq!(nobody["action"], "interactions.write");
    assert_eq!(nobody["reason"], "no_consent");
    assert_eq!(nobody["subjects"], json!([]), "no subject was created");
    let read = &entries[1];
    assert_eq!(read["action"], "interactions.read");
    assert_eq!(read["role"], "marketing_reader");
    assert_eq!(read["purposes"], json!(["marketing"]));
    assert_eq!(read["legal_bases"], json!(["consent"]));
    assert_eq!(read["reason"], "no_consent");
    let about_denied = query(&app, &compliance, "?subject_id=cust-denied").await;
    assert_eq!(read["subjects"], about_denied["entries"][1]["subjects"]);
    let role = &entries[2];
    assert_eq!(role["action"], "keys.manage");
    assert_eq!(role["role"], "marketer");
    assert_eq!(role["reason"], "action_not_permitted");

    // Bad input is not a decision: a malformed request leaves no entry.
    let before = stored_entries(&app).await.len();
    assert_problem(
        app.post_json("/v1/interactions", Some(&collector), &json!({"id": 5}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_body",
    )
    .await;
    assert_eq!(stored_entries(&app).await.len(), before);
}

#[tokio::test]
async fn the_log_can_be_filtered_and_paged() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    for i in 0..5 {
        let purposes = if i % 2 == 0 {
            json!(["support"])
        } else {
            json!(["fraud_prevention"])
        };
        let response = app
            .post_json(
                "/v1/interactions",
                Some(&collector),
                &json!({"id": format!("evt-{i}"), "subject_id": format!("cust-{i}"),
                        "type": "visit", "channel": "web",
                        "occurred_at": "2026-11-01T10:00:00Z", "purposes": purposes}),
            )
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let writes = query(&app, &compliance, "?action=interactions.write").await;
    assert_eq!(writes["entries"].as_array().unwrap().len(), 5);
    let collector_key = writes["entries"][0]["actor_key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Each entry names the key that acted as its creator named it, not only by its id.
    assert_eq!(writes["entries"][0]["actor_name"], "test collector");
    let by_actor = query(&app, &compliance, &format!("?actor={collector_key}")).await;
    assert_eq!(by_actor["entries"].as_array().unwrap().len(), 5);
    let fraud = query(&app, &compliance, "?purpose=fraud_prevention").await;
    assert_eq!(fraud["entries"].as_array().unwrap().len(), 2);
    // `_` is not a wildcard.
    let none = query(&app, &compliance, "?purpose=fraud_preventio_").await;
    assert_eq!(none["entries"].as_array().unwrap().len(), 0);
    let future = query(&app, &compliance, "?from=2099-01-01T00:00:00Z").await;
    assert_eq!(future["entries"].as_array().unwrap().len(), 0);
    let past = query(
        &app,
        &compliance,
        "?to=2099-01-01T00:00:00Z&action=interactions.write",
    )
    .await;
    assert_eq!(past["entries"].as_array().unwrap().len(), 5);

    // Paging: newest first, every entry once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let suffix = cursor
            .as_ref()
            .map(|c| format!("&cursor={c}"))
            .unwrap_or_default();
        let page = query(
            &app,
            &compliance,
            &format!("?action=interactions.write&limit=2{suffix}"),
        )
        .await;
        for entry in page["entries"].as_array().unwrap() {
            seen.push(entry["seq"].as_i64().unwrap());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted);
    assert_eq!(seen.len(), 5);

    assert_problem(
        app.get("/v1/audit?subject_id=cust-unknown", Some(&compliance))
            .await,
        StatusCode::NOT_FOUND,
        "subject_not_found",
    )
    .await;
    assert_problem(
        app.get("/v1/audit?decision=maybe", Some(&compliance)).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get("/v1/audit?cursor=bm9wZQ", Some(&compliance)).await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    )
    .await;
    assert_problem(
        app.get("/v1/audit?from=yesterday", Some(&compliance)).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
    assert_problem(
        app.get("/v1/audit?colour=red", Some(&compliance)).await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    )
    .await;
}

#[tokio::test]
async fn an_intact_chain_verifies_online_and_offline() {
    let (app, compliance) = app_with_eight_entries().await;
    let (output, report) = verify_offline(&app, &[]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        report,
        json!({"ok": true, "entries": 8, "first_invalid": null, "reason": null, "detail": null,
               "checkpoints": 0})
    );
    let online = verify_online(&app, &compliance).await;
    assert_eq!(online["ok"], true);
    assert_eq!(online["entries"], 8);
    assert_eq!(online["first_invalid"], Value::Null);
    // The verification itself is entry 9, and the chain still verifies with it.
    let again = verify_online(&app, &compliance).await;
    assert_eq!(again["entries"], 9);
    assert_eq!(again["ok"], true);
}

#[tokio::test]
async fn a_modified_entry_is_found_at_its_place() {
    let (app, compliance) = app_with_eight_entries().await;
    tamper(
        &app,
        "UPDATE audit_log SET records = records + 1 WHERE seq = 4",
    )
    .await;
    let (output, report) = verify_offline(&app, &[]);
    assert_invalid(&output, &report, 4, "hash_mismatch");
    let online = verify_online(&app, &compliance).await;
    assert_eq!(online["ok"], false);
    assert_eq!(online["first_invalid"], 4);
    assert_eq!(online["entries"], 8);
}

#[tokio::test]
async fn a_deleted_entry_is_found_at_its_place() {
    let (app, _) = app_with_eight_entries().await;
    tamper(&app, "DELETE FROM audit_log WHERE seq = 5").await;
    let (output, report) = verify_offline(&app, &[]);
    assert_invalid(&output, &report, 5, "missing_entry");
}

#[tokio::test]
async fn an_inserted_entry_is_found_at_its_place() {
    let (app, _) = app_with_eight_entries().await;
    // Make room after entry 4, then copy entry 4 (with its valid hash) into place 5.
    tamper(
        &app,
        "UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 5;
         UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000;
         INSERT INTO audit_log (seq, at, actor_key_id, role, action, target, purposes,
             legal_bases, subjects, categories, records, decision, reason, policy_hash,
             request_id, hash)
         SELECT 5, at, actor_key_id, role, action, target, purposes, legal_bases, subjects,
             categories, records, decision, reason, policy_hash, request_id, hash
         FROM audit_log WHERE seq = 4",
    )
    .await;
    let (output, report) = verify_offline(&app, &[]);
    assert_invalid(&output, &report, 5, "hash_mismatch");
    assert_eq!(report["entries"], 9);
}

#[tokio::test]
async fn reordered_entries_are_found_at_the_first_moved() {
    let (app, _) = app_with_eight_entries().await;
    tamper(
        &app,
        "UPDATE audit_log SET seq = 1003 WHERE seq = 3;
         UPDATE audit_log SET seq = 3 WHERE seq = 6;
         UPDATE audit_log SET seq = 6 WHERE seq = 1003",
    )
    .await;
    let (output, report) = verify_offline(&app, &[]);
    assert_invalid(&output, &report, 3, "hash_mismatch");
}

#[tokio::test]
async fn truncation_is_found_by_the_head_and_by_checkpoints_when_the_head_is_forged_too() {
    let (app, compliance) = app_with_eight_entries().await;
    // Cutting the tail alone: the head still says 8.
    tamper(&app, "DELETE FROM audit_log WHERE seq > 6").await;
    let (output, report) = verify_offline(&app, &[]);
    assert_invalid(&output, &report, 7, "truncated");

    // A careful insider also moves the head back and removes the stored checkpoints: the chain
    // alone now looks whole, and only a checkpoint kept outside the database shows the loss.
    let (app, compliance2) = app_with_eight_entries().await;
    let outside = tempfile::tempdir().unwrap();
    let checkpoint = save_checkpoint(&app, &compliance2, outside.path(), "cp.json").await;
    assert_eq!(checkpoint["size"], 8);
    let stored = verify_online(&app, &compliance2).await;
    assert_eq!(stored["ok"], true, "{stored}");
    assert_eq!(stored["checkpoints"], 1);
    tamper(
        &app,
        "DELETE FROM audit_checkpoints;
         DELETE FROM audit_log WHERE seq > 5;
         UPDATE audit_head SET seq = 5, hash = (SELECT hash FROM audit_log WHERE seq = 5)",
    )
    .await;
    let (output, report) = verify_offline(&app, &[]);
    assert!(
        output.status.success(),
        "the chain alone cannot tell: {report}"
    );
    let (output, report) = verify_offline(&app, &[&outside.path().join("cp.json")]);
    assert_invalid(&output, &report, 6, "truncated");
    drop(compliance);
}

#[tokio::test]
async fn rewritten_history_with_recomputed_hashes_is_caught_by_checkpoints() {
    let (app, compliance) = app_with_eight_entries().await;
    let admin = app.token_for("admin").await; // entry 9
    let outside = tempfile::tempdir().unwrap();
    save_checkpoint(&app, &compliance, outside.path(), "a.json").await; // covers 9; entry 10
    for _ in 0..2 {
        app.get("/v1/keys", Some(&admin)).await; // 11, 12
    }
    let last = save_checkpoint(&app, &compliance, outside.path(), "b.json").await; // covers 12
    assert_eq!(last["size"], 12);

    // Rewrite entry 11 and recompute every hash after it, the head too; drop the stored
    // checkpoints.
    let mut rows = stored_entries(&app).await;
    let mut prev = rows[9].hash.clone();
    let mut script = String::from("DELETE FROM audit_checkpoints;");
    for row in rows.iter_mut().skip(10) {
        if row.seq == 11 {
            row.records = 0;
        }
        row.hash = custodia::audit::entry_hash(row, &prev);
        prev.clone_from(&row.hash);
        script.push_str(&format!(
            "UPDATE audit_log SET records = {}, hash = '{}' WHERE seq = {};",
            row.records, row.hash, row.seq
        ));
    }
    script.push_str(&format!("UPDATE audit_head SET hash = '{prev}'"));
    tamper(&app, &script).await;

    let (output, report) = verify_offline(&app, &[]);
    assert!(
        output.status.success(),
        "consistent forgery passes the chain: {report}"
    );
    let files = [outside.path().join("a.json"), outside.path().join("b.json")];
    let (output, report) = verify_offline(&app, &[&files[0], &files[1]]);
    // The first entry not vouched for by a matching checkpoint.
    assert_invalid(&output, &report, 10, "checkpoint_mismatch");

    // A checkpoint whose fields were edited does not verify at all.
    let mut forged: Value =
        serde_json::from_str(&std::fs::read_to_string(&files[1]).unwrap()).unwrap();
    forged["head_hash"] = json!(prev);
    std::fs::write(&files[1], forged.to_string()).unwrap();
    let (output, report) = verify_offline(&app, &[&files[1]]);
    assert!(!output.status.success());
    assert_eq!(report["reason"], "checkpoint_signature");
}

#[tokio::test]
async fn checkpoints_are_signed_with_the_published_key_and_written_periodically() {
    let app = spawn_app().await;
    let compliance = app.token_for("compliance").await;
    let response = app.get("/v1/audit/checkpoint-key", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let keys: Value = response.json().await.unwrap();
    let jwk = &keys["keys"][0];
    assert_eq!(jwk["crv"], "Ed25519");
    let checkpoint = app.get("/v1/audit/checkpoint", Some(&compliance)).await;
    let checkpoint: Value = checkpoint.json().await.unwrap();
    assert_eq!(checkpoint["key_id"], jwk["kid"]);
    // Verify the signature with nothing but the published key.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jws = checkpoint["signature"].as_str().unwrap();
    let (input, signature) = jws.rsplit_once('.').unwrap();
    let public = b64.decode(jwk["x"].as_str().unwrap()).unwrap();
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
        .verify(input.as_bytes(), &b64.decode(signature).unwrap())
        .expect("the checkpoint verifies with the published key");
    let claims: Value =
        serde_json::from_slice(&b64.decode(input.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["size"], checkpoint["size"]);
    assert_eq!(claims["head_hash"], checkpoint["head_hash"]);

    // The server's periodic job signs the grown chain (run now rather than waited for).
    let before = verify_online(&app, &compliance).await["checkpoints"]
        .as_i64()
        .unwrap();
    app.run_job("audit_checkpoint").await;
    let (_, report) = verify_offline(&app, &[]);
    assert_eq!(
        report["checkpoints"].as_i64().unwrap(),
        before + 1,
        "the job signed the grown chain"
    );
}

#[tokio::test]
async fn the_database_refuses_to_change_or_delete_entries() {
    use diesel::connection::SimpleConnection;
    let (app, compliance) = app_with_eight_entries().await;
    let outside = tempfile::tempdir().unwrap();
    save_checkpoint(&app, &compliance, outside.path(), "cp.json").await;
    let database = app.database();
    let errors = tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().unwrap();
        [
            "UPDATE audit_log SET records = 0 WHERE seq = 2",
            "DELETE FROM audit_log WHERE seq = 8",
            "UPDATE audit_head SET seq = 3",
            "DELETE FROM audit_head",
            "DELETE FROM audit_checkpoints",
        ]
        .map(|sql| conn.batch_execute(sql).map_err(|e| e.to_string()))
    })
    .await
    .unwrap();
    for (index, result) in errors.iter().enumerate() {
        let error = result.as_ref().expect_err("the change is refused");
        assert!(
            error.contains("append-only") || error.contains("only moves forward"),
            "statement {index}: {error}"
        );
    }
    if testing_postgres() {
        let database = app.database();
        let truncate = tokio::task::spawn_blocking(move || {
            let mut conn = database.connection().unwrap();
            conn.batch_execute("TRUNCATE audit_log")
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap();
        assert!(truncate.unwrap_err().contains("append-only"));
    }
    let (output, _) = verify_offline(&app, &[]);
    assert!(output.status.success());
}

struct Server {
    child: std::process::Child,
    address: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(data_dir: &std::path::Path, database_url: &str) -> Server {
    let mut command = custodia_command();
    command
        .env("CUSTODIA_DATA_DIR", data_dir)
        .env("CUSTODIA_DATABASE_URL", database_url)
        .env("CUSTODIA_POLICY_DIR", crate::helpers::sample_policy_dir());
    let (child, address) =
        crate::helpers::serve_process(command, std::process::Stdio::null()).await;
    Server { child, address }
}

#[tokio::test]
async fn two_server_processes_write_one_gap_free_chain() {
    let database = fresh_database();
    let data = tempfile::tempdir().unwrap();
    let first = start_server(data.path(), &database.url).await;
    let second = start_server(data.path(), &database.url).await;
    let key = {
        let output = custodia_command()
            .args(["keys", "create", "--role", "collector", "--name", "writer"])
            .env("CUSTODIA_DATA_DIR", data.path())
            .env("CUSTODIA_DATABASE_URL", &database.url)
            .env("CUSTODIA_POLICY_DIR", crate::helpers::sample_policy_dir())
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let client = reqwest::Client::new();
    let mut tokens = Vec::new();
    for server in [&first, &second] {
        let response: Value = client
            .post(format!("{}/v1/auth/token", server.address))
            .json(&json!({"api_key": key}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tokens.push(response["access_token"].as_str().unwrap().to_owned());
    }
    const PER_SERVER: usize = 150;
    let mut tasks = Vec::new();
    for (n, server) in [&first, &second].into_iter().enumerate() {
        for worker in 0..8 {
            let (client, url, token) = (
                client.clone(),
                format!("{}/v1/interactions", server.address),
                tokens[n].clone(),
            );
            tasks.push(tokio::spawn(async move {
                for i in (worker..PER_SERVER).step_by(8) {
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"id": format!("evt-{n}-{i}"),
                                      "subject_id": format!("cust-{}", i % 20),
                                      "type": "visit", "channel": "web",
                                      "occurred_at": "2026-11-01T10:00:00Z",
                                      "purposes": ["support"]}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::CREATED);
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    drop(first);
    drop(second);
    let output = custodia_command()
        .args(["audit", "verify"])
        .env("CUSTODIA_DATA_DIR", data.path())
        .env("CUSTODIA_DATABASE_URL", &database.url)
        .env("CUSTODIA_POLICY_DIR", crate::helpers::sample_policy_dir())
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(output.status.success(), "{report}");
    // One entry for the key, one per stored interaction: no fork, gap or duplicate.
    assert_eq!(report["entries"], 1 + 2 * PER_SERVER as i64, "{report}");
}

#[tokio::test]
async fn consent_calls_gpc_signals_and_objections_are_recorded() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let response = app
        .client
        .post(format!("{}/v1/subjects/cust-gpc/consents", app.address))
        .bearer_auth(&collector)
        .header("Sec-GPC", "1")
        .json(
            &json!({"purpose": "marketing.email", "status": "granted", "source": "web",
                      "method": "checkbox", "notice": {"id": "newsletter", "version": "3"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = app
        .post_json(
            "/v1/subjects/cust-gpc/objections",
            Some(&collector),
            &json!({"purpose": "fraud_prevention"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let consents = app
        .get("/v1/subjects/cust-gpc/consents", Some(&compliance))
        .await;
    assert_eq!(consents.status(), StatusCode::OK);

    let page = query(&app, &compliance, "?subject_id=cust-gpc").await;
    let entries = page["entries"].as_array().unwrap();
    let summary: Vec<(&str, Value, i64)> = entries
        .iter()
        .rev()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["purposes"].clone(),
                e["records"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "consents.gpc",
                json!([
                    "analytics",
                    "marketing",
                    "marketing.email",
                    "marketing.personalization",
                    "marketing.sms"
                ]),
                5
            ),
            ("consents.write", json!(["marketing.email"]), 1),
            ("objections.write", json!(["fraud_prevention"]), 1),
            ("consents.read", json!([]), 5),
        ],
        "{page}"
    );
    assert_eq!(
        entries[3]["legal_bases"],
        json!(["consent", "legitimate_interest"])
    );
}

#[tokio::test]
async fn a_batch_is_one_entry_naming_everyone_it_wrote_about_and_the_index_is_verified() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let item = |id: &str, subject: &str, purposes: Value| {
        json!({"id": id, "subject_id": subject, "type": "visit", "channel": "web",
               "occurred_at": "2026-11-01T10:00:00Z", "purposes": purposes,
               "data": {"page_url": "/home"}})
    };
    let response = app
        .post_json(
            "/v1/interactions/batch",
            Some(&collector),
            &json!({"interactions": [
                item("a", "cust-b1", json!(["support"])),
                item("b", "cust-b2", json!(["support", "marketing"])),
                item("c", "cust-b1", json!(["analytics"])),
                item("d", "cust-b3", json!(["marketing"])),
            ]}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let writes = query(&app, &compliance, "?action=interactions.write").await;
    let entries = writes["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{writes}");
    let by_decision = |decision: &str| {
        entries
            .iter()
            .find(|entry| entry["decision"] == decision)
            .unwrap()
            .clone()
    };
    let (stored, refused) = (by_decision("allow"), by_decision("deny"));
    assert_eq!(stored["decision"], "allow");
    assert_eq!(stored["records"], 3);
    assert_eq!(stored["subjects"].as_array().unwrap().len(), 2);
    assert_eq!(stored["purposes"], json!(["analytics", "support"]));
    assert_eq!(
        stored["legal_bases"],
        json!(["contract", "legitimate_interest"])
    );
    assert_eq!(stored["categories"], json!(["behavior.browsing"]));
    assert_eq!(refused["decision"], "deny");
    assert_eq!(refused["records"], 2);
    assert_eq!(refused["purposes"], json!(["marketing"]));
    assert_eq!(refused["reason"], "no_consent");
    // cust-b3 had nothing stored and was not created; cust-b2 exists.
    assert_eq!(refused["subjects"].as_array().unwrap().len(), 1);
    for (subject, count) in [("cust-b1", 1), ("cust-b2", 2)] {
        let about = query(&app, &compliance, &format!("?subject_id={subject}")).await;
        assert_eq!(about["entries"].as_array().unwrap().len(), count, "{about}");
    }

    // The index of people named is checked against the entries it was derived from.
    let seq = stored["seq"].as_i64().unwrap();
    tamper(
        &app,
        &format!("DELETE FROM audit_subjects WHERE seq = {seq}"),
    )
    .await;
    let (output, report) = verify_offline(&app, &[]);
    assert_invalid(&output, &report, seq, "index_mismatch");
}

/// Runs SQL as it is, with every guard in place; the database's error if it refuses.
async fn run_sql(app: &TestApp, sql: &str) -> Result<(), String> {
    use diesel::connection::SimpleConnection;
    let database = app.database();
    let sql = sql.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().unwrap();
        conn.batch_execute(&sql).map_err(|error| error.to_string())
    })
    .await
    .unwrap()
}

/// A copy of entry `from` (its content and its valid hash) at position `at`.
fn copy_entry(from: i64, at: i64) -> String {
    format!(
        "INSERT INTO audit_log (seq, at, actor_key_id, role, action, target, purposes,
             legal_bases, subjects, categories, records, decision, reason, policy_hash,
             request_id, hash)
         SELECT {at}, at, actor_key_id, role, action, target, purposes, legal_bases, subjects,
             categories, records, decision, reason, policy_hash, request_id, hash
         FROM audit_log WHERE seq = {from}"
    )
}

async fn listed_positions(app: &TestApp, token: &str) -> Vec<i64> {
    let page = query(app, token, "?limit=500").await;
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn a_row_outside_the_chain_is_refused_and_found_when_forced_in() {
    let (app, compliance) = app_with_eight_entries().await;
    // The database refuses a row at seq 0 or below, guards in place.
    for at in [0, -5] {
        let refused = run_sql(&app, &copy_entry(3, at)).await;
        let error = refused.expect_err("a row outside the chain is refused");
        assert!(
            error.contains("seq_in_chain") || error.contains("seq must be positive"),
            "{error}"
        );
    }
    let refused = run_sql(
        &app,
        "INSERT INTO audit_subjects (subject_key, seq) VALUES (1, 0)",
    )
    .await;
    assert!(
        refused.is_err(),
        "an index row outside the chain is refused"
    );

    // An insider drops the guard (the table owner can) and forges two rows anyway.
    let drop_guard = if testing_postgres() {
        "ALTER TABLE audit_log DROP CONSTRAINT audit_log_seq_in_chain"
    } else {
        "DROP TRIGGER audit_log_seq_in_chain"
    };
    run_sql(&app, drop_guard).await.unwrap();
    run_sql(
        &app,
        &format!("{}; {}", copy_entry(3, 0), copy_entry(4, -5)),
    )
    .await
    .unwrap();

    // Both verifiers count every row and find them; the listing shows chain positions only.
    let (output, report) = verify_offline(&app, &[]);
    assert_invalid(&output, &report, -5, "unchained_entry");
    assert_eq!(
        report["entries"], 10,
        "every row is accounted for: {report}"
    );
    let online = verify_online(&app, &compliance).await;
    assert_eq!(online["ok"], false, "{online}");
    assert_eq!(online["first_invalid"], -5, "{online}");
    assert_eq!(online["reason"], "unchained_entry", "{online}");
    let listed = listed_positions(&app, &compliance).await;
    assert!(listed.iter().all(|seq| *seq >= 1), "{listed:?}");
    assert_eq!(
        listed.len(),
        9,
        "entries 1–9 (9: the verification): {listed:?}"
    );
}

#[tokio::test]
async fn a_row_beyond_the_head_after_a_gap_is_found_and_not_listed() {
    let (app, compliance) = app_with_eight_entries().await;
    // Position 12 while the chain ends at 8: no guard can tell this insert from an append
    // (appends insert first and move the head last), so verification must.
    run_sql(&app, &copy_entry(8, 12)).await.unwrap();
    let (output, report) = verify_offline(&app, &[]);
    assert_invalid(&output, &report, 9, "missing_entry");
    assert_eq!(report["entries"], 9);
    let online = verify_online(&app, &compliance).await;
    assert_eq!(online["ok"], false, "{online}");
    assert_eq!(online["first_invalid"], 9, "{online}");
    let listed = listed_positions(&app, &compliance).await;
    assert!(
        !listed.contains(&12),
        "a row beyond the head is not listed: {listed:?}"
    );
    assert_eq!(
        listed,
        (1..=9).rev().collect::<Vec<i64>>(),
        "9: the verification"
    );
}

#[tokio::test]
async fn a_denial_names_the_person_it_concerns_without_telling_whether_they_exist() {
    let policies = policy_with_extra_roles(
        r#"
[[role]]
id = "support_app"
actions = ["interactions.write"]
purposes = ["support"]
"#,
    );
    let path = policies.path().to_owned();
    let app = spawn_app_with(|options| options.policy_dir = Some(path)).await;
    let collector = app.token_for("collector").await;
    let support = app.token_for("support").await;
    let support_app = app.token_for("support_app").await;
    let compliance = app.token_for("compliance").await;
    let stored = app
        .post_json(
            "/v1/interactions",
            Some(&collector),
            &json!({"id": "evt-1", "subject_id": "cust-known", "type": "visit", "channel": "web",
                    "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["support"], "data": {}}),
        )
        .await;
    assert_eq!(stored.status(), StatusCode::CREATED);
    let pseudonym = query(&app, &compliance, "?subject_id=cust-known").await["entries"][0]
        ["subjects"][0]
        .clone();
    assert!(pseudonym.is_string());

    // The review's case: `support` reads someone's interactions for `marketing` (rule 1 fails
    // before anyone is looked at). The same answer for a person who exists and one who does not.
    let mut answers = Vec::new();
    for subject in ["cust-known", "cust-unknown"] {
        let response = app
            .get(
                &format!("/v1/subjects/{subject}/interactions?purpose=marketing"),
                Some(&support),
            )
            .await;
        answers.push((response.status(), response.text().await.unwrap()));
    }
    assert_eq!(answers[0].0, StatusCode::FORBIDDEN);
    assert_eq!(answers[0], answers[1]);
    // A route the role may not call at all, and a collection for a purpose it may not tag.
    assert_problem(
        app.delete("/v1/subjects/cust-known", Some(&support)).await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    assert_problem(
        app.post_json(
            "/v1/interactions",
            Some(&support_app),
            &json!({"id": "evt-2", "subject_id": "cust-known", "type": "visit", "channel": "web",
                    "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["marketing"], "data": {}}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "purpose_not_permitted",
    )
    .await;

    // Each denial about the existing person is in their trail, under their pseudonym.
    let trail = query(&app, &compliance, "?subject_id=cust-known&decision=deny").await;
    let actions: Vec<&str> = trail["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            assert_eq!(entry["subjects"], json!([pseudonym.clone()]));
            entry["action"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        actions,
        ["interactions.write", "subjects.erase", "interactions.read"],
        "{trail}"
    );
    // The one about nobody names nobody.
    let all = query(&app, &compliance, "?decision=deny&action=interactions.read").await;
    let entries = all["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["subjects"], json!([]));
    // And the person's own export lists the refused read in its access log.
    let export: Value = app
        .get_json("/v1/subjects/cust-known/export", Some(&compliance))
        .await;
    let logged = export["access_log"]
        .as_array()
        .unwrap()
        .iter()
        .any(|entry| entry["action"] == "interactions.read" && entry["decision"] == "deny");
    assert!(logged, "{}", export["access_log"]);
}
