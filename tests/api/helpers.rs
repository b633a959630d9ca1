//! `spawn_app()` and typed request helpers.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Once;

use custodia::config::{Options, Settings};
use custodia::policy::load_dir;
use custodia::startup::{open_database, Application};
use custodia::store::Database;
use diesel::connection::SimpleConnection;
use diesel::Connection;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The environment variable naming a PostgreSQL server to test against (e.g.
/// `postgres://postgres@127.0.0.1:5432/test`); unset means SQLite.
pub const TEST_DATABASE_ENV: &str = "CUSTODIA_TEST_DATABASE_URL";

/// The repository's sample policy directory.
pub fn sample_policy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")
}

/// The `custodia` binary built for this test run.
pub fn custodia_binary() -> &'static str {
    env!("CARGO_BIN_EXE_custodia")
}

/// A `custodia` command with no `CUSTODIA_*` variables inherited from the caller's shell.
pub fn custodia_command() -> std::process::Command {
    let mut command = std::process::Command::new(custodia_binary());
    for (name, _) in std::env::vars() {
        if name.starts_with("CUSTODIA_") || name == "RUST_LOG" {
            command.env_remove(name);
        }
    }
    command
}

fn init_test_logging() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            custodia::telemetry::init(custodia::config::LogFormat::Human);
        }
    });
}

/// A database of its own for one test: a temporary SQLite file, or a PostgreSQL schema that is
/// dropped when the value is dropped.
pub struct TestDatabase {
    /// The URL to give Custodia.
    pub url: String,
    postgres: Option<(String, String)>,
    _dir: TempDir,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((server_url, schema)) = &self.postgres {
            if let Ok(mut conn) = diesel::PgConnection::establish(server_url) {
                let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// A fresh, empty database on the backend under test.
pub fn fresh_database() -> TestDatabase {
    let dir = tempfile::tempdir().expect("a temporary directory");
    match std::env::var(TEST_DATABASE_ENV) {
        Ok(server_url) if !server_url.trim().is_empty() => {
            assert!(
                server_url.starts_with("postgres://") || server_url.starts_with("postgresql://"),
                "{TEST_DATABASE_ENV} must be a postgres:// URL"
            );
            let schema = format!("test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = diesel::PgConnection::establish(&server_url).unwrap_or_else(|error| {
                panic!("{TEST_DATABASE_ENV} is set but PostgreSQL is unreachable: {error}")
            });
            conn.batch_execute(&format!("CREATE SCHEMA {schema}"))
                .expect("create a test schema");
            let separator = if server_url.contains('?') { '&' } else { '?' };
            TestDatabase {
                url: format!("{server_url}{separator}options=-csearch_path%3D{schema}"),
                postgres: Some((server_url, schema)),
                _dir: dir,
            }
        }
        _ => TestDatabase {
            url: format!("sqlite://{}", dir.path().join("custodia.db").display()),
            postgres: None,
            _dir: dir,
        },
    }
}

/// One running application with its own data directory and database.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The settings it was started with.
    pub settings: Settings,
    /// An HTTP client that does not follow redirects.
    pub client: reqwest::Client,
    /// The temporary directory holding the data directory (deleted on drop).
    _dir: TempDir,
    database: TestDatabase,
    /// The database and policy as the CLI opens them, opened once for the test's helpers.
    opened: std::sync::OnceLock<(Database, std::sync::Arc<custodia::policy::Policy>)>,
    /// The server's periodic jobs: a test runs one when it needs it instead of waiting.
    jobs: custodia::jobs::Jobs,
    /// The server's clock: a test moves it forward instead of sleeping.
    pub clock: custodia::clock::Clock,
}

/// Whether this run tests PostgreSQL.
pub fn testing_postgres() -> bool {
    std::env::var(TEST_DATABASE_ENV).is_ok_and(|url| !url.trim().is_empty())
}

/// Starts an application on a free port with a fresh database and the sample policy.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], letting the test adjust the options first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Options)) -> TestApp {
    init_test_logging();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let database = fresh_database();
    let mut options = Options {
        bind: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data")),
        database_url: Some(database.url.clone()),
        policy_dir: Some(sample_policy_dir()),
        ..Options::default()
    };
    adjust(&mut options);
    let settings = Settings::resolve(&options).expect("valid test settings");
    let clock = custodia::clock::Clock::adjustable();
    let application =
        Application::build_with_clock(&settings, clock.clone()).expect("the application starts");
    let address = format!("http://127.0.0.1:{}", application.port());
    let jobs = application.jobs();
    tokio::spawn(application.run_until_stopped());
    TestApp {
        address,
        settings,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client"),
        _dir: dir,
        database,
        opened: std::sync::OnceLock::new(),
        jobs,
        clock,
    }
}

