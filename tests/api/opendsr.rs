//! OpenDSR 2.0 through the API, with requests built from the specification's own examples and a
//! controller's callback receiver on loopback: discovery and the certificate, signed answers,
//! idempotency, the mapping onto data-subject requests, status, cancellation, callbacks (signed,
//! retried, delivered after a crash by the next process), errors in the specification's shape,
//! and controllers' signatures against an allow-list.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::{Method, StatusCode};
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};
use serde_json::{json, Value};

use crate::helpers::{count_rows, sample_policy_dir, spawn_app_with, Deployment, TestApp};

/// An app whose callbacks may go to the test's receivers on loopback (and to names that do not
/// resolve here, like the specification's `examplecontroller.com`).
async fn spawn() -> TestApp {
    spawn_app_with(|options| options.opendsr_allow_private_callbacks = true).await
}

/// A callback the controller received.
#[derive(Debug, Clone)]
struct Callback {
    domain: Option<String>,
    signature: Option<String>,
    body: Vec<u8>,
}

/// A controller's callback endpoint on loopback; answers 500 to the first `fail_first` calls.
#[derive(Clone)]
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Callback>>>,
    /// How many callbacks arrived, for waiting on the next.
    arrivals: tokio::sync::watch::Receiver<usize>,
}

async fn start_receiver(fail_first: usize) -> Receiver {
    start_receiver_on(
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
        fail_first,
    )
    .await
}

