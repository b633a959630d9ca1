//! `custodia import FILE`: bulk loads of people, interactions and consent statements from
//! another system (`docs/import.md`), written directly to the database under the same rules as
//! the API — declared fields only, the role's purposes, rule 5 for every interaction, suppressed
//! ids refused, every write audited — in transactions of up to 1,000 lines. Idempotent by id
//! (interaction ids, consent statement ids, message ids), so a rerun after an interruption
//! resumes where it stopped; `--dry-run` checks every line and stores nothing.
//!
//! Formats: NDJSON, one object per line, in the native shapes (what `PUT /v1/subjects/{id}`,
//! `POST /v1/interactions` and `POST /v1/subjects/{id}/consents` take, with `subject_id`) or the
//! tracking protocol's (what `POST /v1/batch` takes); and CSV with a header, one kind per file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::audit::Actor;
use crate::auth::{KeyId, Principal};
use crate::consent::{ConsentDraft, ConsentJob, RawConsent};
use crate::interactions::{Draft, Outcome, RawInteraction, Together, MAX_BATCH};
use crate::policy::{Action, Policy, RoleId};
use crate::rejection::describe_serde_message;
use crate::store::DbConnection;
use crate::subjects::links::LinkOutcome;
use crate::subjects::{SubjectChanges, SubjectError, SubjectId};
use crate::tracking::{read_message, Position, Read};
use crate::vault::Vault;

/// The key id that records written by an import carry (`recorded_by`): no API key wrote them.
pub const IMPORT_KEY_ID: &str = "0000000000000000";

/// What to import, and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The file.
    pub path: PathBuf,
    /// Check every line and store nothing.
    pub dry_run: bool,
    /// The role whose permissions the import acts with (its purposes, its actions).
    pub role: RoleId,
    /// Items (interactions, people, statements, links) per transaction; `None`: the
    /// backend's default.
    pub batch_lines: Option<usize>,
}

/// Items per transaction on SQLite unless `--batch-size` says otherwise. A transaction's fixed
/// costs (its commit, the pages of the random-keyed indexes it dirties, its audit entry) are
/// shared by more lines in a larger batch: 10,000 import about half again as fast as 1,000
/// (docs/benchmarks.md, "Import"), and hold about 30 MiB more in memory.
pub const SQLITE_BATCH_LINES: usize = 10_000;
/// Items per transaction on PostgreSQL unless `--batch-size` says otherwise: larger batches
/// gained nothing measurable there, and every person of a batch holds a lock until its commit
/// (taken from the server's shared lock table, `max_locks_per_transaction` per connection).
pub const POSTGRES_BATCH_LINES: usize = MAX_BATCH;
/// The most `--batch-size` accepts on SQLite.
pub const MAX_BATCH_LINES: u32 = 50_000;
/// The most `--batch-size` accepts on PostgreSQL (see [`POSTGRES_BATCH_LINES`]).
pub const MAX_POSTGRES_BATCH_LINES: usize = 5_000;

/// What an import did (printed as JSON at the end).
#[derive(Debug, Default, Clone, Serialize)]
pub struct Summary {
    /// The file's name.
    pub file: String,
    /// `ndjson` or `csv`.
    pub format: &'static str,
    /// Whether nothing was stored.
    pub dry_run: bool,
    /// Lines read (records, for CSV; the header not counted).
    pub lines: u64,
    /// Lines that could not be imported (each reported as `file:line: message`).
    pub invalid: u64,
    /// Interactions stored now.
    pub interactions_stored: u64,
    /// Interactions stored before (the same id for the same person): a rerun.
    pub interactions_duplicate: u64,
    /// Interactions not stored: no purpose had a legal basis, or the person is suppressed.
    pub interactions_refused: u64,
    /// Tracking events whose consent context left no purpose, and `group` calls.
    pub skipped: u64,
    /// People whose identifiers and traits were set.
    pub subjects: u64,
    /// People refused: erased with suppression.
    pub subjects_refused: u64,
    /// Consent statements recorded (or found recorded before).
    pub consents: u64,
    /// Consent statements refused: the person is suppressed.
    pub consents_refused: u64,
    /// Anonymous ids linked to users (`identify`/`alias` lines).
    pub links: u64,
    /// Links refused: the anonymous id is another person's, or an id is suppressed.
    pub links_refused: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Lines per second.
    pub lines_per_second: f64,
}

