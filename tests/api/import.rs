//! `custodia import` (docs/import.md): files of people, interactions and consent statements
//! from another system, in NDJSON (native and tracking-protocol shapes) and CSV, written under
//! the API's rules, idempotent by id, with `--dry-run` storing nothing and naming every bad
//! line.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{
    assert_problem, contains_in_any_encoding, count_rows, database_dump, spawn_app, TestApp,
};

fn write(dir: &tempfile::TempDir, name: &str, lines: &[String]) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path.display().to_string()
}

/// Runs `custodia import` on `file` with `args`; returns the exit status's success, the
/// summary printed on stdout and the lines of stderr naming bad lines.
fn import(app: &TestApp, file: &str, args: &[&str]) -> (bool, Value, Vec<String>) {
    let mut all = vec!["import", file];
    all.extend_from_slice(args);
    let output = app.run_cli(&all);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|_| panic!("a JSON summary on stdout: {stdout}\n{stderr}"));
    let name = std::path::Path::new(file)
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    // Not a terminal: progress as plain lines (no redrawing), the last one at the end.
    assert!(
        stderr
            .lines()
            .any(|line| line.contains(" lines/s, 100% read, ETA 0:00")),
        "{stderr}"
    );
    assert!(!stderr.contains('\r'), "no redrawn line outside a terminal");
    let bad = stderr
        .lines()
        .filter(|line| line.starts_with(&format!("{name}:")))
        .map(str::to_owned)
        .collect();
    (output.status.success(), summary, bad)
}

fn lines() -> Vec<String> {
    [
        json!({"subject_id": "imp-ada", "identifiers": {"email": "ada@example.com"},
               "traits": {"country": "DE"}}),
        json!({"id": "o-1", "subject_id": "imp-ada", "type": "purchase", "channel": "web",
               "occurred_at": "2026-10-01T10:00:00Z", "purposes": ["support"],
               "data": {"order_id": "ORD-IMPORT-1", "message": "gift wrap please"}}),
        json!({"subject_id": "imp-ada", "id": "consent-1", "purpose": "marketing",
               "status": "granted", "notice": {"id": "newsletter", "version": "3"},
               "source": "web", "method": "checkbox",
               "evidence": {"ip_address": "192.0.2.77", "user_agent": "ImportTest/1"}}),
        // The tracking protocol's shapes: an anonymous visit, then the login that links it.
        json!({"type": "page", "messageId": "v-1", "anonymousId": "imp-anon",
               "name": "Home", "properties": {"page_url": "/"},
               "timestamp": "2026-09-30T08:00:00Z"}),
        json!({"type": "identify", "messageId": "v-2", "userId": "imp-ada",
               "anonymousId": "imp-anon"}),
        // Bad lines: a time that is not one, an undeclared trait, a purpose the role lacks.
        json!({"id": "o-2", "subject_id": "imp-ada", "type": "purchase", "channel": "web",
               "occurred_at": "last tuesday", "purposes": ["support"]}),
        json!({"subject_id": "imp-bob", "traits": {"shoe_size": "44"}}),
        json!({"id": "o-3", "subject_id": "imp-bob", "type": "purchase", "channel": "web",
               "occurred_at": "2026-10-01T10:00:00Z", "purposes": ["astrology"]}),
    ]
    .iter()
    .map(Value::to_string)
    .chain(["{not json".to_owned()])
    .collect()
}