async fn start_receiver_on(listener: std::net::TcpListener, fail_first: usize) -> Receiver {
    let received: Arc<Mutex<Vec<Callback>>> = Arc::default();
    let failures = Arc::new(AtomicUsize::new(fail_first));
    let url = format!(
        "http://127.0.0.1:{}/opendsr_callbacks",
        listener.local_addr().unwrap().port()
    );
    let (arrived, arrivals) = tokio::sync::watch::channel(0_usize);
    let arrived = Arc::new(arrived);
    let (store, failing) = (received.clone(), failures.clone());
    let server = HttpServer::new(move || {
        let (store, failing, arrived) = (store.clone(), failing.clone(), arrived.clone());
        App::new().route(
            "/opendsr_callbacks",
            web::post().to(move |request: HttpRequest, body: web::Bytes| {
                let (store, failing, arrived) = (store.clone(), failing.clone(), arrived.clone());
                async move {
                    if failing
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        return HttpResponse::InternalServerError().finish();
                    }
                    let header = |name: &str| {
                        request
                            .headers()
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_owned())
                    };
                    let count = {
                        let mut store = store.lock().unwrap();
                        store.push(Callback {
                            domain: header("X-OpenDSR-Processor-Domain"),
                            signature: header("X-OpenDSR-Signature"),
                            body: body.to_vec(),
                        });
                        store.len()
                    };
                    arrived.send_replace(count);
                    HttpResponse::Ok().finish()
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    Receiver {
        url,
        received,
        arrivals,
    }
}

impl Receiver {
    /// Waits (up to `limit`) until `n` callbacks arrived; returns them in arrival order.
    async fn wait_for(&self, n: usize, limit: Duration) -> Vec<Callback> {
        let mut arrivals = self.arrivals.clone();
        let _ = tokio::time::timeout(limit, arrivals.wait_for(|count| *count >= n)).await;
        self.received.lock().unwrap().clone()
    }
}

/// The specification's example request (section 7.2), for `subject_request_type` and an
/// identity, calling back to `callback`.
fn spec_request(id: &str, kind: &str, identity: Value, callback: &str) -> Value {
    json!({
        "subject_request_id": id,
        "subject_request_type": kind,
        "submitted_time": "2026-11-30T15:00:00Z",
        "subject_identities": [identity],
        "api_version": "2.0",
        "regulation": "gdpr",
        "status_callback_urls": [callback],
        "extensions": {
            "example-processor.com": {"foo-processor-custom-id": 123456, "property_id": "123456"},
            "example-other-processor.com": {"foo-other-processor-custom-id": 654321}
        }
    })
}

fn customer(id: &str) -> Value {
    json!({"identity_type": "controller_customer_id", "identity_value": id, "identity_format": "raw"})
}

/// The public key of the certificate the processor publishes.
async fn processor_key(app: &TestApp) -> Vec<u8> {
    let discovery: Value = app.get_json("/opendsr/v2/discovery", None).await;
    let url = discovery["processor_certificate"].as_str().unwrap();
    assert_eq!(url, format!("{}/opendsr/v2/certificate", app.address));
    let pem = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let (_, certificate) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
    certificate.public_key().subject_public_key.data.to_vec()
}

fn verifies(key: &[u8], signature: &str, body: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key)
        .verify(body, &STANDARD.decode(signature).unwrap())
        .is_ok()
}

/// Checks the answer's signature header over its exact bytes; returns the body.
async fn signed_json(response: reqwest::Response, key: &[u8]) -> Value {
    let domain = response.headers()["x-opendsr-processor-domain"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(domain, "localhost");
    let signature = response.headers()["x-opendsr-signature"]
        .to_str()
        .unwrap()
        .to_owned();
    let bytes = response.bytes().await.unwrap();
    assert!(verifies(key, &signature, &bytes), "the answer is signed");
    serde_json::from_slice(&bytes).unwrap()
}

/// The data-subject request queue (`/v1/requests…`) as the controller's key sees it.
async fn queue(app: &TestApp, token: &str, path: &str) -> Value {
    let response = app.get(path, Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Sends an OpenDSR request body and asserts it was received.
async fn assert_received(app: &TestApp, token: &str, body: &[u8]) {
    assert_eq!(
        post_raw(app, Some(token), body).await.status(),
        StatusCode::CREATED
    );
}

/// Executes a data-subject request as a compliance officer would; returns the request.
async fn execute(app: &TestApp, token: &str, request_id: &str) -> Value {
    let response = app
        .post_json(
            &format!("/v1/requests/{request_id}/execute"),
            Some(token),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Writes a subject through the collector's API.
async fn put_subject(app: &TestApp, token: &str, subject_id: &str, body: &Value) {
    let response = app
        .request(
            Method::PUT,
            &format!("/v1/subjects/{subject_id}"),
            Some(token),
            Some(body),
        )
        .await;
    assert!(response.status().is_success());
}

async fn post_raw(app: &TestApp, token: Option<&str>, body: &[u8]) -> reqwest::Response {
    app.post_raw(
        "/opendsr/v2/requests",
        token,
        "application/json",
        body.to_vec(),
    )
    .await
}

/// Asserts an error in the specification's shape; returns its `errors`.
async fn assert_spec_error(response: reqwest::Response, status: StatusCode, reason: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], status.as_u16(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    let errors = body["error"]["errors"].clone();
    assert!(
        errors
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["reason"] == reason && e["message"].is_string() && e["domain"].is_string()),
        "{body}"
    );
    errors
}

#[tokio::test]
async fn discovery_names_what_is_supported_and_is_signed() {
    let app = spawn().await;
    let key = processor_key(&app).await;

    let response = app.get("/opendsr/v2/discovery", None).await;

    assert_eq!(response.status(), StatusCode::OK);
    let discovery = signed_json(response, &key).await;
    assert_eq!(discovery["api_version"], "2.0");
    assert_eq!(
        discovery["supported_subject_request_types"],
        json!(["access", "portability", "erasure"])
    );
    let identities = discovery["supported_identities"].as_array().unwrap();
    for (kind, format) in [
        ("controller_customer_id", "raw"),
        ("email", "raw"),
        ("controller_customer_id", "sha256"),
        ("email", "sha256"),
    ] {
        assert!(identities
            .iter()
            .any(|i| i["identity_type"] == kind && i["identity_format"] == format));
    }
}

#[tokio::test]
async fn a_request_is_received_signed_idempotently_and_becomes_a_subject_request() {
    let app = spawn().await;
    let receiver = start_receiver(0).await;
    let key = processor_key(&app).await;
    let controller = app.token_for("compliance").await;
    let id = "a7551968-d5d6-44b2-9831-815ac9017798";
    let identity = json!({"identity_type": "email", "identity_value": "johndoe@example.com",
                          "identity_format": "raw"});
    let body = serde_json::to_vec(&spec_request(id, "erasure", identity, &receiver.url)).unwrap();

    let response = post_raw(&app, Some(&controller), &body).await;

    assert_eq!(response.status(), StatusCode::CREATED);
    let created = signed_json(response, &key).await;
    assert_eq!(created["subject_request_id"], id);
    assert_eq!(
        STANDARD
            .decode(created["encoded_request"].as_str().unwrap())
            .unwrap(),
        body
    );
    assert!(created["controller_id"].as_str().unwrap().len() > 4);
    // GDPR: a month from the person's request.
    assert!(created["expected_completion_time"]
        .as_str()
        .unwrap()
        .starts_with("2026-12-30T15:00:00"));
    // `processor_signature` is a receipt: the signature of the request as received.
    assert!(verifies(
        &key,
        created["processor_signature"].as_str().unwrap(),
        &body
    ));

    // The same request again: the same answer; the same id with another body: a conflict.
    let again = signed_json(post_raw(&app, Some(&controller), &body).await, &key).await;
    assert_eq!(again["received_time"], created["received_time"]);
    assert_eq!(count_rows(&app, "subject_requests").await, 1);
    let other = serde_json::to_vec(&spec_request(
        id,
        "access",
        customer("cust-1"),
        &receiver.url,
    ))
    .unwrap();
    assert_spec_error(
        post_raw(&app, Some(&controller), &other).await,
        StatusCode::CONFLICT,
        "subject_request_id_conflict",
    )
    .await;

    // It is a data-subject request like any other: in the queue, verified by the controller.
    let listed = queue(&app, &controller, "/v1/requests").await;
    let requests = listed["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0]["type"], "erasure");
    assert_eq!(requests[0]["status"], "verified");
    assert_eq!(
        requests[0]["subject"],
        json!({"email": "johndoe@example.com"})
    );

    // The status, signed; another controller cannot see it.
    let status = signed_json(
        app.get(&format!("/opendsr/v2/requests/{id}"), Some(&controller))
            .await,
        &key,
    )
    .await;
    assert_eq!(status["request_status"], "pending");
    assert_eq!(status["controller_id"], created["controller_id"]);
    let stranger = app.token_for("compliance").await;
    assert_spec_error(
        app.get(&format!("/opendsr/v2/requests/{id}"), Some(&stranger))
            .await,
        StatusCode::NOT_FOUND,
        "request_not_found",
    )
    .await;

    // The first callback announces `pending`, signed over its exact body.
    let callbacks = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(callbacks.len(), 1);
    let callback = &callbacks[0];
    assert_eq!(callback.domain.as_deref(), Some("localhost"));
    assert!(verifies(
        &key,
        callback.signature.as_deref().unwrap(),
        &callback.body
    ));
    let document: Value = serde_json::from_slice(&callback.body).unwrap();
    assert_eq!(document["request_status"], "pending");
    assert_eq!(document["status_callback_url"], receiver.url);
    assert_eq!(document["subject_request_id"], id);
    // No personal data travels in a callback.
    assert!(!String::from_utf8_lossy(&callback.body).contains("johndoe"));
}

#[tokio::test]
async fn execution_is_reported_by_status_and_retried_callbacks() {
    let app = spawn().await;
    // The controller's endpoint fails once: the callback is retried.
    let receiver = start_receiver(1).await;
    let key = processor_key(&app).await;
    let collector = app.token_for("collector").await;
    let controller = app.token_for("compliance").await;
    put_subject(
        &app,
        &collector,
        "cust-77",
        &json!({"traits": {"country": "DE"}}),
    )
    .await;
    let id = "0b7e5c1a-3f2d-4c8e-9a6b-1d2e3f4a5b6c";
    let body = serde_json::to_vec(&spec_request(
        id,
        "access",
        customer("cust-77"),
        &receiver.url,
    ))
    .unwrap();
    assert_received(&app, &controller, &body).await;
    let listed = queue(&app, &controller, "/v1/requests").await;
    let request_id = listed["requests"][0]["id"].as_str().unwrap().to_owned();

    // A compliance officer (or the console) executes it.
    execute(&app, &controller, &request_id).await;

    let status = signed_json(
        app.get(&format!("/opendsr/v2/requests/{id}"), Some(&controller))
            .await,
        &key,
    )
    .await;
    assert_eq!(status["request_status"], "completed");
    assert_eq!(status["results_count"], 1);
    let results = status["results_url"].as_str().unwrap();
    assert_eq!(
        results,
        format!("{}/v1/requests/{request_id}/export", app.address)
    );
    // The results are the person's export.
    let export: Value = app
        .client
        .get(results)
        .bearer_auth(&controller)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(export["subject"]["subject_id"], "cust-77");

    // Every due callback is tried (the first attempt at `pending` fails and waits its
    // backoff); once the server's clock is past that backoff, it is tried again.
    app.run_job("opendsr_callbacks").await;
    app.clock.advance(Duration::from_secs(10));
    app.run_job("opendsr_callbacks").await;
    // pending (failed once, retried), in_progress, completed: each delivered.
    let callbacks = receiver.wait_for(3, Duration::from_secs(20)).await;
    let mut statuses: Vec<String> = callbacks
        .iter()
        .map(|c| {
            assert!(verifies(&key, c.signature.as_deref().unwrap(), &c.body));
            let document: Value = serde_json::from_slice(&c.body).unwrap();
            document["request_status"].as_str().unwrap().to_owned()
        })
        .collect();
    statuses.sort();
    assert_eq!(statuses, ["completed", "in_progress", "pending"]);
    let last: Value = callbacks
        .iter()
        .map(|c| serde_json::from_slice::<Value>(&c.body).unwrap())
        .find(|d| d["request_status"] == "completed")
        .unwrap();
    assert_eq!(last["results_url"], results);
}

#[tokio::test]
async fn a_pending_request_is_cancelled_once() {
    let app = spawn().await;
    let receiver = start_receiver(0).await;
    let key = processor_key(&app).await;
    let controller = app.token_for("compliance").await;
    let id = "5f0c6f3e-2b7a-4d1c-8e9f-0a1b2c3d4e5f";
    let body = serde_json::to_vec(&spec_request(
        id,
        "erasure",
        customer("cust-9"),
        &receiver.url,
    ))
    .unwrap();
    assert_received(&app, &controller, &body).await;

    let response = app
        .delete(&format!("/opendsr/v2/requests/{id}"), Some(&controller))
        .await;

    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let cancelled = signed_json(response, &key).await;
    assert_eq!(cancelled["subject_request_id"], id);
    assert!(cancelled["received_time"].is_string());
    let status = signed_json(
        app.get(&format!("/opendsr/v2/requests/{id}"), Some(&controller))
            .await,
        &key,
    )
    .await;
    assert_eq!(status["request_status"], "cancelled");
    let listed = queue(&app, &controller, "/v1/requests?status=rejected").await;
    assert_eq!(listed["requests"].as_array().unwrap().len(), 1);
    assert_spec_error(
        app.delete(&format!("/opendsr/v2/requests/{id}"), Some(&controller))
            .await,
        StatusCode::CONFLICT,
        "not_pending",
    )
    .await;
    let callbacks = receiver.wait_for(2, Duration::from_secs(10)).await;
    let last: Value = serde_json::from_slice(&callbacks.last().unwrap().body).unwrap();
    assert_eq!(last["request_status"], "cancelled");
}

#[tokio::test]
async fn errors_have_the_specifications_shape_and_store_nothing() {
    let app = spawn().await;
    let controller = app.token_for("compliance").await;
    let marketer = app.token_for("marketer").await;
    let good = spec_request(
        "a7551968-d5d6-44b2-9831-815ac9017798",
        "erasure",
        customer("cust-1"),
        "https://examplecontroller.com/opendsr_callbacks",
    );

    let mut bad = good.clone();
    bad["subject_request_id"] = json!("not-a-uuid");
    bad["submitted_time"] = json!("yesterday");
    bad["subject_request_type"] = json!("rectification");
    let errors = assert_spec_error(
        post_raw(&app, Some(&controller), &serde_json::to_vec(&bad).unwrap()).await,
        StatusCode::BAD_REQUEST,
        "invalid_subject_request_id",
    )
    .await;
    assert_eq!(errors.as_array().unwrap().len(), 3);
    let mut missing = good.clone();
    missing
        .as_object_mut()
        .unwrap()
        .remove("subject_identities");
    let mut unknown = good.clone();
    unknown["colour"] = json!("blue");
    for (body, reason) in [
        (serde_json::to_vec(&missing).unwrap(), "missing_identity"),
        (serde_json::to_vec(&unknown).unwrap(), "invalid_body"),
        (b"{not json".to_vec(), "invalid_body"),
    ] {
        assert_spec_error(
            post_raw(&app, Some(&controller), &body).await,
            StatusCode::BAD_REQUEST,
            reason,
        )
        .await;
    }
    let good_bytes = serde_json::to_vec(&good).unwrap();
    assert_spec_error(
        post_raw(&app, None, &good_bytes).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    )
    .await;
    assert_spec_error(
        post_raw(&app, Some(&marketer), &good_bytes).await,
        StatusCode::FORBIDDEN,
        "action_not_permitted",
    )
    .await;
    assert_spec_error(
        app.get(
            "/opendsr/v2/requests/a7551968-d5d6-44b2-9831-815ac9017798",
            Some(&controller),
        )
        .await,
        StatusCode::NOT_FOUND,
        "request_not_found",
    )
    .await;
    assert_spec_error(
        app.get("/opendsr/v2/nothing-here", None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert_eq!(count_rows(&app, "subject_requests").await, 0);
    // Routes outside /opendsr keep RFC 9457 problems.
    let response = app.get("/v1/requests", None).await;
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn controllers_must_sign_when_an_allow_list_is_configured() {
    // The controller's key and certificate, and the processor's allow-list holding it.
    let controller_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["controller.example".to_owned()])
        .unwrap()
        .self_signed(&controller_key)
        .unwrap();
    let allowed = tempfile::tempdir().unwrap();
    std::fs::write(
        allowed.path().join("controller.example.pem"),
        certificate.pem(),
    )
    .unwrap();
    let dir = allowed.path().to_owned();
    let app = spawn_app_with(|options| {
        options.opendsr_controllers = Some(dir);
        options.opendsr_allow_private_callbacks = true;
    })
    .await;
    let token = app.token_for("compliance").await;
    let body = serde_json::to_vec(&spec_request(
        "6a1e2f3b-4c5d-4e6f-8a7b-9c0d1e2f3a4b",
        "access",
        customer("cust-5"),
        "https://examplecontroller.com/opendsr_callbacks",
    ))
    .unwrap();
    let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &controller_key.serialize_der(),
        &ring::rand::SystemRandom::new(),
    )
    .unwrap();
    let sign = |bytes: &[u8]| {
        STANDARD.encode(
            signer
                .sign(&ring::rand::SystemRandom::new(), bytes)
                .unwrap()
                .as_ref(),
        )
    };
    let send = |domain: &'static str, signature: Option<String>, bytes: Vec<u8>| {
        let mut request = app
            .client
            .post(format!("{}/opendsr/v2/requests", app.address))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .header("X-OpenDSR-Controller-Domain", domain)
            .body(bytes);
        if let Some(signature) = signature {
            request = request.header("X-OpenDSR-Signature", signature);
        }
        request.send()
    };

    // Unsigned, signed over another body, or by an unknown domain: refused.
    assert_spec_error(
        send("controller.example", None, body.clone())
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "invalid_controller_signature",
    )
    .await;
    assert_spec_error(
        send("controller.example", Some(sign(b"{}")), body.clone())
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "invalid_controller_signature",
    )
    .await;
    assert_spec_error(
        send("other.example", Some(sign(&body)), body.clone())
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
        "invalid_controller_signature",
    )
    .await;
    assert_eq!(count_rows(&app, "subject_requests").await, 0);

    // Signed by the allowed controller: received.
    let response = send("controller.example", Some(sign(&body)), body.clone())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(count_rows(&app, "subject_requests").await, 1);
}

#[tokio::test]
async fn callbacks_survive_a_crash_and_are_sent_by_the_next_process() {
    let deployment = Deployment::new().with_env("CUSTODIA_OPENDSR_ALLOW_PRIVATE_CALLBACKS", "true");
    let mut first = deployment.serve().await;
    let token = first.token(&deployment.api_key("compliance")).await;
    let client = reqwest::Client::new();
    // The controller's endpoint is down while the first process runs.
    let receiver_port = crate::helpers::ReservedPort::new();
    let callback = format!(
        "http://127.0.0.1:{}/opendsr_callbacks",
        receiver_port.port()
    );
    let id = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
    let response = client
        .post(format!("{}/opendsr/v2/requests", first.base))
        .bearer_auth(&token)
        .json(&spec_request(id, "erasure", customer("cust-3"), &callback))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // Wait for the first failed attempt, then kill the process (SIGKILL: no shutdown at all).
    let settings = custodia::config::Settings::resolve(&custodia::config::Options {
        data_dir: Some(deployment.data_dir.clone()),
        database_url: Some(deployment.database.url.clone()),
        policy_dir: Some(sample_policy_dir()),
        ..Default::default()
    })
    .unwrap();
    let db = custodia::startup::open_database(&settings).unwrap();
    let attempts = || {
        let db = db.clone();
        let id = id.to_owned();
        async move {
            tokio::task::spawn_blocking(move || {
                let mut conn = db.connection().unwrap();
                custodia::store::opendsr::callbacks_of(&mut conn, &id).unwrap()
            })
            .await
            .unwrap()
        }
    };
    for _ in 0..100 {
        if attempts()
            .await
            .first()
            .is_some_and(|row| row.attempts >= 1)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued = attempts().await;
    assert_eq!(queued.len(), 1);
    assert!(queued[0].attempts >= 1 && queued[0].delivered_at.is_none());
    first.kill();

    // The endpoint comes back, and so does the service, as another process.
    let receiver = start_receiver_on(receiver_port.listen(), 0).await;
    let mut second = deployment.serve().await;
    let callbacks = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(callbacks.len(), 1, "delivered once the endpoint was back");
    let document: Value = serde_json::from_slice(&callbacks[0].body).unwrap();
    assert_eq!(document["request_status"], "pending");
    assert_eq!(document["subject_request_id"], id);
    // The sender marks the callback delivered once the answer is in: wait for that mark
    // before stopping the process (the receiver has the body a moment before).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let delivered = loop {
        let seen = attempts().await;
        if seen[0].delivered_at.is_some() || std::time::Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    second.kill();
    assert!(delivered[0].delivered_at.is_some());
    assert!(delivered[0].attempts >= 2);
}

fn sha256_hex(text: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()))
}

#[tokio::test]
async fn sha256_identities_find_the_person_without_sending_the_identifier() {
    let app = spawn().await;
    let collector = app.token_for("collector").await;
    let controller = app.token_for("compliance").await;
    put_subject(
        &app,
        &collector,
        "cust-88",
        &json!({"identifiers": {"email": "Jane.Doe@Example.org"}, "traits": {"country": "DE"}}),
    )
    .await;
    // The address is hashed lowercased, as it is normalized; the subject id as it is.
    let by_email = json!({"identity_type": "email", "identity_format": "sha256",
                          "identity_value": sha256_hex("jane.doe@example.org").to_uppercase()});
    let by_id = json!({"identity_type": "controller_customer_id", "identity_format": "sha256",
                       "identity_value": sha256_hex("cust-88")});
    let callback = "https://examplecontroller.com/opendsr_callbacks";
    let access = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f";
    let erasure = "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a";
    for (id, kind, identity) in [(access, "access", by_email), (erasure, "erasure", by_id)] {
        let body = serde_json::to_vec(&spec_request(id, kind, identity, callback)).unwrap();
        assert_received(&app, &controller, &body).await;
    }
    let listed = queue(&app, &controller, "/v1/requests").await;
    let requests = listed["requests"].as_array().unwrap().clone();
    let access_request = requests.iter().find(|r| r["type"] == "access").unwrap();
    assert_eq!(
        access_request["subject"],
        json!({"email_sha256": sha256_hex("jane.doe@example.org")})
    );
    // Executed in order: the access request finds the person by the address's hash, the
    // erasure by the id's hash.
    for kind in ["access", "erasure"] {
        let request = requests.iter().find(|r| r["type"] == kind).unwrap();
        let executed = execute(&app, &controller, request["id"].as_str().unwrap()).await;
        assert_eq!(executed["result"]["subject_found"], true, "{executed}");
    }
    let status: Value = app
        .get_json(
            &format!("/opendsr/v2/requests/{erasure}"),
            Some(&controller),
        )
        .await;
    assert_eq!(status["request_status"], "completed");
    assert!(status["results_count"].as_i64().unwrap() > 0);
    assert_eq!(count_rows(&app, "subjects").await, 0);
    // The erasure forgot the identity of every request naming the person, hashes included.
    let listed = queue(&app, &controller, "/v1/requests").await;
    for request in listed["requests"].as_array().unwrap() {
        assert_eq!(request["subject"], Value::Null, "{request}");
    }
    assert_eq!(count_rows(&app, "subject_identifiers").await, 0);
}

#[tokio::test]
async fn subjects_from_before_the_hashed_indexes_are_backfilled() {
    let app = spawn().await;
    let collector = app.token_for("collector").await;
    for (id, email) in [
        ("cust-old-1", Some("old.one@example.org")),
        ("cust-old-2", None),
    ] {
        let mut body = json!({"traits": {"country": "DE"}});
        if let Some(email) = email {
            body["identifiers"] = json!({"email": email});
        }
        put_subject(&app, &collector, id, &body).await;
    }
    // As a database written before this version: no hashed indexes.
    let database = app.database();
    let vault_settings = app.settings.clone();
    let (before, done, after) = tokio::task::spawn_blocking(move || {
        use custodia::store::schema::subject_identifiers;
        use diesel::prelude::*;
        let mut conn = database.connection().unwrap();
        let hashed = ["email_sha256", "subject_id_sha256"];
        diesel::delete(subject_identifiers::table.filter(subject_identifiers::kind.eq_any(hashed)))
            .execute(&mut *conn)
            .unwrap();
        let count = |conn: &mut custodia::store::DbConnection| -> i64 {
            subject_identifiers::table
                .filter(subject_identifiers::kind.eq_any(hashed))
                .count()
                .get_result(conn)
                .unwrap()
        };
        let before = count(&mut conn);
        let vault =
            custodia::vault::Vault::open(&mut conn, &vault_settings.master_key_file).unwrap();
        let mut done = 0;
        loop {
            let n = custodia::subjects::backfill_hashed_indexes(&mut conn, &vault, 1).unwrap();
            if n == 0 {
                break;
            }
            done += n;
        }
        (before, done, count(&mut conn))
    })
    .await
    .unwrap();
    assert_eq!((before, done, after), (0, 2, 3));

    // A controller finds the person by the address's hash.
    let controller = app.token_for("compliance").await;
    let identity = json!({"identity_type": "email", "identity_format": "sha256",
                          "identity_value": sha256_hex("old.one@example.org")});
    let body = serde_json::to_vec(&spec_request(
        "3e4f5a6b-7c8d-4e9f-8a0b-1c2d3e4f5a6b",
        "access",
        identity,
        "https://examplecontroller.com/opendsr_callbacks",
    ))
    .unwrap();
    assert_received(&app, &controller, &body).await;
    let listed = queue(&app, &controller, "/v1/requests").await;
    let id = listed["requests"][0]["id"].as_str().unwrap().to_owned();
    let executed = execute(&app, &controller, &id).await;
    assert_eq!(executed["result"]["subject_found"], true, "{executed}");
}

#[tokio::test]
async fn callbacks_go_only_to_https_on_public_addresses() {
    let app =
        spawn_app_with(|options| options.public_url = Some("https://cdp.example.com".into())).await;
    let token = app.token_for("compliance").await;
    let refused = [
        "http://controller.example.com/cb",
        "https://127.0.0.1/cb",
        "https://localhost/cb",
        "https://10.0.0.7/cb",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/cb",
        "https://[::ffff:192.168.1.1]/cb",
        "https://callbacks.invalid/cb",
    ];
    for (n, url) in refused.iter().enumerate() {
        let id = format!("00000000-0000-4000-8000-{n:012}");
        let response = app
            .post_json(
                "/opendsr/v2/requests",
                Some(&token),
                &spec_request(&id, "erasure", customer("cust-1"), url),
            )
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{url}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["errors"][0]["reason"], "callback_url_not_allowed",
            "{url}: {body}"
        );
    }
    assert_eq!(count_rows(&app, "subject_requests").await, 0);
    // A public https address is accepted (TEST-NET-1: never routed, so nothing is delivered).
    let response = app
        .post_json(
            "/opendsr/v2/requests",
            Some(&token),
            &spec_request(
                "11111111-0000-4000-8000-000000000001",
                "erasure",
                customer("cust-1"),
                "https://192.0.2.10/cb",
            ),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn links_come_from_the_public_url_never_from_request_headers() {
    let app = spawn_app_with(|options| {
        options.public_url = Some("https://cdp.example.com/".into());
        options.opendsr_allow_private_callbacks = true;
    })
    .await;
    let forged = |request: reqwest::RequestBuilder| {
        request
            .header("Host", "evil.example")
            .header("X-Forwarded-Host", "evil.example")
            .header("X-Forwarded-Proto", "http")
            .header("Forwarded", "host=evil.example;proto=http")
    };
    let discovery: Value = forged(
        app.client
            .get(format!("{}/opendsr/v2/discovery", app.address)),
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        discovery["processor_certificate"],
        "https://cdp.example.com/opendsr/v2/certificate"
    );
    let token = app.token_for("compliance").await;
    let collector = app.token_for("collector").await;
    let put = app
        .request(
            reqwest::Method::PUT,
            "/v1/subjects/cust-1",
            Some(&collector),
            Some(&json!({"traits": {"country": "DE"}})),
        )
        .await;
    assert!(put.status().is_success());
    let id = "22222222-0000-4000-8000-000000000002";
    let response = forged(
        app.client
            .post(format!("{}/opendsr/v2/requests", app.address)),
    )
    .bearer_auth(&token)
    .json(&spec_request(
        id,
        "access",
        customer("cust-1"),
        "https://192.0.2.10/cb",
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    // Complete it, then read the status: the results link is the configured one.
    let page: Value = app.get_json("/v1/requests", Some(&token)).await;
    let request_id = page["requests"][0]["id"].as_str().unwrap().to_owned();
    let executed = app
        .post_json(
            &format!("/v1/requests/{request_id}/execute"),
            Some(&token),
            &json!({}),
        )
        .await;
    assert_eq!(executed.status(), StatusCode::OK);
    let status: Value = forged(
        app.client
            .get(format!("{}/opendsr/v2/requests/{id}", app.address)),
    )
    .bearer_auth(&token)
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        status["results_url"],
        format!("https://cdp.example.com/v1/requests/{request_id}/export")
    );
    // Nothing stored names the forged host.
    let dump = crate::helpers::database_dump(&app).await;
    assert!(!crate::helpers::contains_in_any_encoding(
        &dump,
        "evil.example"
    ));
}

#[tokio::test]
async fn a_controllers_key_follows_only_the_requests_it_sent() {
    let app = spawn().await;
    let compliance = app.token_for("compliance").await;
    let braze = app.token_for("opendsr_controller").await;
    let amplitude = app.token_for("opendsr_controller").await;
    let callback = "https://192.0.2.10/cb";
    let sent = |token: String, id: &'static str, subject: &'static str| {
        let app = &app;
        async move {
            let response = app
                .post_json(
                    "/opendsr/v2/requests",
                    Some(&token),
                    &spec_request(id, "access", customer(subject), callback),
                )
                .await;
            assert_eq!(response.status(), StatusCode::CREATED);
        }
    };
    sent(
        braze.clone(),
        "aaaaaaaa-0000-4000-8000-000000000001",
        "braze-person",
    )
    .await;
    sent(
        amplitude.clone(),
        "bbbbbbbb-0000-4000-8000-000000000002",
        "amplitude-person",
    )
    .await;
    // Each controller's queue holds its own request, the identity masked; compliance sees both.
    let braze_queue = queue(&app, &braze, "/v1/requests").await;
    let requests = braze_queue["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{braze_queue}");
    assert_eq!(requests[0]["subject"], json!({"subject_id": "b…n"}));
    assert!(!braze_queue.to_string().contains("amplitude"));
    assert_eq!(
        queue(&app, &compliance, "/v1/requests").await["requests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Another controller's request is not found, over OpenDSR or the request API.
    let theirs = queue(&app, &amplitude, "/v1/requests").await["requests"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = app
        .get(&format!("/v1/requests/{theirs}"), Some(&braze))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let response = app
        .get(
            "/opendsr/v2/requests/bbbbbbbb-0000-4000-8000-000000000002",
            Some(&braze),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
