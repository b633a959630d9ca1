//! Crash safety: `custodia serve` is SIGKILLed while batches of interactions and consent
//! statements are being written, then another process starts on the same database. Every write
//! that was acknowledged is there, no batch is partly stored, and the audit chain verifies — on
//! the backend under test.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::helpers::Deployment;

/// Writers that run at once, and how many items each batch carries.
const WRITERS: usize = 4;
const BATCH: usize = 25;

/// What a writer saw acknowledged before the crash.
#[derive(Default)]
struct Acknowledged {
    /// Batch name → its interaction ids (every item of an acknowledged batch was stored).
    batches: BTreeMap<String, Vec<String>>,
    /// Every batch sent, acknowledged or not: batch name → (subject, ids).
    sent: BTreeMap<String, (String, Vec<String>)>,
    /// Subjects whose consent statement (granted, with this notice version) was acknowledged.
    consents: Vec<(String, String)>,
}

/// Writes until the server dies: batches of interactions, each for a subject of its own, and a
/// consent statement after each batch.
/// Writes until the server stops answering; each acknowledged batch adds a permit to `acked`.
async fn writer(
    client: Client,
    base: String,
    token: String,
    writer: usize,
    acked: std::sync::Arc<tokio::sync::Semaphore>,
) -> Acknowledged {
    let mut seen = Acknowledged::default();
    for round in 0.. {
        let name = format!("w{writer}-b{round}");
        let subject = format!("crash-{name}");
        let ids: Vec<String> = (0..BATCH).map(|i| format!("{name}-i{i}")).collect();
        let interactions: Vec<Value> = ids
            .iter()
            .map(|id| {
                json!({"id": id, "subject_id": subject, "type": "support_chat", "channel": "chat",
                       "occurred_at": "2026-11-30T10:00:00Z", "purposes": ["support"],
                       "data": {"message": "where is my parcel"}})
            })
            .collect();
        seen.sent
            .insert(name.clone(), (subject.clone(), ids.clone()));
        let response = client
            .post(format!("{base}/v1/interactions/batch"))
            .bearer_auth(&token)
            .json(&json!({"interactions": interactions}))
            .send()
            .await;
        let Ok(response) = response else { break };
        if response.status() != StatusCode::OK {
            break;
        }
        let Ok(body) = response.json::<Value>().await else {
            break;
        };
        let results = body["results"].as_array().unwrap();
        assert!(results.iter().all(|r| r["error"].is_null()), "{body}");
        seen.batches.insert(name.clone(), ids);
        acked.add_permits(1);
        let version = format!("v{round}");
        let response = client
            .post(format!("{base}/v1/subjects/{subject}/consents"))
            .bearer_auth(&token)
            .json(
                &json!({"id": version, "purpose": "marketing", "status": "granted",
                          "source": "web", "method": "checkbox",
                          "notice": {"id": "newsletter", "version": "3"}}),
            )
            .send()
            .await;
        match response {
            Ok(response) if response.status() == StatusCode::CREATED => {
                if response.json::<Value>().await.is_ok() {
                    seen.consents.push((subject, version));
                }
            }
            _ => break,
        }
    }
    seen
}

#[tokio::test]
async fn acknowledged_writes_survive_a_kill_and_no_batch_is_half_stored() {
    let deployment = Deployment::new();
    let mut server = deployment.serve().await;
    let base = server.base.clone();
    let client = Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let collector = server.token(&deployment.api_key("collector")).await;

    let acked = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let work = writer(
                client.clone(),
                base.clone(),
                collector.clone(),
                n,
                acked.clone(),
            );
            tokio::spawn(work)
        })
        .collect();
    // Once writes flow (three acknowledged batches per writer, on average), kill the process
    // mid-flight: no shutdown, no flush.
    let flowing = u32::try_from(3 * WRITERS).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(60), acked.acquire_many(flowing))
        .await
        .expect("the writers had batches acknowledged");
    server.kill();
    let mut seen = Acknowledged::default();
    for handle in writers {
        let part = handle.await.unwrap();
        seen.batches.extend(part.batches);
        seen.sent.extend(part.sent);
        seen.consents.extend(part.consents);
    }
    assert!(
        seen.batches.len() >= WRITERS,
        "the writers had batches acknowledged before the kill: {}",
        seen.batches.len()
    );

    // Another process on the same database.
    let mut restarted = deployment.serve().await;
    let base = restarted.base.clone();
    let support = restarted.token(&deployment.api_key("support")).await;
    let compliance = restarted.token(&deployment.api_key("compliance")).await;
    let mut stored_batches = 0;
    for (name, (subject, ids)) in &seen.sent {
        let response = client
            .get(format!(
                "{base}/v1/subjects/{subject}/interactions?purpose=support&limit=100"
            ))
            .bearer_auth(&support)
            .send()
            .await
            .unwrap();
        let stored: BTreeSet<String> = if response.status() == StatusCode::NOT_FOUND {
            BTreeSet::new()
        } else {
            assert_eq!(response.status(), StatusCode::OK, "{name}");
            let body: Value = response.json().await.unwrap();
            body["interactions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect()
        };
        let expected: BTreeSet<String> = ids.iter().cloned().collect();
        assert!(
            stored.is_empty() || stored == expected,
            "batch {name} is partly stored: {} of {}",
            stored.len(),
            expected.len()
        );
        if seen.batches.contains_key(name) {
            assert_eq!(
                stored, expected,
                "acknowledged batch {name} is stored whole"
            );
        }
        stored_batches += usize::from(!stored.is_empty());
    }
    eprintln!(
        "crash: {} batches sent, {} acknowledged, {} stored; {} consents acknowledged",
        seen.sent.len(),
        seen.batches.len(),
        stored_batches,
        seen.consents.len()
    );
    assert!(stored_batches >= seen.batches.len());
    for (subject, version) in &seen.consents {
        let state: Value = client
            .get(format!("{base}/v1/subjects/{subject}/consents"))
            .bearer_auth(&compliance)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            state["history"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == version.as_str()),
            "the acknowledged consent of {subject} is in its history: {state}"
        );
    }
    let verify: Value = client
        .get(format!("{base}/v1/audit/verify"))
        .bearer_auth(&compliance)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    restarted.kill();
    assert_eq!(verify["ok"], true, "{verify}");
}