/// Where an import stands, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Lines read so far.
    pub lines: u64,
    /// Bytes read so far.
    pub bytes: u64,
    /// The file's size.
    pub total_bytes: u64,
    /// Seconds since the start.
    pub seconds: f64,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A CSV file's header or records could not be read.
    #[error("{0}")]
    Csv(String),
    /// The role is not declared, or may not write what the import holds.
    #[error("{0}")]
    Role(String),
    /// `--batch-size` is larger than the backend allows.
    #[error("--batch-size is at most {MAX_POSTGRES_BATCH_LINES} on PostgreSQL (every person of a batch holds a lock until its commit), not {0}")]
    BatchSize(usize),
    /// The database could not be prepared for the import.
    #[error("cannot prepare the database: {0}")]
    Database(#[from] crate::store::StoreError),
    /// Storing a batch failed (nothing of that batch was stored; rerun to resume).
    #[error("storing lines {first} to {last} failed: {source}")]
    Store {
        /// The batch's first line.
        first: u64,
        /// Its last line.
        last: u64,
        /// Why.
        source: SubjectError,
    },
}

/// One line as it will be written.
enum Item {
    Interaction(Box<Draft>),
    Subject(SubjectId, SubjectChanges),
    Consent(Box<ConsentJob>),
    Link(SubjectId, SubjectId),
    /// Read, nothing to write (a tracking event left without purpose, a `group` call).
    Skip,
}

/// Imports a file; `bad` is told every line that cannot be imported (`file:line: message`),
/// `progress` where the import stands (at least once per batch).
pub fn run(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    options: &ImportOptions,
    bad: &mut dyn FnMut(String),
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary, ImportError> {
    if policy.role(options.role.as_str()).is_none() {
        return Err(ImportError::Role(format!(
            "role `{}` is not declared in the policy",
            options.role
        )));
    }
    let batch_lines = match (matches!(conn, DbConnection::Sqlite(_)), options.batch_lines) {
        (true, lines) => lines.unwrap_or(SQLITE_BATCH_LINES),
        (false, Some(lines)) if lines > MAX_POSTGRES_BATCH_LINES => {
            return Err(ImportError::BatchSize(lines))
        }
        (false, lines) => lines.unwrap_or(POSTGRES_BATCH_LINES),
    }
    .max(1);
    let read_error = |source: std::io::Error| ImportError::Read {
        path: options.path.display().to_string(),
        source,
    };
    let file = File::open(&options.path).map_err(read_error)?;
    if !options.dry_run {
        crate::store::prepare_bulk_writes(conn)?;
    }
    let total_bytes = file.metadata().map_err(read_error)?.len();
    let name = options
        .path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let csv = is_csv(&options.path);
    let started = Instant::now();
    let mut importer = Importer {
        vault,
        policy,
        principal: Principal {
            key_id: KeyId::parse(IMPORT_KEY_ID).expect("the import key id is well-formed"),
            role: options.role.clone(),
        },
        actor: Arc::new(Actor::operator()),
        dry_run: options.dry_run,
        received_at: chrono::Utc::now(),
        summary: Summary {
            file: name.clone(),
            format: if csv { "csv" } else { "ndjson" },
            dry_run: options.dry_run,
            ..Summary::default()
        },
        batch: Vec::new(),
        first_line: 0,
        since_checkpoint: 0,
    };
    let counter = CountingReader {
        inner: file,
        count: 0,
    };
    let mut report = |importer: &mut Importer<'_>, bytes: u64| {
        progress(Progress {
            lines: importer.summary.lines,
            bytes,
            total_bytes,
            seconds: started.elapsed().as_secs_f64(),
        })
    };
    if csv {
        let mut reader = csv::ReaderBuilder::new()
            .flexible(false)
            .from_reader(BufReader::with_capacity(1 << 20, counter));
        let headers = reader
            .headers()
            .map_err(|error| ImportError::Csv(format!("{name}:1: {}", csv_error(&error))))?
            .clone();
        let kind = CsvKind::of(&headers);
        let mut record = csv::StringRecord::new();
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = record.position().map_or(0, |p| p.line());
                    importer.summary.lines += 1;
                    match importer.csv_item(kind, &headers, &record) {
                        Ok(item) => importer.push(line, item),
                        Err(message) => importer.invalid(bad, &name, line, &message),
                    }
                }
                Err(error) => {
                    let line = error.position().map_or(0, |p| p.line());
                    importer.summary.lines += 1;
                    importer.invalid(bad, &name, line, &csv_error(&error));
                    if !matches!(error.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                        return Err(ImportError::Csv(format!(
                            "{name}:{line}: {}",
                            csv_error(&error)
                        )));
                    }
                }
            }
            if importer.batch.len() >= batch_lines {
                importer.flush(conn)?;
                let bytes = reader.get_ref().get_ref().count;
                report(&mut importer, bytes);
            }
        }
        importer.flush(conn)?;
        let bytes = reader.get_ref().get_ref().count;
        report(&mut importer, bytes);
    } else {
        let mut reader = BufReader::with_capacity(1 << 20, counter);
        let mut buffer = String::new();
        let mut line = 0u64;
        loop {
            buffer.clear();
            let read = reader.read_line(&mut buffer).map_err(read_error)?;
            if read == 0 {
                break;
            }
            line += 1;
            let text = buffer.trim();
            if text.is_empty() {
                continue;
            }
            importer.summary.lines += 1;
            match importer.ndjson_item(text, line) {
                Ok(items) => {
                    for item in items {
                        importer.push(line, item);
                    }
                }
                Err(message) => importer.invalid(bad, &name, line, &message),
            }
            if importer.batch.len() >= batch_lines {
                importer.flush(conn)?;
                let bytes = reader.get_ref().count;
                report(&mut importer, bytes);
            }
        }
        importer.flush(conn)?;
        let bytes = reader.get_ref().count;
        report(&mut importer, bytes);
    }
    let mut summary = importer.summary;
    summary.seconds = started.elapsed().as_secs_f64();
    summary.lines_per_second = summary.lines as f64 / summary.seconds.max(1e-9);
    Ok(summary)
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("csv"))
}