#[tokio::test]
async fn an_ndjson_file_is_checked_by_a_dry_run_then_imported_once_under_the_apis_rules() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "people.ndjson", &lines());

    let (ok, summary, bad) = import(&app, &file, &["--role", "collector", "--dry-run"]);
    assert!(!ok, "bad lines make the exit status 1");
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["lines"], 9);
    assert_eq!(summary["invalid"], 4, "{summary}");
    assert_eq!(bad.len(), 4, "{bad:?}");
    assert!(
        bad[0].starts_with("people.ndjson:6: `occurred_at`"),
        "{bad:?}"
    );
    assert!(
        bad[1].starts_with("people.ndjson:7: field `shoe_size`"),
        "{bad:?}"
    );
    assert!(bad[2].starts_with("people.ndjson:8: "), "{bad:?}");
    assert!(bad[3].starts_with("people.ndjson:9: not JSON"), "{bad:?}");
    for table in [
        "subjects",
        "interactions",
        "consent_records",
        "subject_aliases",
    ] {
        assert_eq!(
            count_rows(&app, table).await,
            0,
            "a dry run stores nothing: {table}"
        );
    }

    let (_, summary, bad) = import(&app, &file, &["--role", "collector"]);
    assert_eq!(bad.len(), 4);
    assert_eq!(summary["interactions_stored"], 2, "{summary}");
    assert_eq!(summary["subjects"], 2, "{summary}");
    assert_eq!(summary["consents"], 1, "{summary}");
    assert_eq!(summary["links"], 1, "{summary}");
    assert_eq!(count_rows(&app, "subjects").await, 1, "the visitor is Ada");
    assert_eq!(count_rows(&app, "interactions").await, 2);
    assert_eq!(count_rows(&app, "consent_records").await, 1);

    // A rerun resumes: everything is found stored, nothing twice.
    let (_, summary, _) = import(&app, &file, &["--role", "collector"]);
    assert_eq!(summary["interactions_stored"], 0, "{summary}");
    assert_eq!(summary["interactions_duplicate"], 2, "{summary}");
    assert_eq!(count_rows(&app, "interactions").await, 2);
    assert_eq!(count_rows(&app, "consent_records").await, 1);

    // What the import stored is what the API would have: readable through it, audited,
    // encrypted at rest.
    let compliance = app.token_for("compliance").await;
    let export = app
        .get("/v1/subjects/imp-ada/export", Some(&compliance))
        .await;
    assert_eq!(export.status(), StatusCode::OK);
    let bundle: Value = export.json().await.unwrap();
    assert_eq!(bundle["subject"]["identifiers"]["email"], "ada@example.com");
    assert_eq!(bundle["subject"]["anonymous_ids"], json!(["imp-anon"]));
    assert_eq!(
        bundle["consents"][0]["evidence"]["ip_address"],
        "192.0.2.77"
    );
    assert_eq!(bundle["interactions"].as_array().unwrap().len(), 2);
    let audit: Value = app
        .get_json("/v1/audit?action=interactions.write", Some(&compliance))
        .await;
    assert!(
        !audit["entries"].as_array().unwrap().is_empty(),
        "the import's writes are audited: {audit}"
    );
    let dump = database_dump(&app).await;
    for secret in [
        "ORD-IMPORT-1",
        "ada@example.com",
        "192.0.2.77",
        "imp-anon",
        "gift wrap",
    ] {
        assert!(
            !contains_in_any_encoding(&dump, secret),
            "{secret} in clear"
        );
    }
}

