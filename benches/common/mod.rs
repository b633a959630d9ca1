//! Shared set-up for the benchmark binaries: a running application on a fresh database.

#![allow(dead_code)]

use custodia::config::{Options, Settings};
use custodia::startup::{open_database, Application};
use diesel::connection::SimpleConnection;
use diesel::Connection;

/// A running application and what is needed to talk to it.
pub struct BenchApp {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// Its settings.
    pub settings: Settings,
    /// The backend name.
    pub backend: &'static str,
    _dir: tempfile::TempDir,
    schema: Option<(String, String)>,
}

impl Drop for BenchApp {
    fn drop(&mut self) {
        if let Some((server, schema)) = &self.schema {
            if let Ok(mut conn) = diesel::PgConnection::establish(server) {
                let _ = conn.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

/// Starts the application on SQLite, or on a fresh schema of the PostgreSQL server named by
/// `CUSTODIA_BENCH_DATABASE_URL`. `CUSTODIA_BENCH_DATA_DIR` keeps the data directory (SQLite
/// database and master key) there instead of in a temporary directory, and
/// `CUSTODIA_BENCH_SCHEMA` names a PostgreSQL schema that is kept (with the data directory
/// too: the master key), so that a benchmark that generates a large population can run again
/// on it.
pub fn start() -> BenchApp {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = std::env::var_os("CUSTODIA_BENCH_DATA_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| dir.path().join("data"), std::path::PathBuf::from);
    let (database_url, schema) = match std::env::var("CUSTODIA_BENCH_DATABASE_URL") {
        Ok(server) if !server.is_empty() => {
            // A named schema (`CUSTODIA_BENCH_SCHEMA`) is kept for the next run, as a kept data
            // directory is on SQLite; otherwise a fresh one, dropped at the end.
            let kept = std::env::var("CUSTODIA_BENCH_SCHEMA")
                .ok()
                .filter(|name| !name.is_empty());
            let schema = kept
                .clone()
                .unwrap_or_else(|| format!("bench_{}", uuid::Uuid::new_v4().simple()));
            let mut conn = diesel::PgConnection::establish(&server).expect("PostgreSQL reachable");
            conn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .unwrap();
            let separator = if server.contains('?') { '&' } else { '?' };
            (
                Some(format!(
                    "{server}{separator}options=-csearch_path%3D{schema}"
                )),
                kept.is_none().then_some((server, schema)),
            )
        }
        _ => (None, None),
    };
    let options = Options {
        bind: Some("127.0.0.1:0".into()),
        data_dir: Some(data_dir),
        database_url,
        policy_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/policies").into()),
        // The benchmarks measure capacity from one key; the per-key limit is not what they ask.
        rate_limit: Some(0),
        // `CUSTODIA_POPULATION_INDEX=off` measures counts in the database.
        population_index: std::env::var("CUSTODIA_POPULATION_INDEX")
            .ok()
            .map(|value| {
                if value == "off" {
                    custodia::config::Switch::Off
                } else {
                    custodia::config::Switch::On
                }
            }),
        ..Options::default()
    };
    let settings = Settings::resolve(&options).unwrap();
    let application = Application::build(&settings).unwrap();
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    BenchApp {
        address,
        backend: settings.database_url.backend(),
        settings,
        _dir: dir,
        schema,
    }
}

impl BenchApp {
    /// A bearer token for a new key of `role`.
    pub async fn token(&self, role: &str) -> String {
        let policy = custodia::policy::load_dir(&self.settings.policy_dir).unwrap();
        let database = open_database(&self.settings).unwrap();
        let mut conn = database.connection().unwrap();
        let key = custodia::auth::create_key(
            &mut conn,
            &policy,
            "bench",
            role,
            &custodia::audit::Actor::operator(),
        )
        .unwrap()
        .api_key
        .to_string();
        let response: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/v1/auth/token", self.address))
            .json(&serde_json::json!({ "api_key": key }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        response["access_token"].as_str().unwrap().to_owned()
    }
}

/// Peak resident memory of this process, in MiB (from /proc).
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// The resident memory of this process now, in MiB.
#[allow(dead_code)]
pub fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak resident memory of this process to what is resident now (Linux
/// `clear_refs`), so that `peak_rss_mib` reports the peak of what follows — the service's work,
/// not a benchmark's bulk set-up.
pub fn reset_peak_rss() {
    std::fs::write("/proc/self/clear_refs", "5").expect("/proc/self/clear_refs is writable");
}

/// User + system CPU seconds this process has used so far (from /proc/self/stat).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; after the ")" they are the 12th and 13th.
    (ticks(11) + ticks(12)) / 100.0
}

/// Drops the population index's change-feed triggers (migration 000021): the baseline of an
/// A/B measurement of what they cost (the feed rows that `store::subjects::insert` and
/// `store::interactions::insert` write themselves remain).
#[allow(dead_code)]
pub fn drop_population_feed(settings: &Settings) {
    use diesel::connection::SimpleConnection;
    let database = custodia::startup::open_database(settings).unwrap();
    let postgres = settings.database_url.backend() == "postgres";
    let mut drops = String::new();
    for (table, events) in [
        ("subjects", &["delete"][..]),
        ("subject_members", &["insert", "delete"]),
        ("subject_traits", &["insert", "update", "delete"]),
        ("consent_current", &["insert", "update", "delete"]),
        ("objections", &["insert", "update", "delete"]),
        ("restrictions", &["insert", "update", "delete"]),
        ("interaction_purposes", &["update", "delete"]),
    ] {
        for event in events {
            let on = if postgres {
                format!(" ON {table}")
            } else {
                String::new()
            };
            drops.push_str(&format!("DROP TRIGGER population_{table}_{event}{on};"));
        }
    }
    database
        .connection()
        .unwrap()
        .batch_execute(&drops)
        .unwrap();
}