/// A CSV error, without the record's content.
fn csv_error(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("the record has {len} fields, the header {expected_len}"),
        csv::ErrorKind::Utf8 { .. } => "the record is not UTF-8".into(),
        csv::ErrorKind::Io(error) => format!("cannot read the file: {error}"),
        _ => "the record could not be read".into(),
    }
}

/// Counts the bytes read (for the progress display).
struct CountingReader {
    inner: File,
    count: u64,
}

impl std::io::Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buf)?;
        self.count += read as u64;
        Ok(read)
    }
}

/// What the rows of a CSV file are, from its header.
#[derive(Debug, Clone, Copy)]
enum CsvKind {
    Interactions,
    Subjects,
    Consents,
}

impl CsvKind {
    fn of(headers: &csv::StringRecord) -> CsvKind {
        let has = |name: &str| headers.iter().any(|header| header == name);
        if has("status") {
            CsvKind::Consents
        } else if has("purposes") {
            CsvKind::Interactions
        } else {
            CsvKind::Subjects
        }
    }
}

/// A native interaction line (`POST /v1/interactions`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeInteraction {
    id: String,
    subject_id: String,
    #[serde(rename = "type")]
    interaction_type: String,
    channel: String,
    occurred_at: String,
    purposes: Vec<String>,
    #[serde(default)]
    data: Map<String, Value>,
}

/// A native person line (`PUT /v1/subjects/{subject_id}`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeSubject {
    subject_id: String,
    #[serde(default)]
    identifiers: Map<String, Value>,
    #[serde(default)]
    traits: Map<String, Value>,
}

/// A native consent line (`POST /v1/subjects/{subject_id}/consents`, with its id required).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeConsent {
    subject_id: String,
    id: String,
    purpose: String,
    status: String,
    notice: Option<NativeNotice>,
    source: String,
    method: String,
    #[serde(default)]
    evidence: NativeEvidence,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeNotice {
    id: String,
    version: String,
    language: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NativeEvidence {
    ip_address: Option<String>,
    user_agent: Option<String>,
}

/// Reads a line into a value, saying what is wrong without repeating any of it.
fn shape<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, String> {
    serde_json::from_value(value).map_err(|error| {
        format!(
            "not a {what} line: {}",
            describe_serde_message(&error.to_string())
        )
    })
}

struct Importer<'a> {
    vault: &'a Vault,
    policy: &'a Policy,
    principal: Principal,
    actor: Arc<Actor>,
    dry_run: bool,
    received_at: chrono::DateTime<chrono::Utc>,
    summary: Summary,
    batch: Vec<Item>,
    first_line: u64,
    /// Items written since the last WAL checkpoint.
    since_checkpoint: u64,
}

