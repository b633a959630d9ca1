//! Erasure in the live database files, tested as an attacker would: `custodia serve` as its own
//! process, an export of someone else held open by a client that stopped reading, and a reader
//! in another process holding an older snapshot (SQLite: the `sqlite3` shell; PostgreSQL: a
//! session in a REPEATABLE READ transaction). After the erasure's answer, the raw files (SQLite:
//! the database and its WAL; PostgreSQL: every file of the `data_keys` partitions) are scanned
//! for the person's wrapped key, and every candidate is unwrapped with every key on disk (every
//! master key, every epoch the epoch file can still compute). Before the erasure the same scan
//! finds the key and decrypts the person's subject id, so the test can fail.

use std::io::{BufRead, Write};
use std::time::Duration;

use custodia::crypto::{
    epoch_file_for, unwrap_secret, EpochRatchet, MasterKey, MasterKeyring, WrapContext,
};
use custodia::store::DbConnection;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{metric_at, testing_postgres, Deployment, Served};

/// Every key that can unwrap anything, from the files on disk: each master key alone (keys
/// from before epochs) and with each epoch the epoch file can still compute.
fn keys_on_disk(deployment: &Deployment) -> Vec<MasterKey> {
    let key_file = deployment.data_dir.join("master.key");
    let keyring = MasterKeyring::load(&key_file).unwrap();
    let ratchet = EpochRatchet::load(&epoch_file_for(&key_file)).unwrap();
    let mut keys = Vec::new();
    for id in keyring.ids() {
        let master = keyring.find(id.as_str()).unwrap();
        for epoch in ratchet.oldest()..ratchet.oldest() + 8 {
            keys.push(ratchet.key(epoch).unwrap().wrapping_key(master));
        }
    }
    keys
}

/// Whether any 61-byte window of `bytes` that looks like a wrapped key (version byte 1)
/// unwraps as the key `label` of `owner` (a subject's data key, a request's key) under any of
/// `keys`.
fn wrapped_key_found(bytes: &[u8], label: &str, owner: &str, keys: &[MasterKey]) -> bool {
    const WRAPPED_LEN: usize = 61;
    let context = WrapContext { label, owner };
    (0..bytes.len().saturating_sub(WRAPPED_LEN - 1))
        .filter(|&at| bytes[at] == 1)
        .any(|at| {
            keys.iter()
                .any(|key| unwrap_secret(key, &context, &bytes[at..at + WRAPPED_LEN]).is_ok())
        })
}

fn connect(url: &str) -> DbConnection {
    if let Some(path) = url.strip_prefix("sqlite://") {
        DbConnection::Sqlite(diesel::SqliteConnection::establish(path).unwrap())
    } else {
        DbConnection::Postgresql(diesel::PgConnection::establish(url).unwrap())
    }
}

/// The raw bytes an attacker with the disk reads: SQLite's database file and WAL; PostgreSQL's
/// files of every `data_keys` partition and of `subject_requests`, after a checkpoint wrote the
/// buffers out.
fn raw_files(deployment: &Deployment) -> Vec<u8> {
    let url = &deployment.database.url;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut bytes = Vec::new();
        for suffix in ["", "-wal"] {
            if let Ok(content) = std::fs::read(format!("{path}{suffix}")) {
                bytes.extend(content);
            }
        }
        return bytes;
    }
    #[derive(QueryableByName)]
    struct Text {
        #[diesel(sql_type = diesel::sql_types::Text)]
        text: String,
    }
    let DbConnection::Postgresql(mut pg) = connect(url) else {
        unreachable!()
    };
    pg.batch_execute("CHECKPOINT").unwrap();
    let data_dir = diesel::sql_query("SELECT current_setting('data_directory') AS text")
        .get_result::<Text>(&mut pg)
        .unwrap()
        .text;
    let files: Vec<Text> = diesel::sql_query(
        "SELECT pg_relation_filepath(c.oid)::text AS text FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'data_keys'::regclass",
    )
    .load(&mut pg)
    .unwrap();
    assert_eq!(files.len(), 64, "the data key partitions");
    let requests =
        diesel::sql_query("SELECT pg_relation_filepath('subject_requests')::text AS text")
            .get_result::<Text>(&mut pg)
            .unwrap();
    let mut bytes = Vec::new();
    for file in files.into_iter().chain([requests]) {
        let path = format!("{data_dir}/{}", file.text);
        let content = std::fs::read(&path).unwrap_or_else(|error| {
            panic!("this test reads PostgreSQL's files as an attacker with the disk would, and needs to be able to ({path}: {error})")
        });
        bytes.extend(content);
    }
    bytes
}

