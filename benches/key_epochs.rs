//! Rotation of the key epoch at 1,000,000 subjects, and what it costs the writes that go on
//! meanwhile: first-contact interactions (a new person each, so a new data key each) from 32
//! concurrent clients, measured for 10 s before the rotation and for the rotation's duration.
//!
//! `cargo bench --bench key_epochs` (SQLite) or with `CUSTODIA_BENCH_DATABASE_URL=postgres://…`;
//! `CUSTODIA_BENCH_SUBJECTS` changes the population (default 1,000,000). The population is
//! written straight through the library (subjects with a data key and a sealed subject id, as
//! ingest writes them), 5,000 per transaction. Results go in docs/benchmarks.md ("Key epochs").

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use custodia::startup::open_database;
use custodia::subjects::{insert_planned, plan_new_subjects, subject_index, SubjectId};
use custodia::vault::{maintain_epochs, Vault};
use serde_json::json;

const CLIENTS: usize = 32;
const GENERATE_BATCH: usize = 5_000;

/// Sends first-contact interactions until `stop`; returns (requests answered 201, failures).
async fn load(
    address: String,
    token: String,
    stop: Arc<AtomicBool>,
    prefix: &'static str,
) -> (u64, u64) {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for worker in 0..CLIENTS {
        let (client, address, token, stop, done, failed) = (
            client.clone(),
            address.clone(),
            token.clone(),
            stop.clone(),
            done.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let response = client
                    .post(format!("{address}/v1/interactions"))
                    .bearer_auth(&token)
                    .json(
                        &json!({"id": "e", "subject_id": format!("{prefix}-{worker}-{n}"),
                                   "type": "page_view", "channel": "web",
                                   "occurred_at": "2026-11-01T10:00:00Z",
                                   "purposes": ["support"], "data": {"message": "hello"}}),
                    )
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 201 => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

#[tokio::main]
async fn main() {
    let subjects: usize = std::env::var("CUSTODIA_BENCH_SUBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let app = common::start();
    let collector = app.token("collector").await;

    // The population, through the library as ingest writes it.
    let settings = app.settings.clone();
    let generated = Instant::now();
    tokio::task::spawn_blocking(move || {
        let database = open_database(&settings).unwrap();
        let mut conn = database.connection().unwrap();
        let vault = Vault::open(&mut conn, &settings.master_key_file).unwrap();
        let now = chrono::Utc::now().naive_utc();
        for start in (0..subjects).step_by(GENERATE_BATCH) {
            let ids: Vec<SubjectId> = (start..(start + GENERATE_BATCH).min(subjects))
                .map(|i| SubjectId::parse(&format!("person-{i}")).unwrap())
                .collect();
            let indexes: Vec<String> = ids.iter().map(|id| subject_index(&vault, id)).collect();
            let wanted: Vec<(&SubjectId, &str)> = ids
                .iter()
                .zip(&indexes)
                .map(|(id, index)| (id, index.as_str()))
                .collect();
            let planned = plan_new_subjects(&vault, &wanted, now).unwrap();
            custodia::store::write_transaction(&mut conn, |conn| insert_planned(conn, &planned))
                .unwrap();
        }
    })
    .await
    .unwrap();
    eprintln!(
        "{} subjects generated in {:.0} s",
        subjects,
        generated.elapsed().as_secs_f64()
    );

    // Writes alone, for 10 s.
    let stop = Arc::new(AtomicBool::new(false));
    let baseline = tokio::spawn(load(
        app.address.clone(),
        collector.clone(),
        stop.clone(),
        "before",
    ));
    tokio::time::sleep(Duration::from_secs(10)).await;
    stop.store(true, Ordering::Relaxed);
    let (before_ok, before_failed) = baseline.await.unwrap();

    // The rotation, with the same writes going on.
    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn(load(
        app.address.clone(),
        collector.clone(),
        stop.clone(),
        "during",
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let settings = app.settings.clone();
    let rotation = tokio::task::spawn_blocking(move || {
        let database = open_database(&settings).unwrap();
        let mut conn = database.connection().unwrap();
        let vault = Vault::open(&mut conn, &settings.master_key_file)
            .unwrap()
            .with_schedule(settings.epochs);
        let started = Instant::now();
        let report =
            maintain_epochs(&mut conn, &vault, chrono::Utc::now().naive_utc(), true).unwrap();
        (started.elapsed(), report)
    });
    let (took, report) = rotation.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let (during_ok, during_failed) = during.await.unwrap();
    let during_seconds = took.as_secs_f64() + 0.5;

    println!(
        "backend={} subjects={} rotation_s={:.1} rewrapped={} keys_per_s={:.0} \
         writes_before_per_s={:.0} (failed {}) writes_during_per_s={:.0} (failed {}) \
         epoch_retired={:?}",
        app.backend,
        subjects,
        took.as_secs_f64(),
        report.rewrapped,
        report.rewrapped as f64 / took.as_secs_f64(),
        before_ok as f64 / 10.0,
        before_failed,
        during_ok as f64 / during_seconds,
        during_failed,
        report.retired,
    );
}
