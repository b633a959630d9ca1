//! Segment previews and insights over 1,000,000 people and 10,000,000 interactions, over HTTP.
//!
//! The population is generated inside the database (recursive CTE on SQLite, generate_series on
//! PostgreSQL) in the shapes the service writes: subjects, segmentable traits, current consent
//! (70% granted, 10% withdrawn), objections (1%), restrictions (0.5%), ten interactions per
//! person over a year (half tagged `marketing`) with their purposes. Then `ANALYZE` (and on
//! PostgreSQL `VACUUM`), as a running database has statistics and a visibility map. Each preview is timed end to end (HTTP, counting with the
//! legal basis pushed down, the differencing guard, the audit entry).
//!
//! `cargo bench --bench segments` (SQLite) or with `CUSTODIA_BENCH_DATABASE_URL=postgres://…`;
//! `CUSTODIA_BENCH_PEOPLE` scales it down. Results go in docs/benchmarks.md.

mod common;

use std::time::Instant;

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;
use serde_json::{json, Value};

fn generate(conn: &mut custodia::store::DbConnection, people: u64, postgres: bool) {
    let interactions = people * 10;
    let last_person = people - 1;
    let last_interaction = interactions - 1;
    // The internal id of person n: a hash-like hex prefix (spreads the ids) and n.
    let sql = if postgres {
        format!(
            "
CREATE TEMP TABLE people AS
  SELECT n, lpad(to_hex((n::bigint * 2654435761) % 4294967296), 8, '0') || n AS pk
  FROM generate_series(0, {last_person}) AS n;
INSERT INTO subjects (id, subject_index, subject_id_ct, identifiers_ct, traits_ct, created_at, updated_at)
  SELECT pk, 'ix' || n, '\\x00', '{{}}', '{{}}', now() AT TIME ZONE 'utc', now() AT TIME ZONE 'utc' FROM people;
INSERT INTO subject_traits (subject_pk, name, value)
  SELECT pk, 'country', substr('DEATFRITESNLBEPLSEDK', (n % 10) * 2 + 1, 2) FROM people
  UNION ALL
  SELECT pk, 'language', substr('deenfritnl', (n % 5) * 2 + 1, 2) FROM people;
INSERT INTO consent_current (subject_pk, purpose, status, sequence, since, record_id)
  SELECT pk, 'marketing', CASE WHEN n % 10 < 7 THEN 'granted' ELSE 'withdrawn' END, 1,
         now() AT TIME ZONE 'utc', 'r' || n FROM people WHERE n % 10 < 8;
INSERT INTO objections (subject_pk, purpose, since, recorded_by)
  SELECT pk, 'marketing', now() AT TIME ZONE 'utc', 'bench' FROM people WHERE n % 100 = 3;
INSERT INTO restrictions (subject_pk, since, recorded_by)
  SELECT pk, now() AT TIME ZONE 'utc', 'bench' FROM people WHERE n % 200 = 5;
INSERT INTO interactions (id, subject_pk, client_index, client_id_ct, interaction_type, channel,
                          occurred_at, recorded_at, purposes, data_ct, recorded_by)
  SELECT 'i' || i, p.pk, 'c' || i, '\\x00',
         (ARRAY['purchase', 'visit', 'support_chat', 'login'])[i % 4 + 1],
         (ARRAY['web', 'app', 'email', 'store'])[(i / 4) % 4 + 1],
         (now() AT TIME ZONE 'utc') - ((i * 7) % 365) * interval '1 day',
         now() AT TIME ZONE 'utc',
         CASE WHEN i % 2 = 0 THEN '[\"marketing\"]' ELSE '[\"support\"]' END, '{{}}', 'bench'
  FROM generate_series(0, {last_interaction}) AS i JOIN people p ON p.n = i % {people};
INSERT INTO interaction_purposes (interaction_pk, subject_pk, purpose, occurred_at,
                                  interaction_type, channel)
  SELECT id, subject_pk, CASE WHEN substr(id, 2)::bigint % 2 = 0 THEN 'marketing' ELSE 'support' END,
         occurred_at, interaction_type, channel
  FROM interactions;"
        )
    } else {
        format!(
            "
BEGIN;
CREATE TEMP TABLE people AS
  WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < {last_person})
  SELECT n, printf('%08x', (n * 2654435761) % 4294967296) || n AS pk FROM s;
CREATE INDEX temp.people_n ON people (n);
INSERT INTO subjects (id, subject_index, subject_id_ct, identifiers_ct, traits_ct, created_at, updated_at)
  SELECT pk, 'ix' || n, x'00', '{{}}', '{{}}', datetime('now'), datetime('now') FROM people;
INSERT INTO subject_traits (subject_pk, name, value)
  SELECT pk, 'country', substr('DEATFRITESNLBEPLSEDK', (n % 10) * 2 + 1, 2) FROM people;
INSERT INTO subject_traits (subject_pk, name, value)
  SELECT pk, 'language', substr('deenfritnl', (n % 5) * 2 + 1, 2) FROM people;
INSERT INTO consent_current (subject_pk, purpose, status, sequence, since, record_id)
  SELECT pk, 'marketing', CASE WHEN n % 10 < 7 THEN 'granted' ELSE 'withdrawn' END, 1,
         datetime('now'), 'r' || n FROM people WHERE n % 10 < 8;
INSERT INTO objections (subject_pk, purpose, since, recorded_by)
  SELECT pk, 'marketing', datetime('now'), 'bench' FROM people WHERE n % 100 = 3;
INSERT INTO restrictions (subject_pk, since, recorded_by)
  SELECT pk, datetime('now'), 'bench' FROM people WHERE n % 200 = 5;
INSERT INTO interactions (id, subject_pk, client_index, client_id_ct, interaction_type, channel,
                          occurred_at, recorded_at, purposes, data_ct, recorded_by)
  WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {last_interaction})
  SELECT 'i' || i, p.pk, 'c' || i, x'00',
         CASE i % 4 WHEN 0 THEN 'purchase' WHEN 1 THEN 'visit' WHEN 2 THEN 'support_chat' ELSE 'login' END,
         CASE (i / 4) % 4 WHEN 0 THEN 'web' WHEN 1 THEN 'app' WHEN 2 THEN 'email' ELSE 'store' END,
         datetime('now', '-' || ((i * 7) % 365) || ' days'), datetime('now'),
         CASE WHEN i % 2 = 0 THEN '[\"marketing\"]' ELSE '[\"support\"]' END, '{{}}', 'bench'
  FROM s JOIN people p ON p.n = i % {people};
INSERT INTO interaction_purposes (interaction_pk, subject_pk, purpose, occurred_at,
                                  interaction_type, channel)
  SELECT id, subject_pk, CASE WHEN CAST(substr(id, 2) AS INTEGER) % 2 = 0 THEN 'marketing' ELSE 'support' END,
         occurred_at, interaction_type, channel
  FROM interactions;
COMMIT;
ANALYZE;"
        )
    };
    conn.batch_execute(&sql)
        .expect("the population is generated");
    // Statistics, and on PostgreSQL the visibility map that lets index-only scans skip the
    // heap — what autovacuum maintains in a running database (VACUUM runs on its own, outside
    // a transaction block).
    if postgres {
        conn.batch_execute("VACUUM ANALYZE").expect("vacuum");
    }
}

