//! Two `custodia serve` processes on one database (docs/scaling.md): writes through both at
//! once keep one gap-free, verifiable audit chain and every acknowledged write; a consent
//! recorded through one is read through the other; an erasure through one is seen by the other
//! at once; a key revoked through one is refused by the other within seconds.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{metric_at, population_counts, Deployment, Served};

#[tokio::test]
async fn two_processes_share_one_database() {
    let deployment = Deployment::new();
    let nodes = [deployment.serve().await, deployment.serve().await];
    let collector_key = deployment.api_key("collector");
    let compliance_key = deployment.api_key("compliance");
    let admin_key = deployment.api_key("admin");
    let client = Client::new();
    // A token from one process works on the other (the signing key derives from the shared
    // root secret).
    let collector = nodes[0].token(&collector_key).await;
    let compliance = nodes[1].token(&compliance_key).await;

    // Writes through both at once: batches for subjects of their own, and consent statements
    // for one shared subject alternating between the processes.
    let mut writes = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for round in 0..10 {
            let (client, base, token) = (client.clone(), node.base.clone(), collector.clone());
            writes.push(tokio::spawn(async move {
                let interactions: Vec<Value> = (0..20)
                    .map(|i| {
                        json!({"id": format!("n{n}-r{round}-{i}"),
                               "subject_id": format!("scale-{n}-{round}"),
                               "type": "support_chat", "channel": "chat",
                               "occurred_at": "2026-11-30T10:00:00Z", "purposes": ["support"]})
                    })
                    .collect();
                let batch = client
                    .post(format!("{base}/v1/interactions/batch"))
                    .bearer_auth(&token)
                    .json(&json!({"interactions": interactions}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(batch.status(), StatusCode::OK);
                let status = if round % 2 == 0 {
                    "granted"
                } else {
                    "withdrawn"
                };
                let mut body = json!({"purpose": "marketing", "status": status,
                                      "source": "web", "method": "checkbox"});
                if status == "granted" {
                    body["notice"] = json!({"id": "newsletter", "version": "3"});
                }
                let consent = client
                    .post(format!("{base}/v1/subjects/scale-shared/consents"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = consent.status();
                assert_eq!(
                    status,
                    StatusCode::CREATED,
                    "{}",
                    consent.text().await.unwrap()
                );
            }));
        }
    }
    for write in writes {
        write.await.unwrap();
    }

    // Every statement is in the shared subject's history, read through either process.
    for node in &nodes {
        let state: Value = client
            .get(format!("{}/v1/subjects/scale-shared/consents", node.base))
            .bearer_auth(&compliance)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(state["history"].as_array().unwrap().len(), 20);
        let sequences: Vec<i64> = state["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["sequence"].as_i64().unwrap())
            .collect();
        let mut sorted = sequences.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 20, "each statement has its own sequence");
    }
    // One chain, gap-free and verifiable, whichever process wrote each entry.
    let verify: Value = client
        .get(format!("{}/v1/audit/verify", nodes[0].base))
        .bearer_auth(&compliance)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(verify["ok"], true, "{verify}");

    // An erasure through one process: the other answers 404 at once.
    let erased = client
        .delete(format!("{}/v1/subjects/scale-0-0", nodes[0].base))
        .bearer_auth(&compliance)
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), StatusCode::OK);
    let after = client
        .get(format!("{}/v1/subjects/scale-0-0/consents", nodes[1].base))
        .bearer_auth(&compliance)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), StatusCode::NOT_FOUND);

    // A key revoked through one process is refused by the other within seconds.
    let admin = nodes[0].token(&admin_key).await;
    let key_id = collector_key.split('_').nth(1).unwrap();
    let revoked = client
        .delete(format!("{}/v1/keys/{key_id}", nodes[0].base))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    let started = Instant::now();
    loop {
        let status = client
            .put(format!("{}/v1/subjects/scale-late", nodes[1].base))
            .bearer_auth(&collector)
            .json(&json!({"traits": {"country": "DE"}}))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the other process still accepted the revoked key after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one process writes is in the next count another process answers from its population
/// index: the people there when it started (read by its build), then new interactions, a
/// withdrawal, an erasure (read from the change feed) — and the second's index never answers
/// from the database.
#[tokio::test]
async fn a_count_through_one_process_sees_what_the_other_just_wrote() {
    let deployment = Deployment::new();
    let first = deployment.serve().await;
    let client = Client::new();
    let collector = first.token(&deployment.api_key("collector")).await;
    let compliance = first.token(&deployment.api_key("compliance")).await;
    let purchase = |person: usize, n: usize| {
        json!({"id": format!("buy-{person}-{n}"), "subject_id": format!("pop-{person}"),
               "type": "purchase", "channel": "web",
               "occurred_at": (chrono::Utc::now() - chrono::Duration::days(n as i64 + 1)).to_rfc3339(),
               "purposes": ["marketing"]})
    };
    for person in 0..12 {
        let put = client
            .put(format!("{}/v1/subjects/pop-{person}", first.base))
            .bearer_auth(&collector)
            .json(&json!({"traits": {"country": "DE", "language": "de"}}))
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success());
        marketing_consent(&client, &first.base, &collector, person, "granted").await;
    }
    let first_base = first.base.clone();
    let purchases = |n: usize, people: usize| {
        let (client, base, collector) = (client.clone(), first_base.clone(), collector.clone());
        async move {
            let batch = client
                .post(format!("{base}/v1/interactions/batch"))
                .bearer_auth(&collector)
                .json(&json!({"interactions": (0..people).map(|p| purchase(p, n)).collect::<Vec<_>>()}))
                .send()
                .await
                .unwrap();
            assert_eq!(batch.status(), StatusCode::OK);
        }
    };
    purchases(0, 12).await;
    // A second process starts now: its index is built from the tables.
    let nodes = [first, deployment.serve().await];
    let started = Instant::now();
    while metric_at(&nodes[1].base, "custodia_population_index_people").await < 12.0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the index is built"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let germany = json!({"trait": "country", "in": ["DE"]});
    let two_purchases = json!({"all": [germany.clone(),
        {"interactions": {"type": "purchase", "within_days": 30, "at_least": 2}}]});
    assert_eq!(count(&deployment, &nodes[1], &germany).await, json!(12));
    assert_eq!(
        count(&deployment, &nodes[1], &two_purchases).await,
        Value::Null
    );
    // A second purchase for eleven of them, through the other process.
    purchases(1, 11).await;
    assert_eq!(
        count(&deployment, &nodes[1], &two_purchases).await,
        json!(11)
    );
    // A withdrawal, then an erasure: each in the very next count.
    marketing_consent(&client, &nodes[0].base, &collector, 0, "withdrawn").await;
    assert_eq!(count(&deployment, &nodes[1], &germany).await, json!(11));
    assert_eq!(
        count(&deployment, &nodes[1], &two_purchases).await,
        json!(10)
    );
    let erased = client
        .delete(format!("{}/v1/subjects/pop-1", nodes[0].base))
        .bearer_auth(&compliance)
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), StatusCode::OK);
    assert_eq!(count(&deployment, &nodes[1], &germany).await, json!(10));
    assert_eq!(
        count(&deployment, &nodes[1], &two_purchases).await,
        Value::Null
    );
    assert_eq!(population_counts(&nodes[1].base).await, (7.0, 0.0));
}

async fn marketing_consent(client: &Client, base: &str, token: &str, person: usize, status: &str) {
    let mut body = json!({"purpose": "marketing", "status": status, "source": "web",
                          "method": "checkbox"});
    if status == "granted" {
        body["notice"] = json!({"id": "newsletter", "version": "3"});
    }
    let consent = client
        .post(format!("{base}/v1/subjects/pop-{person}/consents"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), StatusCode::CREATED);
}

/// A marketing preview through `node`, with a key of its own (the differencing guard compares
/// one key's answers): the size, or null when withheld.
async fn count(deployment: &Deployment, node: &Served, filter: &Value) -> Value {
    let marketer = node.token(&deployment.api_key("marketer")).await;
    let answer: Value = Client::new()
        .post(format!("{}/v1/segments/preview", node.base))
        .bearer_auth(marketer)
        .json(&json!({"purpose": "marketing", "filter": filter}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["size"].clone()
}