#[tokio::test]
async fn csv_files_of_people_interactions_and_statements_are_imported() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let people = write(
        &dir,
        "people.csv",
        &[
            "subject_id,email,country,language".into(),
            "csv-1,one@example.com,DE,de".into(),
            "csv-2,,FR,".into(),
            "csv-3,not-an-address,FR,fr".into(),
        ],
    );
    let events = write(
        &dir,
        "events.csv",
        &[
            "id,subject_id,type,channel,occurred_at,purposes,order_id".into(),
            "e-1,csv-1,purchase,web,2026-10-01T10:00:00Z,support;legal_compliance,00123".into(),
            "e-2,csv-2,purchase,web,2026-10-02T10:00:00Z,support,".into(),
            "e-3,csv-2,purchase,web,2026-10-02T10:00:00Z".into(),
        ],
    );
    let statements = write(
        &dir,
        "consents.csv",
        &[
            "subject_id,id,purpose,status,notice_id,notice_version,source,method,ip_address".into(),
            "csv-1,c-1,marketing,granted,newsletter,3,web,checkbox,192.0.2.9".into(),
            "csv-2,c-2,marketing,withdrawn,,,email,unsubscribe_link,".into(),
        ],
    );
    let (_, summary, bad) = import(&app, &people, &["--role", "collector"]);
    assert_eq!(summary["format"], "csv");
    assert_eq!(summary["subjects"], 2, "{summary}");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].starts_with("people.csv:4: "), "{bad:?}");
    let (_, summary, bad) = import(&app, &events, &["--role", "collector"]);
    assert_eq!(summary["interactions_stored"], 2, "{summary}");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("events.csv:4: the record has 5 fields, the header 7"),
        "{bad:?}"
    );
    let (ok, summary, _) = import(&app, &statements, &["--role", "collector"]);
    assert!(ok);
    assert_eq!(summary["consents"], 2, "{summary}");
    assert_eq!(count_rows(&app, "interaction_purposes").await, 3);

    // CSV cells are text: the order number keeps its leading zeros.
    let support = app.token_for("support").await;
    let read = app
        .get_json(
            "/v1/subjects/csv-1/interactions?purpose=support",
            Some(&support),
        )
        .await;
    assert_eq!(
        read["interactions"][0]["data"]["order_id"], "00123",
        "{read}"
    );
}

#[tokio::test]
async fn an_import_does_not_bring_back_a_person_erased_with_suppression() {
    let app = spawn_app().await;
    let collector = app.token_for("collector").await;
    let compliance = app.token_for("compliance").await;
    let put = app
        .request(
            reqwest::Method::PUT,
            "/v1/subjects/imp-gone",
            Some(&collector),
            Some(&json!({"traits": {"country": "DE"}})),
        )
        .await;
    assert!(put.status().is_success());
    let erased = app
        .delete("/v1/subjects/imp-gone?suppress=true", Some(&compliance))
        .await;
    assert_eq!(erased.status(), StatusCode::OK);
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "old-system.ndjson",
        &[
            json!({"subject_id": "imp-gone", "traits": {"country": "DE"}}).to_string(),
            json!({"id": "g-1", "subject_id": "imp-gone", "type": "purchase",
                   "channel": "web", "occurred_at": "2026-10-01T10:00:00Z",
                   "purposes": ["support"]})
            .to_string(),
        ],
    );
    let (ok, summary, _) = import(&app, &file, &["--role", "collector"]);
    assert!(ok, "refusals are not bad lines");
    assert_eq!(summary["subjects_refused"], 1, "{summary}");
    assert_eq!(summary["interactions_refused"], 1, "{summary}");
    assert_eq!(count_rows(&app, "subjects").await, 0);
    assert_eq!(count_rows(&app, "interactions").await, 0);
}

#[tokio::test]
async fn an_import_acts_only_with_a_declared_roles_permissions() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "people.ndjson", &lines());
    let output = app.run_cli(&["import", &file, "--role", "nobody"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("role `nobody` is not declared"));
    // The marketer may not write: every line is refused, nothing stored.
    let (ok, summary, bad) = import(&app, &file, &["--role", "marketer"]);
    assert!(!ok);
    assert_eq!(summary["invalid"], 9, "{summary}");
    assert!(bad.iter().any(|line| line.contains("may not")), "{bad:?}");
    assert_eq!(count_rows(&app, "subjects").await, 0);
}