/// The victim's internal id, and their subject id decrypted with the keys on disk (the attack
/// working before the erasure).
fn victim_pk(deployment: &Deployment, subject_id: &str) -> (String, String) {
    let mut conn = connect(&deployment.database.url);
    let vault =
        custodia::vault::Vault::open(&mut conn, &deployment.data_dir.join("master.key")).unwrap();
    let id = custodia::subjects::SubjectId::parse(subject_id).unwrap();
    let handle = custodia::subjects::find(&mut conn, &vault, &id)
        .unwrap()
        .expect("the victim exists");
    let sealed: Vec<u8> = custodia::store::schema::subjects::table
        .find(&handle.pk)
        .select(custodia::store::schema::subjects::subject_id_ct)
        .first(&mut conn)
        .unwrap();
    let plain = handle
        .key
        .decrypt(
            &custodia::crypto::FieldContext {
                subject: &handle.pk,
                record: "subject",
                field: "$subject_id",
            },
            &sealed,
        )
        .unwrap();
    (handle.pk.clone(), String::from_utf8(plain).unwrap())
}

async fn post(served: &Served, token: &str, path: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}{path}", served.base))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// An export large enough (about 12 MB) that a client that stops reading leaves the server's
/// thread blocked inside its snapshot.
async fn store_a_large_person(served: &Served, collector: &str) {
    let message = "x".repeat(4_000);
    for batch in 0..3 {
        let items: Vec<Value> = (0..1_000)
            .map(|i| {
                json!({"id": format!("b{batch}-{i}"), "subject_id": "large-person", "type": "note",
                       "channel": "web", "occurred_at": "2026-11-01T10:00:00Z",
                       "purposes": ["support"], "data": {"message": message}})
            })
            .collect();
        let response = post(
            served,
            collector,
            "/v1/interactions/batch",
            &json!({"interactions": items}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
}

/// A reader in another process holding a snapshot from before the erasure.
enum OtherReader {
    Shell(std::process::Child),
    Session(DbConnection),
}

fn hold_a_snapshot(deployment: &Deployment) -> OtherReader {
    let url = &deployment.database.url;
    if let Some(path) = url.strip_prefix("sqlite://") {
        let mut shell = std::process::Command::new("sqlite3")
            .arg(path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the sqlite3 shell (Debian package sqlite3; .ci/run installs it)");
        let stdin = shell.stdin.as_mut().unwrap();
        stdin
            .write_all(b"BEGIN;\nSELECT count(*) FROM data_keys;\n")
            .unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(shell.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.trim().parse::<i64>().is_ok(), "the shell read: {line}");
        OtherReader::Shell(shell)
    } else {
        let mut session = connect(url);
        session
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM data_keys;")
            .unwrap();
        OtherReader::Session(session)
    }
}

#[tokio::test]
async fn after_an_erasure_nothing_in_the_live_files_decrypts_even_with_readers_holding_old_snapshots(
) {
    let deployment = Deployment::new();
    let collector_key = deployment.api_key("collector");
    let compliance_key = deployment.api_key("compliance");
    let served = deployment.serve().await;
    let collector = served.token(&collector_key).await;
    let compliance = served.token(&compliance_key).await;

    for person in ["victim", "bystander"] {
        let response = post(
            &served,
            &collector,
            "/v1/interactions",
            &json!({"id": "n1", "subject_id": person, "type": "note", "channel": "web",
                    "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["support"],
                    "data": {"message": format!("about {person}")}}),
        )
        .await;
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    store_a_large_person(&served, &collector).await;
    let filed: Value = post(
        &served,
        &compliance,
        "/v1/requests",
        &json!({"type": "access", "regulation": "gdpr", "subject_id": "victim"}),
    )
    .await
    .json()
    .await
    .unwrap();
    let request_id = filed["id"].as_str().expect("a request id").to_owned();

    // The attack works before the erasure.
    let (pk, revealed) = victim_pk(&deployment, "victim");
    assert_eq!(revealed, "victim");
    let keys = keys_on_disk(&deployment);
    let files = raw_files(&deployment);
    assert!(
        wrapped_key_found(&files, "data-key", &pk, &keys),
        "the scan finds the victim's wrapped key in the raw files before the erasure"
    );
    assert!(
        wrapped_key_found(&files, "request-key", &request_id, &keys),
        "and the key of the request naming them"
    );

    // A client starts someone else's export and stops reading; another process holds a
    // snapshot.
    let mut export = reqwest::Client::new()
        .get(format!("{}/v1/subjects/large-person/export", served.base))
        .bearer_auth(&compliance)
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), StatusCode::OK);
    assert!(
        export.chunk().await.unwrap().is_some(),
        "the export started"
    );
    let mut other = hold_a_snapshot(&deployment);

    let erasing = {
        let (base, token) = (served.base.clone(), compliance.clone());
        tokio::spawn(async move {
            reqwest::Client::new()
                .delete(format!("{base}/v1/subjects/victim"))
                .bearer_auth(token)
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .unwrap()
        })
    };

    // The held export is ended (after the erasure's patience with its own readers), broken
    // off, never finished as if whole.
    let mut rest = Vec::new();
    let broken = loop {
        match export.chunk().await {
            Ok(Some(chunk)) => rest.extend_from_slice(&chunk),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(
        broken || serde_json::from_slice::<Value>(&rest).is_err(),
        "an ended export is not a whole document"
    );

    let receipt: Value = match &mut other {
        OtherReader::Shell(shell) => {
            // Another process's SQLite reader cannot be ended: the erasure, which has just
            // ended its own export, still waits for it, and answers only after.
            assert!(
                !erasing.is_finished(),
                "the erasure must not answer while a reader can still keep the WAL"
            );
            let stdin = shell.stdin.as_mut().unwrap();
            stdin.write_all(b"COMMIT;\n.quit\n").unwrap();
            stdin.flush().unwrap();
            let response = erasing.await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            shell.wait().unwrap();
            response.json().await.unwrap()
        }
        OtherReader::Session(session) => {
            // PostgreSQL: the session whose transaction began before the erasure is ended.
            let response = erasing.await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert!(
                session.batch_execute("SELECT 1").is_err(),
                "the old snapshot's session was ended"
            );
            response.json().await.unwrap()
        }
    };
    assert_eq!(receipt["erased"], true, "{receipt}");
    assert_eq!(receipt["old_copies_removed"], true, "{receipt}");

    // The attack fails now: nothing in the live files unwraps as the victim's key.
    let (files, keys) = (raw_files(&deployment), keys_on_disk(&deployment));
    assert!(
        !wrapped_key_found(&files, "data-key", &pk, &keys),
        "the victim's wrapped key must not be in the raw files after the erasure"
    );
    assert!(
        !wrapped_key_found(&files, "request-key", &request_id, &keys),
        "nor the key of the request naming them"
    );
    if !testing_postgres() {
        let wal = std::fs::metadata(format!(
            "{}-wal",
            deployment.database.url.trim_start_matches("sqlite://")
        ))
        .map(|meta| meta.len())
        .unwrap_or(0);
        // Writes after the truncation may have started a new WAL; it holds only new pages.
        assert!(wal < 1_000_000, "the WAL was truncated ({wal} bytes)");
    }
    drop(served);
}

/// The internal id of the person an id names (an anonymous id: through its own index).
fn pk_of(deployment: &Deployment, id: &custodia::subjects::SubjectId) -> String {
    let mut conn = connect(&deployment.database.url);
    let vault =
        custodia::vault::Vault::open(&mut conn, &deployment.data_dir.join("master.key")).unwrap();
    custodia::subjects::find(&mut conn, &vault, id)
        .unwrap()
        .expect("the person exists")
        .pk
}

#[tokio::test]
async fn after_a_merged_persons_erasure_their_members_key_leaves_the_live_files() {
    let deployment = Deployment::new();
    let collector_key = deployment.api_key("collector");
    let compliance_key = deployment.api_key("compliance");
    let served = deployment.serve().await;
    let collector = served.token(&collector_key).await;
    let compliance = served.token(&compliance_key).await;
    let known = post(
        &served,
        &collector,
        "/v1/interactions",
        &json!({"id": "n1", "subject_id": "known-merge", "type": "note", "channel": "web",
                "occurred_at": "2026-11-01T10:00:00Z", "purposes": ["support"],
                "data": {"message": "the known side"}}),
    )
    .await;
    assert_eq!(known.status(), StatusCode::CREATED);
    let track = |messages: Value| {
        let (base, key) = (served.base.clone(), collector_key.clone());
        async move {
            reqwest::Client::new()
                .post(format!("{base}/v1/batch"))
                .basic_auth(key, Some(""))
                .json(&json!({ "batch": messages }))
                .send()
                .await
                .unwrap()
        }
    };
    let visited = track(
        json!([{"type": "page", "messageId": "p1", "anonymousId": "anon-files",
                                "name": "Home", "properties": {"page_url": "/"}}]),
    )
    .await;
    assert_eq!(visited.status(), StatusCode::OK);
    let anonymous = custodia::subjects::SubjectId::anonymous("anon-files").unwrap();
    let member = pk_of(&deployment, &anonymous);
    // The consolidation job folds a member into its person on a 10 s tick: start the merge
    // right after a tick, so that the member and its key are still there when the files are
    // scanned below (under load, a tick between the merge and the scan made this test fail).
    let consolidations = || {
        metric_at(
            &served.base,
            "custodia_job_runs_total{job=\"member_consolidation\",outcome=\"ok\"}",
        )
    };
    let before = consolidations().await;
    let waited = std::time::Instant::now();
    while consolidations().await == before {
        assert!(waited.elapsed() < Duration::from_secs(30), "the job ticks");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let linked = track(
        json!([{"type": "identify", "messageId": "i1", "userId": "known-merge",
                               "anonymousId": "anon-files"}]),
    )
    .await;
    assert_eq!(linked.status(), StatusCode::OK);
    let person = pk_of(
        &deployment,
        &custodia::subjects::SubjectId::parse("known-merge").unwrap(),
    );
    assert_eq!(
        pk_of(&deployment, &anonymous),
        person,
        "the anonymous id now names the known person"
    );
    // The visitor is a member of the person: their key stays, their page is sealed under it.
    let keys = keys_on_disk(&deployment);
    let files = raw_files(&deployment);
    assert!(
        wrapped_key_found(&files, "data-key", &member, &keys),
        "the scan finds the member's wrapped key after the merge"
    );
    assert!(wrapped_key_found(&files, "data-key", &person, &keys));

    // Erasing the person destroys both keys, and their old copies leave the files.
    let erased = reqwest::Client::new()
        .delete(format!("{}/v1/subjects/known-merge", served.base))
        .bearer_auth(&compliance)
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), StatusCode::OK);
    let files = raw_files(&deployment);
    for (pk, whose) in [(&member, "member"), (&person, "person")] {
        assert!(
            !wrapped_key_found(&files, "data-key", pk, &keys),
            "the {whose}'s wrapped key must leave the raw files"
        );
    }
    drop(served);
}
