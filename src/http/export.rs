//! `GET /v1/subjects/{subject_id}/export`: the Art. 15/20 bundle, streamed.
//!
//! The export is read on a blocking thread inside one database snapshot and handed to the
//! response through a small bounded channel, so a person with 100,000 interactions costs a few
//! chunks of memory, not the whole document. The thread first announces what it is about to
//! send; the handler records the audit entry (committed by the authorization middleware before
//! the response leaves) and only then returns the streaming response. A failure after the
//! first byte aborts the connection, so a client never mistakes a cut-off export for a whole
//! one (the JSON would not close; the zip would have no central directory).

use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::audit_trail;
use super::{ApiError, AppState};
use crate::audit::{Actor, Entry};
use crate::export::{self, ExportError, Format, Summary};
use crate::interactions::subject_not_found;
use crate::rejection::Rejection;
use crate::subjects::SubjectId;

/// Exports read at once; more wait their turn (each holds a database connection while it
/// streams).
pub const EXPORTS_IN_FLIGHT: usize = 4;

/// How long a client may leave the export unread before it is abandoned.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// Bytes gathered before a chunk is handed to the response.
const CHUNK: usize = 64 * 1024;

/// Chunks waiting for the client at most.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Limits concurrent exports.
pub fn export_permits() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(EXPORTS_IN_FLIGHT))
}

/// Options of an export.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `json` (default): one JSON document. `csv`: a zip of CSV files (see `docs/api.md`).
    #[param(pattern = "^(json|csv)$")]
    pub format: Option<String>,
}

/// Parses `?format=`.
pub fn parse_format(raw: Option<&str>) -> Result<Format, Rejection> {
    match raw {
        None | Some("json") => Ok(Format::Json),
        Some("csv") => Ok(Format::CsvZip),
        Some(other) => Err(Rejection::invalid(
            "invalid_format",
            format!(
                "unknown export format `{}`: use `json` or `csv`",
                other.escape_debug()
            ),
        )),
    }
}

/// Writes into the response's channel in chunks.
struct ChannelWriter {
    buffer: Vec<u8>,
    chunks: mpsc::Sender<Result<Bytes, io::Error>>,
    runtime: tokio::runtime::Handle,
    /// Registered before the snapshot is taken: an erasure that needs the snapshot gone ends
    /// the export (the response is broken off, never ended as if whole).
    reader: export::SnapshotClaim,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        let ended = || {
            io::Error::other("ended: an erasure needed this export's database snapshot released")
        };
        if self.reader.is_ended() {
            return Err(ended());
        }
        let (chunks, reader) = (&self.chunks, &self.reader);
        let sent = self.runtime.block_on(async {
            tokio::select! {
                sent = tokio::time::timeout(STALL_LIMIT, chunks.send(Ok(chunk))) => Some(sent),
                () = reader.ended() => None,
            }
        });
        let Some(sent) = sent else {
            return Err(ended());
        };
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client went away",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        if self.buffer.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// The audit entry of an export.
pub fn export_entry(actor: &Actor, summary: &Summary) -> Entry {
    let mut entry = Entry::new(actor, export::ACTION_EXPORT)
        .pseudonym(Some(summary.pseudonym.clone()))
        .records(summary.records);
    for category in &summary.categories {
        entry.add_category(category);
    }
    entry
}

/// Starts an export of `subject_id`; answers once the export has announced itself: `None` for
/// an unknown subject, else the summary (to audit) and the response to return.
pub async fn start(
    state: &AppState,
    subject_id: SubjectId,
    format: Format,
) -> Result<Option<(Summary, HttpResponse)>, ApiError> {
    let permit = state
        .web
        .exports
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("the export limiter closed")))?;
    let (announced, announcement) = oneshot::channel::<Option<Summary>>();
    let (chunks, body) = mpsc::channel::<Result<Bytes, io::Error>>(CHUNKS_IN_FLIGHT);
    let (db, vault, policy) = (
        state.services.db.clone(),
        state.services.vault.clone(),
        state.services.policy.clone(),
    );
    let runtime = tokio::runtime::Handle::current();
    let reader = state.services.db.long_reader();
    let worker = actix_web::rt::task::spawn_blocking(move || -> Result<bool, ExportError> {
        let _permit = permit;
        let failures = chunks.clone();
        let writer = ChannelWriter {
            buffer: Vec::with_capacity(CHUNK),
            chunks,
            runtime: runtime.clone(),
            reader,
        };
        let result = (|| {
            let mut conn = db.connection()?;
            export::stream(
                &mut conn,
                &vault,
                &policy,
                &subject_id,
                format,
                |summary| announced.send(summary.cloned()).is_ok(),
                writer,
            )
        })();
        if let Err(error) = &result {
            // Past the first byte, the only way to say "this is not all" is to break the
            // response off.
            tracing::error!(error = %error, "an export failed while streaming");
            let _ = runtime.block_on(failures.send(Err(io::Error::other("the export failed"))));
        }
        result
    });
    match announcement.await {
        Ok(None) => Ok(None),
        Ok(Some(summary)) => {
            let stream = futures_util::stream::unfold(body, |mut body| async move {
                body.recv().await.map(|chunk| (chunk, body))
            });
            let mut response = HttpResponse::Ok();
            response.insert_header((header::CACHE_CONTROL, "no-store"));
            match format {
                Format::Json => {
                    response.content_type("application/json");
                }
                Format::CsvZip => {
                    response.content_type("application/zip").insert_header((
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"custodia-export.zip\"",
                    ));
                }
            }
            Ok(Some((summary, response.streaming(stream))))
        }
        // The thread ended before announcing anything: it failed.
        Err(_) => match worker.await {
            Ok(Err(ExportError::Subject(error))) => Err(error.into()),
            Ok(Err(error)) => Err(ApiError::Internal(error.into())),
            Ok(Ok(_)) => Err(ApiError::Internal(anyhow::anyhow!(
                "the export ended without a word"
            ))),
            Err(error) => Err(ApiError::Internal(anyhow::anyhow!(
                "the export thread failed: {error}"
            ))),
        },
    }
}

/// Everything held about one person (Art. 15), decrypted, with the processing context from the
/// policy and the log of who read their data; `?format=csv` gives the portable form (Art. 20),
/// a zip of CSV files. Streamed from one database snapshot.
#[utoipa::path(get, operation_id = "export_export_subject", path = "/v1/subjects/{subject_id}/export", tag = "subjects",
    security(("bearer" = [])),
    params(("subject_id" = String, Path, description = "The app's id for the person"), ExportQuery),
    responses(
        (status = 200, description = "The export (JSON, or application/zip for `csv`)",
            content_type = "application/json"),
        (status = 404, description = "No such subject", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
        (status = 422, description = "Unknown format", body = super::problem::ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn export_subject(
    state: web::Data<AppState>,
    actor: Actor,
    request: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    let format = parse_format(query.format.as_deref())?;
    let subject_id = SubjectId::parse(&path.into_inner()).map_err(|_| subject_not_found())?;
    let (summary, response) = start(&state, subject_id, format)
        .await?
        .ok_or_else(subject_not_found)?;
    audit_trail::record(&request, export_entry(&actor, &summary));
    Ok(response)
}

impl From<ExportError> for ApiError {
    fn from(error: ExportError) -> Self {
        match error {
            ExportError::Subject(error) => error.into(),
            ExportError::Io(error) => ApiError::Internal(anyhow::Error::new(error)),
        }
    }
}