/// Transactions of `--batch-size` lines: a statement in one batch decides the interactions of
/// the next, a batch boundary inside one person's lines changes nothing, and sizes the backend
/// cannot take are refused before anything is read.
#[tokio::test]
async fn batches_of_any_size_store_the_same_as_one() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lines = vec![
        json!({"subject_id": "batch-ada", "id": "c-1", "purpose": "marketing",
        "status": "granted", "notice": {"id": "newsletter", "version": "3"},
        "source": "web", "method": "checkbox"})
        .to_string(),
    ];
    for n in 0..7 {
        lines.push(
            json!({"id": format!("b-{n}"), "subject_id": format!("batch-{}", n % 3),
                   "type": "purchase", "channel": "web", "occurred_at": "2026-10-01T10:00:00Z",
                   "purposes": ["support", "marketing"], "data": {"order_id": format!("B-{n}")}})
            .to_string(),
        );
    }
    lines.push(
        json!({"id": "b-ada", "subject_id": "batch-ada", "type": "purchase", "channel": "web",
               "occurred_at": "2026-10-01T10:00:00Z", "purposes": ["marketing"]})
        .to_string(),
    );
    let file = write(&dir, "batches.ndjson", &lines);

    let (ok, summary, bad) = import(&app, &file, &["--role", "collector", "--batch-size", "2"]);
    assert!(ok && bad.is_empty(), "{bad:?}");
    assert_eq!(summary["consents"], 1, "{summary}");
    assert_eq!(summary["interactions_stored"], 8, "{summary}");
    assert_eq!(count_rows(&app, "subjects").await, 4);
    assert_eq!(count_rows(&app, "interactions").await, 8);
    // Marketing needs consent: only Ada's interaction (consented in an earlier batch) holds
    // it; the others hold support alone.
    assert_eq!(count_rows(&app, "interaction_purposes").await, 7 + 1);

    // The whole file again in one batch: all duplicates.
    let (ok, summary, _) = import(&app, &file, &["--role", "collector", "--batch-size", "50"]);
    assert!(ok);
    assert_eq!(summary["interactions_duplicate"], 8, "{summary}");
    assert_eq!(count_rows(&app, "interactions").await, 8);

    for size in ["0", "50001"] {
        let output = app.run_cli(&["import", &file, "--role", "collector", "--batch-size", size]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "the command line refuses {size}"
        );
    }
    let output = app.run_cli(&[
        "import",
        &file,
        "--role",
        "collector",
        "--batch-size",
        "5001",
    ]);
    if crate::helpers::testing_postgres() {
        assert!(
            !output.status.success(),
            "PostgreSQL takes at most 5,000 a batch"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--batch-size is at most 5000 on PostgreSQL"),
            "{stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "refused before reading: no summary"
        );
    } else {
        assert!(output.status.success(), "SQLite takes up to 50,000 a batch");
    }
}

/// While another process holds SQLite's write lock longer than the busy timeout (an import's
/// large batch committing, say), a write is answered 503 with `Retry-After`, not 500, and
/// stores nothing; once the lock is released it goes through. (PostgreSQL writers wait for
/// each other's row locks instead; there is no busy timeout to run out.)
#[tokio::test]
async fn a_write_that_waits_out_another_processs_lock_is_told_to_retry() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let app = spawn_app().await;
    if crate::helpers::testing_postgres() {
        return;
    }
    let collector = app.token_for("collector").await;
    let custodia::store::DatabaseUrl::Sqlite(path) = &app.settings.database_url else {
        unreachable!("SQLite")
    };
    let mut other = diesel::SqliteConnection::establish(path.to_str().unwrap()).unwrap();
    other.batch_execute("BEGIN IMMEDIATE").unwrap();
    let item = json!({"id": "locked-1", "subject_id": "locked-ada", "type": "purchase",
                      "channel": "web", "occurred_at": "2026-10-01T10:00:00Z",
                      "purposes": ["support"]});
    let response = app
        .post_json("/v1/interactions", Some(&collector), &item)
        .await;
    let status = response.status();
    assert!(response.headers().contains_key("retry-after"), "{status}");
    assert_problem(
        response,
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
    )
    .await;
    other.batch_execute("ROLLBACK").unwrap();
    assert_eq!(count_rows(&app, "interactions").await, 0);
    let response = app
        .post_json("/v1/interactions", Some(&collector), &item)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}