impl TestApp {
    /// Runs the server's periodic job `name` now and waits for it to end.
    pub async fn run_job(&self, name: &str) {
        assert!(
            self.jobs.run_now(name).await,
            "the server runs no job called {name}"
        );
    }

    /// Sends a request with an optional bearer token and JSON body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Response {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.expect("the request is answered")
    }

    /// GET with an optional token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::GET, path, token, None).await
    }

    /// GET, asserting a 2xx answer, and its JSON body.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> serde_json::Value {
        let response = self.get(path, token).await;
        assert!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        response.json().await.expect("a JSON body")
    }

    /// POST a JSON body with an optional token.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> Response {
        self.request(Method::POST, path, token, Some(body)).await
    }

    /// POST a raw body with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        let mut request = self
            .client
            .post(format!("{}{}", self.address, path))
            .header("content-type", content_type)
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the request is answered")
    }

    /// DELETE with an optional token.
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Response {
        self.request(Method::DELETE, path, token, None).await
    }

    /// The application's database, opened as the CLI would (once per test application).
    pub fn database(&self) -> Database {
        self.opened().0.clone()
    }

    fn opened(&self) -> &(Database, std::sync::Arc<custodia::policy::Policy>) {
        self.opened.get_or_init(|| {
            let database = open_database(&self.settings).expect("the test database opens");
            let policy = load_dir(&self.settings.policy_dir).expect("the sample policy loads");
            (database, std::sync::Arc::new(policy))
        })
    }

    /// Creates an API key directly in the database (as `custodia keys create` does).
    pub async fn create_api_key(&self, role: &str) -> String {
        let (database, policy) = self.opened().clone();
        let role = role.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut conn = database.connection().expect("a connection");
            custodia::auth::create_key(
                &mut conn,
                &policy,
                &format!("test {role}"),
                &role,
                &custodia::audit::Actor::operator(),
            )
            .expect("the key is created")
            .api_key
            .to_string()
        })
        .await
        .expect("key creation finishes")
    }

    /// Exchanges an API key for a token; panics unless it succeeds.
    pub async fn token_for_key(&self, api_key: &str) -> String {
        let response = self
            .post_json("/v1/auth/token", None, &json!({ "api_key": api_key }))
            .await;
        assert_eq!(response.status(), StatusCode::OK, "token exchange succeeds");
        let body: Value = response.json().await.expect("a JSON body");
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// A fresh key of `role`, exchanged for a token.
    pub async fn token_for(&self, role: &str) -> String {
        let api_key = self.create_api_key(role).await;
        self.token_for_key(&api_key).await
    }

    /// Runs the `custodia` binary against this application's data directory and database.
    pub fn run_cli(&self, args: &[&str]) -> Output {
        self.cli_command(args)
            .output()
            .expect("the custodia binary runs")
    }

    /// A `custodia` command aimed at this application's data directory and database.
    pub fn cli_command(&self, args: &[&str]) -> std::process::Command {
        let mut command = custodia_command();
        command
            .args(args)
            .env("CUSTODIA_DATA_DIR", &self.settings.data_dir)
            .env("CUSTODIA_POLICY_DIR", &self.settings.policy_dir)
            .env("CUSTODIA_MASTER_KEY_FILE", &self.settings.master_key_file)
            .env("CUSTODIA_DATABASE_URL", &self.database.url);
        command
    }
}

