//! Data-subject rights over HTTP: export of a person with 10,000 interactions (JSON and the zip
//! of CSV files), memory while exporting a person with 100,000, and 100 access requests filed,
//! verified, executed and downloaded end to end.
//!
//! `cargo bench --bench data_subject_rights` (SQLite) or with
//! `CUSTODIA_BENCH_DATABASE_URL=postgres://…`. Results go in docs/benchmarks.md.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const PEOPLE: usize = 5;
const PER_PERSON: usize = 10_000;
const LARGE: usize = 100_000;
const BATCH: usize = 1_000;
const REQUESTS: usize = 100;
const PER_REQUESTER: usize = 20;

fn item(subject: &str, i: usize) -> Value {
    json!({"id": format!("evt-{i}"), "subject_id": subject, "type": "purchase",
           "channel": "web", "occurred_at": "2026-11-01T10:00:00Z",
           "purposes": ["support", "legal_compliance"],
           "data": {"message": format!("Order {i}: two items"), "order_id": format!("ORD-{i:08}"),
                    "page_url": "/checkout/confirm"}})
}

/// Resident memory of this process (server and client), in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        })
        .unwrap_or(0)
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn list(times: &[f64]) -> String {
    times
        .iter()
        .map(|t| format!("{t:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Client {
    http: reqwest::Client,
    address: String,
}

impl Client {
    async fn store(&self, token: &str, subject: &str, count: usize) {
        for start in (0..count).step_by(BATCH) {
            let items: Vec<Value> = (start..(start + BATCH).min(count))
                .map(|i| item(subject, i))
                .collect();
            let response = self
                .http
                .post(format!("{}/v1/interactions/batch", self.address))
                .bearer_auth(token)
                .json(&json!({ "interactions": items }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
        }
    }

    /// Downloads `path` chunk by chunk without keeping it; returns the bytes received.
    async fn download(&self, token: &str, path: &str) -> usize {
        let mut response = self
            .http
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let mut bytes = 0;
        while let Some(chunk) = response.chunk().await.unwrap() {
            bytes += chunk.len();
        }
        bytes
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}{path}", self.address))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{path}");
        response.json().await.unwrap()
    }

    /// One access request, end to end: filed, verified, executed, its export downloaded.
    /// Returns the milliseconds of each of the four calls.
    async fn access_request(&self, token: &str, subject: &str) -> [f64; 4] {
        let mut times = [0.0; 4];
        let mut started = Instant::now();
        let mut lap = |index: usize| {
            times[index] = started.elapsed().as_secs_f64() * 1000.0;
            started = Instant::now();
        };
        let created = self
            .post(
                token,
                "/v1/requests",
                json!({"type": "access", "regulation": "gdpr", "subject_id": subject}),
            )
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        lap(0);
        self.post(token, &format!("/v1/requests/{id}/verify"), json!({}))
            .await;
        lap(1);
        let done = self
            .post(token, &format!("/v1/requests/{id}/execute"), json!({}))
            .await;
        assert_eq!(done["status"], "completed");
        lap(2);
        let url = done["result"]["export"]["url"].as_str().unwrap().to_owned();
        self.download(token, &url).await;
        lap(3);
        times
    }
}

/// Gathers planner statistics, as a running database has them (PostgreSQL's autovacuum; on
/// SQLite, `ANALYZE`): a table just loaded in bulk has none.
async fn analyze(app: &common::BenchApp) {
    use diesel::connection::SimpleConnection;
    let settings = app.settings.clone();
    tokio::task::spawn_blocking(move || {
        let database = custodia::startup::open_database(&settings).unwrap();
        let mut conn = database.connection().unwrap();
        conn.batch_execute("ANALYZE").unwrap();
    })
    .await
    .unwrap();
}

#[tokio::main]
async fn main() {
    let app = common::start();
    let collector = app.token("collector").await;
    let compliance = app.token("compliance").await;
    let client = Arc::new(Client {
        http: reqwest::Client::new(),
        address: app.address.clone(),
    });

    // Exports of people with 10,000 interactions each, among others.
    for other in 0..200 {
        client
            .store(&collector, &format!("other-{other}"), 50)
            .await;
    }
    for person in 0..PEOPLE {
        client
            .store(&collector, &format!("export-{person}"), PER_PERSON)
            .await;
    }
    analyze(&app).await;
    for (format, query) in [("JSON", ""), ("zip of CSV", "?format=csv")] {
        let mut times = Vec::new();
        let mut size = 0;
        for person in 0..PEOPLE {
            let started = Instant::now();
            size = client
                .download(
                    &compliance,
                    &format!("/v1/subjects/export-{person}/export{query}"),
                )
                .await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "| {} | export ({format}, {} KiB) of a person with {PER_PERSON} interactions (3 encrypted fields each), 200 other people | {PEOPLE} runs: {} ms | median {:.0} ms |",
            app.backend,
            size / 1024,
            list(&times),
            median(times.clone())
        );
    }

    if std::env::var_os("CUSTODIA_BENCH_EXPORT_ONLY").is_some() {
        return;
    }
    // 100 access requests, each for a person with a few interactions.
    for requester in 0..REQUESTS {
        client
            .store(&collector, &format!("requester-{requester}"), PER_REQUESTER)
            .await;
    }
    analyze(&app).await;
    let started = Instant::now();
    let mut phases = [0.0; 4];
    for requester in 0..REQUESTS {
        let times = client
            .access_request(&compliance, &format!("requester-{requester}"))
            .await;
        for (total, time) in phases.iter_mut().zip(times) {
            *total += time / REQUESTS as f64;
        }
    }
    let sequential = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let (client, token) = (client.clone(), compliance.clone());
        tasks.push(tokio::spawn(async move {
            for requester in (worker..REQUESTS).step_by(8) {
                client
                    .access_request(&token, &format!("requester-{requester}"))
                    .await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let concurrent = started.elapsed().as_secs_f64();
    println!(
        "| {} | {REQUESTS} access requests end to end (file, verify, execute, download the export of {PER_REQUESTER} interactions) | one at a time: {:.2} s ({:.0}/s); 8 at a time: {:.2} s ({:.0}/s) | mean per call one at a time: file {:.1} ms, verify {:.1} ms, execute {:.1} ms, download {:.1} ms |",
        app.backend,
        sequential,
        REQUESTS as f64 / sequential,
        concurrent,
        REQUESTS as f64 / concurrent,
        phases[0],
        phases[1],
        phases[2],
        phases[3]
    );

    // Memory while exporting a person with 100,000 interactions.
    client.store(&collector, "export-large", LARGE).await;
    let before = rss_kib();
    let peak = Arc::new(AtomicU64::new(before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();
    let bytes = client
        .download(&compliance, "/v1/subjects/export-large/export")
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Ordering::Relaxed);
    println!(
        "| {} | export (JSON, {} MiB) of a person with {LARGE} interactions | {:.2} s | resident memory {} MiB before, peak {} MiB during (+{} MiB) |",
        app.backend,
        bytes / (1024 * 1024),
        elapsed,
        before / 1024,
        peak / 1024,
        (peak.saturating_sub(before)) / 1024
    );
}
