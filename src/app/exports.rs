//! Exports (Art. 15/20) as the API offers them: everything held about one person, read on a
//! blocking thread inside one database snapshot and handed over in chunks through a small
//! bounded channel, so a person with 100,000 interactions costs a few chunks of memory, not the
//! whole document. The thread first announces what it is about to send; the export is audited
//! then, and only after that does the caller get the stream. A failure after the first byte
//! ends the stream with an error, so the caller can break the answer off and a client never
//! mistakes a cut-off export for a whole one.

use std::io::{self, Write};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::{audit_read, Failed, Services};
use crate::audit::{Actor, Entry};
use crate::export::{self, ExportError, Format, Summary};
use crate::subjects::SubjectId;

/// Exports read at once; more wait their turn (each holds a database connection while it
/// streams).
pub(crate) const EXPORTS_IN_FLIGHT: usize = 4;

/// How long a client may leave the export unread before it is abandoned.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// Bytes gathered before a chunk is handed to the response.
const CHUNK: usize = 64 * 1024;

/// Chunks waiting for the client at most.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Writes into the answer's channel in chunks.
struct ChannelWriter {
    buffer: Vec<u8>,
    chunks: mpsc::Sender<Result<Vec<u8>, io::Error>>,
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
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
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
pub(crate) fn export_entry(actor: &Actor, summary: &Summary) -> Entry {
    let mut entry = Entry::new(actor, export::ACTION_EXPORT)
        .pseudonym(Some(summary.pseudonym.clone()))
        .records(summary.records);
    for category in &summary.categories {
        entry.add_category(category);
    }
    entry
}

/// An export under way (audited): its chunks as they are read.
pub(crate) struct Streaming {
    /// The chunks; an `Err` means the export failed part-way and the answer must be broken
    /// off.
    pub(crate) chunks: mpsc::Receiver<Result<Vec<u8>, io::Error>>,
}

/// Starts an export of `subject_id` in `format` (waiting for one of [`EXPORTS_IN_FLIGHT`]
/// turns), audits it (with `target`, when it answers a request) once it has announced itself,
/// and returns it; `None` for an unknown subject.
pub(crate) async fn start(
    services: &Services,
    actor: &Actor,
    subject_id: SubjectId,
    format: Format,
    target: Option<String>,
) -> Result<Option<Streaming>, Failed<ExportError>> {
    let permit = services
        .exports
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ExportError::Io(io::Error::other("the export limiter closed")))?;
    let (announced, announcement) = oneshot::channel::<Option<Summary>>();
    let (chunks, body) = mpsc::channel::<Result<Vec<u8>, io::Error>>(CHUNKS_IN_FLIGHT);
    let (db, vault, policy, receipts) = (
        services.db.clone(),
        services.vault.clone(),
        services.policy.clone(),
        services.receipts.clone(),
    );
    let runtime = tokio::runtime::Handle::current();
    let reader = services.db.long_reader();
    let worker = tokio::task::spawn_blocking(move || -> Result<bool, ExportError> {
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
                &receipts,
                &subject_id,
                format,
                |summary| announced.send(summary.cloned()).is_ok(),
                writer,
            )
        })();
        if let Err(error) = &result {
            // Past the first byte, the only way to say "this is not all" is to break the
            // answer off.
            tracing::error!(error = %error, "an export failed while streaming");
            let _ = runtime.block_on(failures.send(Err(io::Error::other("the export failed"))));
        }
        result
    });
    let summary = match announcement.await {
        Ok(None) => return Ok(None),
        Ok(Some(summary)) => summary,
        // The thread ended before announcing anything: it failed.
        Err(_) => {
            let error = match worker.await {
                Ok(Err(error)) => error,
                Ok(Ok(_)) => ExportError::Io(io::Error::other("the export ended without a word")),
                Err(error) => ExportError::Io(io::Error::other(format!(
                    "the export thread failed: {error}"
                ))),
            };
            return Err(Failed::Domain(error));
        }
    };
    let mut entry = export_entry(actor, &summary);
    if let Some(target) = target {
        entry = entry.target(target);
    }
    audit_read(services, vec![entry]).await?;
    Ok(Some(Streaming { chunks: body }))
}
