//! Measures `POST /v1/auth/token` for a valid key and for every kind of bad key, to check that
//! an unknown key id and a wrong secret cannot be told apart by timing.
//!
//! Run with `cargo bench --bench token_exchange`; results go in docs/benchmarks.md.

use std::time::{Duration, Instant};

use custodia::config::{Options, Settings};
use custodia::startup::{open_database, Application};
use serde_json::json;

const ROUNDS: usize = 40;

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        bind: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        policy_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into()),
        ..Options::default()
    };
    let settings = Settings::resolve(&options).unwrap();
    let application = Application::build(&settings).unwrap();
    let url = format!("http://127.0.0.1:{}/v1/auth/token", application.port());
    tokio::spawn(application.run_until_stopped());

    let policy = custodia::policy::load_dir(&settings.policy_dir).unwrap();
    let database = open_database(&settings).unwrap();
    let mut conn = database.connection().unwrap();
    let operator = custodia::audit::Actor::operator();
    let valid = custodia::auth::create_key(&mut conn, &policy, "bench", "admin", &operator)
        .unwrap()
        .api_key
        .to_string();
    let revoked =
        custodia::auth::create_key(&mut conn, &policy, "revoked", "admin", &operator).unwrap();
    custodia::auth::revoke_key(&mut conn, &policy, &revoked.info.id, &operator).unwrap();
    let key_id = valid.split('_').nth(1).unwrap();
    let cases = [
        ("valid key", valid.clone()),
        ("wrong secret", format!("ck_{key_id}_{}", "0".repeat(64))),
        (
            "unknown key id",
            format!("ck_0123456789abcdef_{}", "0".repeat(64)),
        ),
        ("revoked key", revoked.api_key.to_string()),
        ("malformed key", "not-a-key".to_owned()),
    ];

    let client = reqwest::Client::new();
    println!("| case | status | median ms | p10 ms | p90 ms |");
    println!("|---|---|---|---|---|");
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    let mut statuses = vec![0u16; cases.len()];
    // Interleave the cases so that drift in machine load affects all of them alike.
    for _ in 0..ROUNDS {
        for (index, (_, key)) in cases.iter().enumerate() {
            let started = Instant::now();
            let response = client
                .post(&url)
                .json(&json!({ "api_key": key }))
                .send()
                .await
                .unwrap();
            samples[index].push(started.elapsed());
            statuses[index] = response.status().as_u16();
        }
    }
    for (index, (name, _)) in cases.iter().enumerate() {
        let mut sorted = samples[index].clone();
        sorted.sort();
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} |",
            statuses[index],
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.1),
            percentile(&sorted, 0.9)
        );
    }
}
