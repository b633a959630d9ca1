//! Identity resolution: the merge of an anonymous visitor with 10,000 interactions into the
//! known customer they log in as, over HTTP (the `identify` that links them), beside other
//! people's data. The visitor becomes a member of the customer: their consent statements are
//! re-encrypted under the customer's key and move, their interactions stay where they are.
//!
//! `cargo bench --bench merge` (SQLite) or with `CUSTODIA_BENCH_DATABASE_URL=postgres://…`.
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
    let client = reqwest::Client::new();
    let send = |messages: Vec<Value>| {
        let (client, url, token) = (
            client.clone(),
            format!("{}/v1/batch", app.address),
            collector.clone(),
        );
        async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({ "batch": messages }))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        }
    };
    // An order with three encrypted fields, collected for two purposes.
    let order = |who: (&str, String), i: usize| {
        let mut message = json!({"type": "track", "messageId": format!("m-{i}"),
            "event": "Order Completed", "timestamp": "2026-11-01T10:00:00Z",
            "properties": {"message": format!("Order {i}: two items"),
                           "order_id": format!("ORD-{i:08}"), "page_url": "/checkout/confirm"}});
        message[who.0] = json!(who.1);
        message
    };
    for chunk in (0..BYSTANDERS * 50).collect::<Vec<_>>().chunks(BATCH) {
        send(
            chunk
                .iter()
                .map(|i| order(("userId", format!("other-{}", i % BYSTANDERS)), *i))
                .collect(),
        )
        .await;
    }
    for person in 0..PEOPLE {
        let anonymous = format!("anon-merge-{person}");
        send(vec![
            json!({"type": "track", "messageId": format!("consent-{person}"),
            "anonymousId": anonymous, "event": "Segment Consent Preference Updated",
            "context": {"ip": "198.51.100.1", "userAgent": "bench",
                        "consent": {"categoryPreferences": {"Advertising": true}}}}),
        ])
        .await;
        for start in (0..PER_PERSON).step_by(BATCH) {
            send(
                (start..start + BATCH)
                    .map(|i| order(("anonymousId", anonymous.clone()), i))
                    .collect(),
            )
            .await;
        }
        // The customer they will log in as, with a history of their own.
        send(
            (0..100)
                .map(|i| order(("userId", format!("customer-{person}")), i))
                .collect(),
        )
        .await;
    }
    let metrics_text = || async {
        client
            .get(format!("{}/metrics", app.address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let mut times = Vec::new();
    for person in 0..PEOPLE {
        let started = Instant::now();
        send(vec![
            json!({"type": "identify", "messageId": format!("login-{person}"),
            "userId": format!("customer-{person}"), "anonymousId": format!("anon-merge-{person}")}),
        ])
        .await;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let metrics = metrics_text().await;
    assert!(
        metrics.contains(&format!(
            "custodia_identity_links_total{{outcome=\"merged\"}} {PEOPLE}"
        )),
        "every login merged: {metrics}"
    );
    // The visitors are members now; the consolidation job (at start, then every 10 s) folds
    // their interactions into the customers in steps of 500. Its own time, from its metrics.
    let database = custodia::startup::open_database(&app.settings).unwrap();
    let waited = Instant::now();
    loop {
        use diesel::prelude::*;
        let mut conn = database.connection().unwrap();
        let members: i64 = custodia::store::schema::subject_members::table
            .count()
            .get_result(&mut *conn)
            .unwrap();
        if members == 0 {
            break;
        }
        assert!(
            waited.elapsed().as_secs() < 300,
            "consolidation did not finish"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let metrics = metrics_text().await;
    let metric = |name: &str| -> f64 {
        let prefix = format!("{name}{{job=\"member_consolidation\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .map_or(0.0, |value| value.trim().parse().unwrap())
    };
    println!(
        "| {} | consolidation of the {PEOPLE} visitors ({} interactions) into their customers | job time {:.2} s over {} runs ({:.0} interactions/s); members gone {:.1} s after the last login |",
        app.backend,
        PEOPLE * PER_PERSON,
        metric("custodia_job_duration_seconds_sum"),
        metric("custodia_job_duration_seconds_count"),
        (PEOPLE * PER_PERSON) as f64 / metric("custodia_job_duration_seconds_sum"),
        waited.elapsed().as_secs_f64(),
    );
    times.sort_by(f64::total_cmp);
    println!(
        "| {} | merge of an anonymous visitor with {PER_PERSON} interactions (2 purposes, 3 encrypted fields) and 1 consent statement into a customer with 100, {BYSTANDERS} other people with {} interactions | {PEOPLE} runs: {} ms | median {:.0} ms |",
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
