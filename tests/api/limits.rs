//! Limits: a request rate per API key and a rate of token exchanges per address, answered with
//! 429 `rate_limited` and `Retry-After`; the other keys are not affected.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, limited_and_refused, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_key_past_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let app = spawn_app_with(|options| options.rate_limit = Some(5)).await;
    let busy = app.token_for("compliance").await;
    let quiet = app.token_for("compliance").await;

    // A burst of twice the rate passes; the next request does not.
    for n in 0..10 {
        let response = app.get("/v1/policy", Some(&busy)).await;
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "request {n} of the burst"
        );
    }
    let refused = app.get("/v1/policy", Some(&busy)).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    assert_problem(refused, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;

    // Another key has its own rate.
    assert_eq!(
        app.get("/v1/policy", Some(&quiet)).await.status(),
        StatusCode::OK
    );
    // After the wait (on the server's clock), the key is served again.
    app.clock.advance(std::time::Duration::from_secs(wait));
    assert_eq!(
        app.get("/v1/policy", Some(&busy)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn token_exchanges_from_one_address_are_limited() {
    let app = spawn_app().await;
    // More at once than the burst (40): each would cost an argon2id hash.
    let attempts = (0..80).map(|n| {
        app.client
            .post(format!("{}/v1/auth/token", app.address))
            .json(&json!({"api_key": format!("ck_{n:016x}_{}", "0".repeat(64))}))
            .send()
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|response| response.unwrap().status())
        .collect();
    assert_eq!(statuses.len(), 80);
    let (limited, refused) = limited_and_refused(&statuses);
    assert!(limited >= 20, "{limited} of 80 were limited");
    assert!(refused >= 40, "the burst was served: {refused}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    // A request head that never ends (slowloris).
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: custodia\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let answer = until_closed(&mut stream, 20).await;
    assert!(
        answer.is_some(),
        "the server kept the connection open for 20 s"
    );
    let waited = started.elapsed().as_secs_f64();
    assert!((8.0..15.0).contains(&waited), "closed after {waited:.1} s");
    let text = answer.unwrap_or_default();
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
}

/// 80 token exchanges at once, each claiming another client address in `X-Forwarded-For`.
async fn exchanges_claiming_many_addresses(app: &crate::helpers::TestApp) -> usize {
    let attempts = (0..80).map(|n| {
        app.client
            .post(format!("{}/v1/auth/token", app.address))
            .header("X-Forwarded-For", format!("203.0.113.{n}"))
            .json(&json!({"api_key": format!("ck_{n:016x}_{}", "0".repeat(64))}))
            .send()
    });
    futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|response| response.as_ref().unwrap().status() == StatusCode::TOO_MANY_REQUESTS)
        .count()
}

#[tokio::test]
async fn forwarded_addresses_count_only_behind_a_trusted_proxy() {
    // Without a trusted proxy the header is ignored: all 80 come from 127.0.0.1.
    let app = spawn_app().await;
    assert!(exchanges_claiming_many_addresses(&app).await >= 20);
    // Behind a trusted proxy (the loopback peer), each client has its own budget.
    let proxied = crate::helpers::spawn_app_with(|options| {
        options.trusted_proxies = vec!["127.0.0.1/32".into()]
    })
    .await;
    assert_eq!(exchanges_claiming_many_addresses(&proxied).await, 0);
}

#[tokio::test]
async fn a_flood_of_bad_keys_neither_starves_reads_nor_grows_memory() {
    let deployment = crate::helpers::Deployment::new();
    let admin = deployment.api_key("admin");
    let served = deployment.serve().await;
    let token = served.token(&admin).await;
    let baseline = served.peak_memory();
    // 200 bad keys at once from three loopback addresses (within each address's burst as far
    // as it goes): each costs an argon2id hash of 19 MiB.
    let url = format!("{}/v1/auth/token", served.base);
    let flood = tokio::spawn(async move {
        let clients: Vec<reqwest::Client> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
            .iter()
            .map(|address| {
                reqwest::Client::builder()
                    .local_address(address.parse::<std::net::IpAddr>().unwrap())
                    .build()
                    .unwrap()
            })
            .collect();
        let attempts = (0..200).map(|n| {
            clients[n % 3]
                .post(&url)
                .json(&json!({"api_key": format!("ck_{n:016x}_{}", "0".repeat(64))}))
                .send()
        });
        let mut answers = Vec::new();
        for response in futures_util::future::join_all(attempts).await {
            let response = response.unwrap();
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            answers.push((status, body["code"].as_str().unwrap_or_default().to_owned()));
        }
        answers
    });
    // Authenticated reads go on while the keys are checked.
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let read = client
            .get(format!("{}/v1/keys", served.base))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), StatusCode::OK);
    }
    let answers = flood.await.unwrap();
    // Every bad key is refused: checked (401), over its address's rate (429), or, when more
    // checks wait than the queue holds, refused at once as `busy` (503). The last happens when
    // the 200 arrive spread over more than a second (a loaded machine): the per-address limit
    // refills 20 a second meanwhile, and more than the queue's 128 get past it.
    assert!(
        answers
            .iter()
            .all(|(status, code)| *status == StatusCode::UNAUTHORIZED
                || *status == StatusCode::TOO_MANY_REQUESTS
                || (*status == StatusCode::SERVICE_UNAVAILABLE && code == "busy")),
        "{answers:?}"
    );
    let statuses: Vec<StatusCode> = answers.iter().map(|(status, _)| *status).collect();
    assert!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count()
            >= 100,
        "the flood was checked, not only refused: {statuses:?}"
    );
    // Key checks run a few at a time, so the hashes never pile up in memory.
    let peak = served.peak_memory();
    assert!(
        peak < 256 * 1024 * 1024,
        "peak memory {} MiB (baseline {} MiB)",
        peak >> 20,
        baseline >> 20
    );
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_off_with_408() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(|options| options.body_timeout = Some(2)).await;
    let token = app.token_for("collector").await;
    let address = app.address.trim_start_matches("http://").to_owned();
    // Twenty batch requests that announce 1,000 bytes and send one a second.
    let slow = (0..20).map(|_| {
        let (address, token) = (address.clone(), token.clone());
        tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            let head = format!(
                "POST /v1/interactions/batch HTTP/1.1\r\nHost: custodia\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            let trickle = async {
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if stream.write_all(b" ").await.is_err() {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(4), trickle).await;
            let answer = until_closed(&mut stream, 20).await;
            (answer.is_some(), answer.unwrap_or_default())
        })
    });
    for outcome in futures_util::future::join_all(slow).await {
        let (closed, answer) = outcome.unwrap();
        assert!(closed, "the connection stayed open: {answer}");
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("body_timeout"), "{answer}");
    }
    // Nothing was stored, and the server still answers.
    assert_eq!(crate::helpers::count_rows(&app, "interactions").await, 0);
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
}