/// Asserts a problem+json response with this status and code; returns its body.
pub async fn assert_problem(response: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status, "status");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.expect("a JSON problem body");
    assert_eq!(
        content_type, "application/problem+json",
        "problem content type for {body}"
    );
    assert_eq!(body["code"], code, "problem code in {body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], format!("urn:custodia:problem:{code}"));
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "a detail in {body}"
    );
    body
}

/// The number of API keys stored.
pub async fn stored_key_count(app: &TestApp) -> usize {
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().expect("a connection");
        custodia::auth::list_keys(&mut conn)
            .expect("keys list")
            .len()
    })
    .await
    .expect("count finishes")
}

/// The answers to a flood of bad API keys, each either limited (429) or refused (401): how many
/// of each.
pub fn limited_and_refused(statuses: &[StatusCode]) -> (usize, usize) {
    let count = |wanted: StatusCode| statuses.iter().filter(|s| **s == wanted).count();
    let (limited, refused) = (
        count(StatusCode::TOO_MANY_REQUESTS),
        count(StatusCode::UNAUTHORIZED),
    );
    assert_eq!(limited + refused, statuses.len(), "{statuses:?}");
    (limited, refused)
}

/// A policy directory with the sample purposes, fields, notices, tracking and standards tables, and the
/// sample roles plus `extra`.
pub fn policy_with_extra_roles(extra: &str) -> TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for name in [
        "purposes.toml",
        "fields.toml",
        "notices.toml",
        "tracking.toml",
        "standards.toml",
    ] {
        std::fs::copy(sample_policy_dir().join(name), dir.path().join(name)).unwrap();
    }
    let roles = std::fs::read_to_string(sample_policy_dir().join("roles.toml")).unwrap();
    std::fs::write(dir.path().join("roles.toml"), format!("{roles}\n{extra}")).unwrap();
    dir
}

/// Counts the rows of a table.
pub async fn count_rows(app: &TestApp, table: &'static str) -> i64 {
    use custodia::store::schema::*;
    use diesel::prelude::*;
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().expect("a connection");
        let conn = &mut *conn;
        match table {
            "subjects" => subjects::table.count().get_result(conn),
            "interactions" => interactions::table.count().get_result(conn),
            "interaction_purposes" => interaction_purposes::table.count().get_result(conn),
            "data_keys" => data_keys::table.count().get_result(conn),
            "subject_traits" => subject_traits::table.count().get_result(conn),
            "subject_identifiers" => subject_identifiers::table.count().get_result(conn),
            "subject_requests" => subject_requests::table.count().get_result(conn),
            "segments" => segments::table.count().get_result(conn),
            "consent_records" => consent_records::table.count().get_result(conn),
            "subject_aliases" => subject_aliases::table.count().get_result(conn),
            "subject_members" => subject_members::table.count().get_result(conn),
            "held_interactions" => held_interactions::table.count().get_result(conn),
            "segment_answers" => segment_answers::table.count().get_result(conn),
            "insight_releases" => insight_releases::table.count().get_result(conn),
            "insight_budget" => insight_budget::table.count().get_result(conn),
            other => panic!("no count for table {other}"),
        }
        .expect("count rows")
    })
    .await
    .unwrap()
}

/// The value of the metric line that starts with `series` (name and labels, e.g.
/// `custodia_population_counts_total{from="index"}`) in `/metrics` at `base`; 0 when absent.
pub async fn metric_at(base: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics are answered")
        .text()
        .await
        .expect("a metrics body");
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0.0, |value| value.trim().parse().expect("a number"))
}

/// Population counts the server at `base` answered from its population index and from the
/// database.
pub async fn population_counts(base: &str) -> (f64, f64) {
    (
        metric_at(base, "custodia_population_counts_total{from=\"index\"}").await,
        metric_at(base, "custodia_population_counts_total{from=\"database\"}").await,
    )
}