/// Runs of each preview: every one is listed, with the median and the worst.
const RUNS: usize = 5;

#[tokio::main]
async fn main() {
    let people: u64 = std::env::var("CUSTODIA_BENCH_PEOPLE")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let app = common::start();
    let postgres = app.backend == "postgres";
    let settings = app.settings.clone();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let database = custodia::startup::open_database(&settings).unwrap();
        let mut conn = database.connection().unwrap();
        // A kept data directory (CUSTODIA_BENCH_DATA_DIR) already holds the population.
        let existing: i64 = diesel::dsl::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "(SELECT count(*) FROM subjects)",
        ))
        .get_result(&mut conn)
        .unwrap();
        // Insights answered by an earlier run today would be given again (a repeat is free and
        // instant) and its spending would count against today's budget: start from none.
        conn.batch_execute("DELETE FROM insight_releases; DELETE FROM insight_budget;")
            .unwrap();
        if existing == 0 {
            generate(&mut conn, people, postgres);
        } else {
            assert_eq!(
                existing as u64, people,
                "the kept database holds another population"
            );
        }
    })
    .await
    .unwrap();
    let generated = started.elapsed().as_secs_f64();
    // The peak memory reported is the service's, from here on; the generator's bulk inserts
    // ran inside the database library of this process.
    common::reset_peak_rss();
    let client = reqwest::Client::new();
    // The service's population index was built at its start, before the population was
    // generated; the generator's rows reached it through the change feed, more than a catch-up
    // reads, so the index is built again from the tables (or, with a kept database, at start).
    // Counts are timed once it holds everyone (until then they are answered by the database).
    let waited = Instant::now();
    let mut indexed = 0.0;
    while std::env::var_os("CUSTODIA_POPULATION_INDEX").is_none_or(|v| v != "off") {
        indexed =
            population_metric(&client, &app.address, "custodia_population_index_people").await;
        if indexed as u64 >= people {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    println!(
        "| {} | population index: {indexed} people, ready {:.1} s after the population was generated; RSS {:.0} MiB, peak so far {:.0} MiB |",
        app.backend,
        waited.elapsed().as_secs_f64(),
        common::rss_mib(),
        common::peak_rss_mib()
    );
    let filters = [
        ("trait", json!({"trait": "country", "in": ["DE", "AT"]})),
        (
            "interactions",
            json!({"interactions": {"type": "purchase", "within_days": 30, "at_least": 2}}),
        ),
        (
            "trait and interactions",
            json!({"all": [{"trait": "country", "in": ["DE", "AT"]},
                           {"interactions": {"type": "purchase", "within_days": 90}}]}),
        ),
        (
            "any / not",
            json!({"any": [{"trait": "language", "in": ["fr"]},
                           {"not": {"interactions": {"channel": "email", "within_days": 60}}}]}),
        ),
    ];
    for (name, filter) in filters {
        // A key per filter: the differencing guard compares the answers given to one key.
        let token = app.token("marketer").await;
        let mut times = Vec::new();
        let mut size = Value::Null;
        for _ in 0..RUNS {
            let started = Instant::now();
            let response = client
                .post(format!("{}/v1/segments/preview", app.address))
                .bearer_auth(&token)
                .json(&json!({"purpose": "marketing", "filter": filter}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{name}");
            let body: Value = response.json().await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            size = body["size"].clone();
        }
        println!(
            "| {} | {people} people, {} interactions (generated in {generated:.0} s) | {name}: size {size} | {} |",
            app.backend,
            people * 10,
            runs_summary(times),
        );
    }
    // Insights (issue 21): 52 weekly buckets × channel over the year, and people by week. Each
    // run a new question (its ε differs), so each is computed and charged, never a repeat.
    let today = chrono::Utc::now().date_naive();
    let from = (today - chrono::Duration::days(364)).to_string();
    let questions = [
        (
            "interactions by week × channel",
            json!({"measure": "interactions", "group_by": ["week", "channel"]}),
        ),
        (
            "people by week",
            json!({"measure": "people", "group_by": ["week"]}),
        ),
        (
            "people by country, DE/AT/FR filter",
            json!({"measure": "people", "group_by": ["trait:country"],
            "filter": {"trait": "country", "in": ["DE", "AT", "FR"]}}),
        ),
    ];
    for (q, (name, shape)) in questions.iter().enumerate() {
        let token = app.token("marketer").await;
        let mut times = Vec::new();
        let mut cells = 0;
        for run in 0..RUNS {
            let mut question = shape.clone();
            question["purpose"] = json!("marketing");
            question["from"] = json!(from);
            question["to"] = json!(today.to_string());
            question["epsilon"] = json!(0.05 + 0.001 * (q * RUNS + run) as f64);
            let started = Instant::now();
            let response = client
                .post(format!("{}/v1/insights", app.address))
                .bearer_auth(&token)
                .json(&question)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{name}");
            let body: Value = response.json().await.unwrap();
            times.push(started.elapsed().as_secs_f64() * 1000.0);
            cells = body["cells"].as_array().unwrap().len();
        }
        println!(
            "| {} | insights: {name}: {cells} cells | {} |",
            app.backend,
            runs_summary(times),
        );
    }
    println!(
        "| {} | peak RSS while answering: {:.0} MiB | counts from the index: {}, from the database: {} |",
        app.backend,
        common::peak_rss_mib(),
        population_metric(&client, &app.address, "custodia_population_counts_total{from=\"index\"}").await,
        population_metric(&client, &app.address, "custodia_population_counts_total{from=\"database\"}").await,
    );
}

/// The runs (ms) in the order they ran, then their median and the worst: `runs 7, 6, … ms |
/// median 7 ms | worst 11 ms`.
fn runs_summary(mut times: Vec<f64>) -> String {
    let runs = times
        .iter()
        .map(|t| format!("{t:.0}"))
        .collect::<Vec<_>>()
        .join(", ");
    times.sort_by(f64::total_cmp);
    format!(
        "runs {runs} ms | median {:.0} ms | worst {:.0} ms",
        times[times.len() / 2],
        times[times.len() - 1]
    )
}

/// A metric's value in the service's `/metrics` (0 when absent).
async fn population_metric(client: &reqwest::Client, address: &str, series: &str) -> f64 {
    let text = client
        .get(format!("{address}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{series} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}