/// Reads what the server sends until it closes the connection; `None` if it is still open after
/// `seconds`.
async fn until_closed(stream: &mut tokio::net::TcpStream, seconds: u64) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(seconds),
        stream.read_to_end(&mut answer),
    )
    .await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&answer).into_owned())
}

/// Sends `GET /healthz` on an open connection and reads one answer: its status line and
/// whether the server said it closes the connection.
async fn healthz_on(stream: &mut tokio::net::TcpStream) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: custodia\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&answer).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |value| value.trim().parse().unwrap());
            if answer.len() >= end + 4 + length {
                let status = text.lines().next().unwrap_or_default().to_owned();
                return (status, text.contains("connection: close"));
            }
        }
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut chunk))
                .await
                .expect("an answer within 10 s")
                .unwrap();
        assert!(
            read > 0,
            "closed before answering: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&chunk[..read]);
    }
}

#[tokio::test]
async fn one_address_holds_at_most_its_cap_of_connections() {
    let app = spawn_app_with(|options| options.max_connections_per_address = Some(3)).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let (status, closing) = healthz_on(&mut stream).await;
        assert!(status.starts_with("http/1.1 200"), "{status}");
        assert!(!closing);
        held.push(stream);
    }
    // A fourth connection is answered 429 and closed.
    let mut fourth = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (status, closing) = healthz_on(&mut fourth).await;
    assert!(status.starts_with("http/1.1 429"), "{status}");
    assert!(closing, "the refused connection is closed");
    assert!(
        until_closed(&mut fourth, 10).await.is_some(),
        "the refused connection stayed open"
    );
    // The ones held still work.
    for stream in &mut held {
        assert!(healthz_on(stream).await.0.starts_with("http/1.1 200"));
    }
    // Once one closes, its slot is free again (the server notices the close asynchronously).
    drop(held.pop());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
        let (status, _) = healthz_on(&mut stream).await;
        if status.starts_with("http/1.1 200") {
            break;
        }
        assert!(status.starts_with("http/1.1 429"), "{status}");
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was never given back"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_refused_connection_body_is_a_problem_naming_the_cap() {
    let app = spawn_app_with(|options| options.max_connections_per_address = Some(1)).await;
    let address = app.address.trim_start_matches("http://").to_owned();
    let mut first = tokio::net::TcpStream::connect(&address).await.unwrap();
    assert!(healthz_on(&mut first).await.0.starts_with("http/1.1 200"));
    // reqwest opens its own connection: past the cap of one.
    let response = app.get("/healthz", None).await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_problem(
        response,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections",
    )
    .await;
    drop(first);
}