/// Everything the database holds, as bytes to search: the SQLite files, or on PostgreSQL every
/// row of every table in the test schema as text (binary columns as hex).
pub async fn database_dump(app: &TestApp) -> Vec<u8> {
    use diesel::prelude::*;
    if let custodia::store::DatabaseUrl::Sqlite(path) = &app.settings.database_url {
        // Read by another process: closing a descriptor of the database file in this one would
        // drop every POSIX lock the server's connections hold on it (sqlite.org/howtocorrupt.html
        // §2.2), and a command-line run that then believed itself the last connection would
        // checkpoint and remove the WAL under the server.
        let mut bytes = Vec::new();
        for suffix in ["", "-wal", "-journal"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            if !std::path::Path::new(&file).exists() {
                continue;
            }
            let read = std::process::Command::new("cat")
                .arg(&file)
                .output()
                .expect("cat runs");
            bytes.extend(read.stdout);
        }
        return bytes;
    }
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        text: String,
    }
    let database = app.database();
    tokio::task::spawn_blocking(move || {
        let mut conn = database.connection().expect("a connection");
        let custodia::store::DbConnection::Postgresql(pg) = &mut *conn else {
            panic!("expected PostgreSQL");
        };
        let tables: Vec<Row> = diesel::sql_query(
            "SELECT table_name::text AS text FROM information_schema.tables \
             WHERE table_schema = current_schema()",
        )
        .load(pg)
        .expect("list tables");
        let mut bytes = Vec::new();
        for table in tables {
            let rows: Vec<Row> = diesel::sql_query(format!(
                "SELECT CAST(t AS TEXT) AS text FROM {} t",
                table.text
            ))
            .load(pg)
            .expect("dump a table");
            for row in rows {
                bytes.extend(row.text.into_bytes());
                bytes.push(b'\n');
            }
        }
        bytes
    })
    .await
    .unwrap()
}

/// Whether `needle` occurs in `haystack` as bytes, hex or base64.
pub fn contains_in_any_encoding(haystack: &[u8], needle: &str) -> bool {
    use base64::Engine;
    let forms = [
        needle.as_bytes().to_vec(),
        hex::encode(needle).into_bytes(),
        base64::engine::general_purpose::STANDARD_NO_PAD
            .encode(needle)
            .into_bytes(),
    ];
    forms.iter().any(|form| {
        haystack
            .windows(form.len())
            .any(|window| window == form.as_slice())
    })
}

/// An HS256 JWT over `claims` with `key`.
pub fn sign(claims: &Value, key: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(key),
    )
    .expect("signing works")
}

/// The key this application signs tokens with (derived from its root secret).
pub fn server_signing_key(app: &TestApp) -> Vec<u8> {
    let database = app.database();
    let mut conn = database.connection().expect("a connection");
    let vault = custodia::vault::Vault::open(&mut conn, &app.settings.master_key_file)
        .expect("the vault opens");
    vault.token_key().expose().to_vec()
}

/// The claims the server puts in a token.
pub fn claims_for(key_id: &str, role: &str, iat: i64, exp: i64) -> Value {
    json!({
        "sub": key_id, "role": role, "iat": iat, "exp": exp,
        "iss": "custodia", "aud": "custodia-api", "jti": "test"
    })
}

/// The key id of an API key `ck_<id>_<secret>`.
pub fn key_id_of(api_key: &str) -> &str {
    api_key.split('_').nth(1).expect("a key id")
}

/// A port of 127.0.0.1 held for a later listener: bound but not listening, so connections to it
/// are refused until [`ReservedPort::listen`], and no other test can take it meanwhile.
pub struct ReservedPort(socket2::Socket);

impl ReservedPort {
    /// A port the system chooses.
    pub fn new() -> ReservedPort {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        socket.bind(&any.into()).expect("a port of 127.0.0.1");
        ReservedPort(socket)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.0
            .local_addr()
            .ok()
            .and_then(|address| address.as_socket())
            .expect("a bound address")
            .port()
    }

    /// Starts listening on it.
    pub fn listen(self) -> std::net::TcpListener {
        self.0.listen(128).expect("listening");
        self.0.into()
    }
}

/// `custodia serve` as its own process, on a port the system chooses (it binds port 0 and
/// writes the address it bound on its standard output), ready to answer. Its log (stderr, at
/// `debug`) goes to `log`. Returns the process and its base URL.
pub async fn serve_process(
    mut command: std::process::Command,
    log: std::process::Stdio,
) -> (std::process::Child, String) {
    let mut child = command
        .arg("serve")
        .env("CUSTODIA_BIND", "127.0.0.1:0")
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("custodia serve starts");
    let base = listening_address(&mut child).await;
    let ready = reqwest::get(format!("{base}/readyz")).await;
    if !ready.as_ref().is_ok_and(|r| r.status().is_success()) {
        child.kill().ok();
        child.wait().ok();
        panic!("custodia serve said it listens at {base} but is not ready: {ready:?}");
    }
    (child, base)
}

