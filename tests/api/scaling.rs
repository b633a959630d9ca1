//! Two `custodia serve` processes on one database (docs/scaling.md): writes through both at
//! once keep one gap-free, verifiable audit chain and every acknowledged write; a consent
//! recorded through one is read through the other; an erasure through one is seen by the other
//! at once; a key revoked through one is refused by the other within seconds.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{
    custodia_command, free_port, fresh_database, sample_policy_dir, serve_process,
};

struct Node {
    base: String,
    process: std::process::Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

async fn token(client: &Client, base: &str, api_key: &str) -> String {
    let body: Value = client
        .post(format!("{base}/v1/auth/token"))
        .json(&json!({"api_key": api_key}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn two_processes_share_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let database = fresh_database();
    let mut nodes = Vec::new();
    for _ in 0..2 {
        let port = free_port();
        nodes.push(Node {
            base: format!("http://127.0.0.1:{port}"),
            process: serve_process(port, &data_dir, &database.url).await,
        });
    }
    let key = |role: &str| {
        let output = custodia_command()
            .args(["keys", "create", "--role", role, "--name", role])
            .env("CUSTODIA_DATA_DIR", &data_dir)
            .env("CUSTODIA_POLICY_DIR", sample_policy_dir())
            .env("CUSTODIA_DATABASE_URL", &database.url)
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    };
    let (collector_key, compliance_key, admin_key) =
        (key("collector"), key("compliance"), key("admin"));
    let client = Client::new();
    // A token from one process works on the other (the signing key derives from the shared
    // root secret).
    let collector = token(&client, &nodes[0].base, &collector_key).await;
    let compliance = token(&client, &nodes[1].base, &compliance_key).await;

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
                    body["notice"] = json!({"id": "n", "version": format!("{n}-{round}")});
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
    let admin = token(&client, &nodes[0].base, &admin_key).await;
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
