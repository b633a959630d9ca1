//! Batch ingest over HTTP versus the same rows inserted directly.
//!
//! `cargo bench --bench ingest` (SQLite) or with `CUSTODIA_BENCH_DATABASE_URL=postgres://…`.
//! Results go in docs/benchmarks.md.

mod common;

use std::time::Instant;

use chrono::Utc;
use custodia::store::interactions::{InteractionPurposeRow, InteractionRow};
use custodia::store::subjects::SubjectRow;
use serde_json::{json, Value};

const TOTAL: usize = 100_000;
const BATCH: usize = 1_000;
const SUBJECTS: usize = 10_000;
const CLIENTS: usize = 4;

fn batch(start: usize) -> Value {
    let items: Vec<Value> = (start..start + BATCH)
        .map(|i| {
            json!({
                "id": format!("evt-{i}"),
                "subject_id": format!("cust-{}", i % SUBJECTS),
                "type": "purchase",
                "channel": "web",
                "occurred_at": "2026-11-01T10:00:00Z",
                "purposes": ["support"],
                "data": {
                    "message": format!("Order {i}: two items, delivery to the usual address please"),
                    "order_id": format!("ORD-{i:08}"),
                    "page_url": "/checkout/confirm",
                }
            })
        })
        .collect();
    json!({ "interactions": items })
}

/// A well-spread 64-bit value per row, standing in for an HMAC (the real index is random too).
fn ring_free_hash(i: usize) -> u64 {
    let mut x = i as u64 ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Inserts TOTAL rows directly (run `run` of three) and returns the seconds it took.
async fn baseline(app: &common::BenchApp, run: usize) -> f64 {
    let database = custodia::startup::open_database(&app.settings).unwrap();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().unwrap();
        let now = Utc::now().naive_utc();
        let subject_rows: Vec<SubjectRow> = (0..SUBJECTS)
            .map(|i| SubjectRow {
                id: format!("{run}{:021}", i),
                subject_index: format!("{run}{:031x}", i + 1_000_000),
                subject_id_ct: vec![7; 40],
                identifiers_ct: "{}".into(),
                traits_ct: "{}".into(),
                created_at: now,
                updated_at: now,
            })
            .collect();
        custodia::store::subjects::insert(&mut conn, &subject_rows).unwrap();
        let sealed = "A".repeat(110);
        let started = Instant::now();
        for chunk in 0..TOTAL / BATCH {
            let mut rows = Vec::with_capacity(BATCH);
            let mut purposes = Vec::with_capacity(BATCH);
            for i in chunk * BATCH..(chunk + 1) * BATCH {
                let id = uuid::Uuid::now_v7().simple().to_string();
                let subject = &subject_rows[i % SUBJECTS].id;
                purposes.push(InteractionPurposeRow {
                    interaction_pk: id.clone(),
                    subject_pk: subject.clone(),
                    purpose: "support".into(),
                    occurred_at: now,
                    interaction_type: "purchase".into(),
                    channel: "web".into(),
                });
                rows.push(InteractionRow {
                    id,
                    subject_pk: subject.clone(),
                    client_index: format!("{:032x}", u128::from(ring_free_hash(i + run * TOTAL))),
                    client_id_ct: vec![9; 40],
                    interaction_type: "purchase".into(),
                    channel: "web".into(),
                    occurred_at: now,
                    recorded_at: now,
                    purposes: r#"["support"]"#.into(),
                    data_ct: format!(
                        r#"{{"message":"{sealed}","order_id":"{sealed}","page_url":"{sealed}"}}"#
                    ),
                    recorded_by: "0123456789abcdef".into(),
                });
            }
            custodia::store::write_transaction(&mut conn, |conn| {
                custodia::store::interactions::insert(conn, &rows, &purposes)
            })
            .unwrap();
        }
        started.elapsed().as_secs_f64()
    })
    .await
    .unwrap()
}

#[tokio::main]
async fn main() {
    let app = common::start();
    // For the A/B measurement of what the segments' purpose index costs at ingest.
    if std::env::var_os("CUSTODIA_BENCH_WITHOUT_PURPOSE_INDEX").is_some() {
        use diesel::connection::SimpleConnection;
        let database = custodia::startup::open_database(&app.settings).unwrap();
        database
            .connection()
            .unwrap()
            .batch_execute("DROP INDEX interaction_purposes_by_purpose")
            .unwrap();
    }
    // For the A/B measurement of what the population index's change feed costs at ingest
    // (with `CUSTODIA_POPULATION_INDEX=off`, the index itself too).
    if std::env::var_os("CUSTODIA_BENCH_WITHOUT_POPULATION_FEED").is_some() {
        common::drop_population_feed(&app.settings);
    }
    let token = app.token("collector").await;
    let client = reqwest::Client::new();

    // Build request bodies ahead of time, so the client's JSON work is not measured.
    let bodies: Vec<String> = (0..TOTAL / BATCH)
        .map(|n| batch(n * BATCH).to_string())
        .collect();
    let cpu_before = common::cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..CLIENTS {
        let client = client.clone();
        let url = format!("{}/v1/interactions/batch", app.address);
        let token = token.clone();
        let mine: Vec<String> = bodies
            .iter()
            .skip(worker)
            .step_by(CLIENTS)
            .cloned()
            .collect();
        tasks.push(tokio::spawn(async move {
            for body in mine {
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let result: Value = response.json().await.unwrap();
                assert_eq!(result["stored"], BATCH, "{result}");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let http_seconds = started.elapsed().as_secs_f64();
    let http_cores = (common::cpu_seconds() - cpu_before) / http_seconds;

    // Baseline: the same number of rows, same schema, inserted directly in transactions of
    // 1,000, with no HTTP, JSON, validation or encryption. Short and noisy, so it runs three
    // times (each on top of the previous rows) and the median counts.
    let mut baseline_runs = Vec::new();
    for run in 0..3 {
        baseline_runs.push(baseline(&app, run).await);
    }
    baseline_runs.sort_by(f64::total_cmp);
    let baseline_seconds = baseline_runs[1];

    let http_rate = TOTAL as f64 / http_seconds;
    let baseline_rate = TOTAL as f64 / baseline_seconds;
    println!("| backend | path | interactions | seconds | interactions/s |");
    println!("|---|---|---|---|---|");
    println!(
        "| {} | HTTP batch ({BATCH}/request, {CLIENTS} clients, 3 encrypted fields) | {TOTAL} | {http_seconds:.2} | {http_rate:.0} |",
        app.backend
    );
    println!(
        "| {} | direct insert baseline ({BATCH}/transaction) | {TOTAL} | {baseline_seconds:.2} | {baseline_rate:.0} |",
        app.backend
    );
    println!(
        "\nHTTP path / baseline: {:.0}%; CPU during the HTTP phase: {http_cores:.2} cores busy \
         (server and client in one process); peak RSS of the process: {:.0} MiB",
        100.0 * http_rate / baseline_rate,
        common::peak_rss_mib()
    );
}