/// The base URL a `custodia serve` process (started with its standard output piped) says it
/// listens at. It says so once its port is bound and everything is ready, so a request sent
/// after this waits in the listen queue rather than failing; a process that fails to start
/// closes the pipe.
pub async fn listening_address(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("its standard output, piped");
    let line = tokio::task::spawn_blocking(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line).map(|_| (line, reader))
    });
    let (line, reader) = match tokio::time::timeout(std::time::Duration::from_secs(30), line).await
    {
        Ok(Ok(Ok(read))) => read,
        _ => {
            child.kill().ok();
            child.wait().ok();
            panic!("custodia serve did not say where it listens");
        }
    };
    // Kept open with the process (it writes nothing more there).
    child.stdout = Some(reader.into_inner());
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("an address line, not {line:?}"))
        .to_owned()
}

/// A data directory and database for `custodia serve` processes (process-level tests: crashes,
/// several processes, the log).
pub struct Deployment {
    /// The data directory (master key, SQLite file).
    pub data_dir: PathBuf,
    /// The database.
    pub database: TestDatabase,
    /// More environment for its `serve` processes.
    env: Vec<(&'static str, String)>,
    _dir: TempDir,
}

/// A running `custodia serve` process; killed when dropped.
pub struct Served {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    process: std::process::Child,
}

impl Deployment {
    /// A fresh data directory and database.
    pub fn new() -> Deployment {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Deployment {
            data_dir: dir.path().join("data"),
            database: fresh_database(),
            env: Vec::new(),
            _dir: dir,
        }
    }

    /// The same, with `name=value` in the environment of its `serve` processes.
    pub fn with_env(mut self, name: &'static str, value: &str) -> Deployment {
        self.env.push((name, value.to_owned()));
        self
    }

    /// A `custodia` command aimed at this deployment.
    pub fn command(&self) -> std::process::Command {
        let mut command = custodia_command();
        command
            .env("CUSTODIA_DATA_DIR", &self.data_dir)
            .env("CUSTODIA_POLICY_DIR", sample_policy_dir())
            .env("CUSTODIA_DATABASE_URL", &self.database.url);
        command
    }

    /// Creates an API key of `role` with the CLI.
    pub fn api_key(&self, role: &str) -> String {
        let output = self
            .command()
            .args(["keys", "create", "--role", role, "--name", role])
            .output()
            .expect("the CLI runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout)
            .expect("a key")
            .trim()
            .to_owned()
    }

    /// Starts `custodia serve` on a free port.
    pub async fn serve(&self) -> Served {
        self.serve_logging(std::process::Stdio::null()).await
    }

    /// Starts `custodia serve` on a free port, its debug log going to `log`.
    pub async fn serve_logging(&self, log: std::process::Stdio) -> Served {
        let mut command = self.command();
        command
            .envs(self.env.iter().map(|(name, value)| (*name, value.as_str())))
            .env("CUSTODIA_LOG", "debug");
        let (process, base) = serve_process(command, log).await;
        Served { base, process }
    }
}

impl Served {
    /// Exchanges an API key for a token at this process.
    pub async fn token(&self, api_key: &str) -> String {
        let body: Value = reqwest::Client::new()
            .post(format!("{}/v1/auth/token", self.base))
            .json(&json!({ "api_key": api_key }))
            .send()
            .await
            .expect("the token request is answered")
            .json()
            .await
            .expect("a JSON body");
        body["access_token"]
            .as_str()
            .expect("an access token")
            .to_owned()
    }

    /// The peak resident memory of the process so far (`VmHWM`), in bytes.
    pub fn peak_memory(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))
            .expect("the process's status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| {
                value
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .expect("VmHWM in kB")
            * 1024
    }

    /// Kills the process (SIGKILL: no shutdown at all) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}
