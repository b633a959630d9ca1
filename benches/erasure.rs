//! Erasure of a person with 10,000 interactions, over HTTP, beside other people's data.
//!
//! `cargo bench --bench erasure` (SQLite) or with `CUSTODIA_BENCH_DATABASE_URL=postgres://…`.
//! Results go in docs/benchmarks.md.

mod common;

use std::time::Instant;

use serde_json::{json, Value};

const PEOPLE: usize = 5;
const PER_PERSON: usize = 10_000;
const BATCH: usize = 1_000;
const BYSTANDERS: usize = 200;

#[tokio::main]
async fn main() {
    let app = common::start();
    let collector = app.token("collector").await;
    let compliance = app.token("compliance").await;
    let client = reqwest::Client::new();
    let post = |items: Vec<Value>| {
        let (client, url, token) = (
            client.clone(),
            format!("{}/v1/interactions/batch", app.address),
            collector.clone(),
        );
        async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "interactions": items }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["failed"], 0, "{body}");
        }
    };
    let item = |subject: String, i: usize| {
        json!({"id": format!("evt-{i}"), "subject_id": subject, "type": "purchase",
               "channel": "web", "occurred_at": "2026-11-01T10:00:00Z",
               "purposes": ["support", "legal_compliance"],
               "data": {"message": format!("Order {i}: two items"), "order_id": format!("ORD-{i:08}"),
                        "page_url": "/checkout/confirm"}})
    };
    // Other people's data around the people to erase.
    for chunk in (0..BYSTANDERS * 50).collect::<Vec<_>>().chunks(BATCH) {
        post(
            chunk
                .iter()
                .map(|i| item(format!("other-{}", i % BYSTANDERS), *i))
                .collect(),
        )
        .await;
    }
    for person in 0..PEOPLE {
        for start in (0..PER_PERSON).step_by(BATCH) {
            post(
                (start..start + BATCH)
                    .map(|i| item(format!("erase-{person}"), i))
                    .collect(),
            )
            .await;
        }
    }
    let mut times = Vec::new();
    for person in 0..PEOPLE {
        let started = Instant::now();
        let response = client
            .delete(format!("{}/v1/subjects/erase-{person}", app.address))
            .bearer_auth(&compliance)
            .send()
            .await
            .unwrap();
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["counts"]["interactions"], PER_PERSON);
        times.push(elapsed);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "| {} | erasure of a person with {PER_PERSON} interactions (2 purposes, 3 encrypted fields), {BYSTANDERS} other people with {} interactions | {PEOPLE} runs: {} ms | median {:.0} ms |",
        app.backend,
        BYSTANDERS * 50,
        times
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        times[PEOPLE / 2]
    );
}