/// Items written between two WAL checkpoints (SQLite), whatever the batch size: at 10,000 the
/// WAL peaked at 72 MiB in the benchmark's import (252 MiB at 100,000, which was also slower).
const CHECKPOINT_EVERY: u64 = 10_000;

impl Importer<'_> {
    fn invalid(&mut self, bad: &mut dyn FnMut(String), file: &str, line: u64, message: &str) {
        self.summary.invalid += 1;
        bad(format!("{file}:{line}: {message}"));
    }

    fn push(&mut self, line: u64, item: Item) {
        if self.batch.is_empty() {
            self.first_line = line;
        }
        match item {
            Item::Skip => self.summary.skipped += 1,
            item => self.batch.push(item),
        }
    }

    /// The items of one NDJSON line.
    fn ndjson_item(&self, text: &str, line: u64) -> Result<Vec<Item>, String> {
        let value: Value = serde_json::from_str(text).map_err(|error| {
            format!("not JSON (line {} column {})", error.line(), error.column())
        })?;
        let Value::Object(mut object) = value else {
            return Err("a line must be a JSON object".into());
        };
        let explicit = match object.remove("kind") {
            None => None,
            Some(Value::String(kind)) => Some(kind),
            Some(_) => return Err("`kind` must be subject, interaction or consent".into()),
        };
        let tracking = ["userId", "anonymousId", "previousId", "messageId"]
            .iter()
            .any(|key| object.contains_key(*key));
        let kind = match explicit.as_deref() {
            Some(kind @ ("subject" | "interaction" | "consent")) => kind,
            Some(_) => return Err("`kind` must be subject, interaction or consent".into()),
            None if tracking => {
                let raw =
                    RawValue::from_string(text.to_owned()).map_err(|_| "not JSON".to_owned())?;
                return self.tracking_items(&raw, line);
            }
            None if object.contains_key("status") => "consent",
            None if object.contains_key("purposes") => "interaction",
            None => "subject",
        };
        let value = Value::Object(object);
        Ok(vec![match kind {
            "interaction" => {
                let native: NativeInteraction = shape(value, "interaction")?;
                self.interaction(RawInteraction {
                    id: native.id,
                    subject_id: native.subject_id,
                    anonymous: false,
                    interaction_type: native.interaction_type,
                    channel: native.channel,
                    occurred_at: native.occurred_at,
                    purposes: native.purposes,
                    data: native.data,
                })?
            }
            "consent" => {
                let native: NativeConsent = shape(value, "consent")?;
                self.consent(
                    &native.subject_id,
                    RawConsent {
                        id: Some(native.id),
                        purpose: native.purpose,
                        status: native.status,
                        notice: native
                            .notice
                            .map(|notice| (notice.id, notice.version, notice.language)),
                        source: native.source,
                        method: native.method,
                        ip_address: native.evidence.ip_address,
                        user_agent: native.evidence.user_agent,
                    },
                )?
            }
            _ => {
                let native: NativeSubject = shape(value, "subject")?;
                self.subject(&native.subject_id, &native.identifiers, &native.traits)?
            }
        }])
    }

    /// The items of one message of the tracking protocol.
    fn tracking_items(&self, raw: &RawValue, line: u64) -> Result<Vec<Item>, String> {
        let position = Position(Some(usize::try_from(line).unwrap_or(usize::MAX)));
        let read = read_message(self.policy, None, raw, position, None, self.received_at).map_err(
            |rejection| {
                // The position is the file's line, which the report names already.
                let prefix = format!("{position}: ");
                rejection
                    .detail
                    .strip_prefix(&prefix)
                    .map(str::to_owned)
                    .unwrap_or(rejection.detail)
            },
        )?;
        Ok(match read {
            Read::Interaction { interaction, .. } => vec![self.interaction(interaction)?],
            Read::NoPurpose | Read::Ignored => vec![Item::Skip],
            Read::Identify {
                subject_id,
                changes,
                link,
                ..
            } => {
                self.permit(Action::InteractionsWrite)?;
                let mut items = Vec::new();
                if let Some(anonymous) = link {
                    items.push(Item::Link(subject_id.clone(), anonymous));
                }
                items.push(Item::Subject(subject_id, changes));
                items
            }
            Read::Alias { user, anonymous } => {
                self.permit(Action::InteractionsWrite)?;
                vec![Item::Link(user, anonymous)]
            }
            // An imported event's GPC signal is history: the statements stand for it.
            Read::Consent {
                subject_id,
                statements,
                gpc: _,
            } => statements
                .into_iter()
                .map(|draft| self.consent_job(subject_id.clone(), draft))
                .collect::<Result<_, _>>()?,
        })
    }

    fn permit(&self, action: Action) -> Result<(), String> {
        self.policy
            .authorize_action(self.principal.role.as_str(), action)
            .map(|_| ())
            .map_err(|_| format!("role `{}` may not {action}", self.principal.role))
    }

    fn interaction(&self, raw: RawInteraction) -> Result<Item, String> {
        let draft = Draft::parse(self.policy, &self.principal, &self.actor, raw)
            .map_err(|rejection| rejection.detail)?;
        Ok(Item::Interaction(Box::new(draft)))
    }

    fn subject(
        &self,
        subject_id: &str,
        identifiers: &Map<String, Value>,
        traits: &Map<String, Value>,
    ) -> Result<Item, String> {
        self.permit(Action::InteractionsWrite)?;
        let subject_id = SubjectId::parse(subject_id)?;
        let changes = SubjectChanges::parse(self.policy, identifiers, traits)
            .map_err(|rejection| rejection.detail)?;
        Ok(Item::Subject(subject_id, changes))
    }

    fn consent(&self, subject_id: &str, raw: RawConsent) -> Result<Item, String> {
        let subject_id = SubjectId::parse(subject_id)?;
        let draft = ConsentDraft::parse(self.policy, raw).map_err(|rejection| rejection.detail)?;
        self.consent_job(subject_id, draft)
    }

    fn consent_job(&self, subject_id: SubjectId, draft: ConsentDraft) -> Result<Item, String> {
        self.policy
            .authorize_purpose(
                self.principal.role.as_str(),
                Action::ConsentsWrite,
                draft.purpose(),
            )
            .map_err(|_| {
                format!(
                    "role `{}` may not record statements for purpose `{}`",
                    self.principal.role,
                    draft.purpose()
                )
            })?;
        Ok(Item::Consent(Box::new(ConsentJob {
            subject_id,
            draft: Some(draft),
            gpc: None,
            recorded_by: self.principal.key_id.clone(),
            actor: (*self.actor).clone(),
        })))
    }

    /// The item of one CSV record.
    fn csv_item(
        &self,
        kind: CsvKind,
        headers: &csv::StringRecord,
        record: &csv::StringRecord,
    ) -> Result<Item, String> {
        let mut columns: BTreeMap<&str, &str> = BTreeMap::new();
        for (header, value) in headers.iter().zip(record.iter()) {
            if !value.is_empty() {
                columns.insert(header, value);
            }
        }
        let mut take = |name: &str| columns.remove(name).map(str::to_owned);
        let required = |value: Option<String>, name: &str| {
            value.ok_or_else(|| format!("the `{name}` column is empty"))
        };
        match kind {
            CsvKind::Interactions => {
                let raw = RawInteraction {
                    id: required(take("id"), "id")?,
                    subject_id: required(take("subject_id"), "subject_id")?,
                    anonymous: false,
                    interaction_type: required(take("type"), "type")?,
                    channel: required(take("channel"), "channel")?,
                    occurred_at: required(take("occurred_at"), "occurred_at")?,
                    purposes: required(take("purposes"), "purposes")?
                        .split(';')
                        .map(|purpose| purpose.trim().to_owned())
                        .collect(),
                    data: columns
                        .into_iter()
                        .map(|(name, value)| (name.to_owned(), Value::String(value.to_owned())))
                        .collect(),
                };
                self.interaction(raw)
            }
            CsvKind::Subjects => {
                let subject_id = required(take("subject_id"), "subject_id")?;
                let mut identifiers = Map::new();
                for name in ["email", "phone"] {
                    if let Some(value) = take(name) {
                        identifiers.insert(name.to_owned(), Value::String(value));
                    }
                }
                let traits = columns
                    .into_iter()
                    .map(|(name, value)| (name.to_owned(), Value::String(value.to_owned())))
                    .collect();
                self.subject(&subject_id, &identifiers, &traits)
            }
            CsvKind::Consents => {
                let subject_id = required(take("subject_id"), "subject_id")?;
                let notice = match (take("notice_id"), take("notice_version")) {
                    (Some(id), Some(version)) => Some((id, version, take("notice_language"))),
                    (None, None) => None,
                    _ => {
                        return Err("give both `notice_id` and `notice_version`, or neither".into())
                    }
                };
                let raw = RawConsent {
                    id: Some(required(take("id"), "id")?),
                    purpose: required(take("purpose"), "purpose")?,
                    status: required(take("status"), "status")?,
                    notice,
                    source: required(take("source"), "source")?,
                    method: required(take("method"), "method")?,
                    ip_address: take("ip_address"),
                    user_agent: take("user_agent"),
                };
                if let Some(extra) = columns.keys().next() {
                    return Err(format!("unknown column `{extra}` for consent statements"));
                }
                self.consent(&subject_id, raw)
            }
        }
    }

    /// Writes the batch in one transaction (nothing in a dry run) and counts what it did.
    fn flush(&mut self, conn: &mut DbConnection) -> Result<(), ImportError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.batch);
        let written = items.len() as u64;
        let (first, last) = (self.first_line, self.summary.lines);
        if self.dry_run {
            return Ok(());
        }
        let mut drafts = Vec::new();
        let mut together = Together::default();
        for item in items {
            match item {
                Item::Interaction(draft) => drafts.push(*draft),
                Item::Subject(id, changes) => together.identities.push((id, changes)),
                Item::Consent(job) => together.consents.push(*job),
                Item::Link(user, anonymous) => together.links.push((user, anonymous)),
                Item::Skip => {}
            }
        }
        // People erased with suppression are not brought back by an import: their profile
        // lines are refused here (interactions, statements and links refuse them themselves).
        if !together.identities.is_empty() {
            let ids: Vec<&SubjectId> = together.identities.iter().map(|(id, _)| id).collect();
            let suppressed: Vec<SubjectId> =
                crate::subjects::suppressed_among(conn, self.vault, &ids)
                    .map_err(|source| ImportError::Store {
                        first,
                        last,
                        source,
                    })?
                    .into_iter()
                    .cloned()
                    .collect();
            let before = together.identities.len();
            together
                .identities
                .retain(|(id, _)| !suppressed.contains(id));
            self.summary.subjects_refused += (before - together.identities.len()) as u64;
        }
        let subjects = together.identities.len() as u64;
        let stored = crate::interactions::store_together(
            conn,
            self.vault,
            self.policy,
            &drafts,
            together,
            None,
            &self.actor,
        )
        .map_err(|source| ImportError::Store {
            first,
            last,
            source,
        })?;
        self.since_checkpoint += written;
        if self.since_checkpoint >= CHECKPOINT_EVERY {
            self.since_checkpoint = 0;
            crate::store::checkpoint(conn).map_err(|error| ImportError::Store {
                first,
                last,
                source: error.into(),
            })?;
        }
        self.summary.subjects += subjects;
        for outcome in stored.outcomes {
            match outcome {
                Outcome::Stored {
                    duplicate: true, ..
                } => self.summary.interactions_duplicate += 1,
                Outcome::Stored { .. } => self.summary.interactions_stored += 1,
                Outcome::NoLegalBasis { .. } | Outcome::Suppressed => {
                    self.summary.interactions_refused += 1
                }
            }
        }
        for recorded in stored.consents {
            match recorded {
                Ok(_) => self.summary.consents += 1,
                Err(_) => self.summary.consents_refused += 1,
            }
        }
        for linked in stored.linked {
            match linked {
                LinkOutcome::Linked { .. } | LinkOutcome::AlreadyLinked => self.summary.links += 1,
                LinkOutcome::Claimed | LinkOutcome::Suppressed => self.summary.links_refused += 1,
            }
        }
        Ok(())
    }
}
