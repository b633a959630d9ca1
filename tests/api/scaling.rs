//! Two `custodia serve` processes on one database (docs/scaling.md): writes through both at
//! once keep one gap-free, verifiable audit chain and every acknowledged write; a consent
//! recorded through one is read through the other; an erasure through one is seen by the other
//! at once; a key revoked through one is refused by the other within seconds.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::helpers::Deployment;

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
