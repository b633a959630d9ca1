//! Storing interactions: small requests are coalesced, large ones pipelined.
//!
//! Concurrent small requests (single interactions, small batches) wait in a queue; one task
//! takes everything waiting, up to a full batch, and stores it as one batch (a few groups at
//! once), then answers each request with its own outcomes. Nothing waits on a timer: under light load a group is one
//! request; under heavy load groups grow and each interaction costs what it costs in a batch.
//! Large batches skip the queue and are prepared on a reading connection, beside other
//! requests, then committed on the writer.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::ApiError;
use crate::auth::KeyId;
use crate::consent::apply_gpc;
use crate::interactions::{
    commit_ingest, ingest, prepare_ingest, Draft, Outcome, MAX_BATCH, MAX_INGEST_ATTEMPTS,
};
use crate::policy::Policy;
use crate::store::write_transaction;
use crate::store::Database;
use crate::subjects::find_or_create;
use crate::subjects::SubjectError;
use crate::vault::Vault;

/// Requests with fewer interactions than this go through the queue.
const COALESCE_BELOW: usize = 32;
/// How many coalesced groups are stored at once. On PostgreSQL they run on separate
/// connections; on SQLite they queue at the single writer, which commits them together.
const GROUPS_IN_FLIGHT: usize = 4;

struct Pending {
    drafts: Vec<Draft>,
    reply: Reply,
}

/// What storing needs, shared by the queue's task and the request handlers.
#[derive(Clone)]
struct Storage {
    db: Database,
    vault: Arc<Vault>,
    policy: Arc<Policy>,
}

/// The entry point for storing interactions.
pub struct IngestQueue {
    sender: mpsc::UnboundedSender<Pending>,
    storage: Storage,
}

impl IngestQueue {
    /// Starts the queue's task on the current runtime.
    pub fn start(db: Database, vault: Arc<Vault>, policy: Arc<Policy>) -> IngestQueue {
        let storage = Storage { db, vault, policy };
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_queue(storage.clone(), receiver));
        IngestQueue { sender, storage }
    }

    /// Applies a Global Privacy Control signal to every subject of these interactions, then
    /// stores them, in one transaction: the opt-outs decide which purposes are accepted.
    pub async fn store_with_gpc(
        &self,
        drafts: Vec<Draft>,
        recorded_by: KeyId,
    ) -> Result<Vec<Outcome>, ApiError> {
        let storage = self.storage.clone();
        Ok(self
            .storage
            .db
            .run_write(move |conn| {
                write_transaction(conn, |conn| {
                    let mut seen = Vec::new();
                    for draft in drafts.iter() {
                        if seen.contains(&draft.subject_id()) {
                            continue;
                        }
                        seen.push(draft.subject_id());
                        let subject = find_or_create(conn, &storage.vault, draft.subject_id())?;
                        apply_gpc(
                            conn,
                            &storage.vault,
                            &storage.policy,
                            &subject,
                            &recorded_by,
                        )?;
                    }
                    ingest(conn, &storage.vault, &storage.policy, &drafts)
                })
            })
            .await?)
    }

    /// Stores validated interactions and returns their outcomes, in order.
    pub async fn store(&self, drafts: Vec<Draft>) -> Result<Vec<Outcome>, ApiError> {
        if drafts.len() >= COALESCE_BELOW {
            return self.storage.store_pipelined(drafts).await;
        }
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending { drafts, reply })
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("the ingest queue has stopped")))?;
        answer.await.map_err(|_| {
            ApiError::Internal(anyhow::anyhow!("the ingest queue dropped a request"))
        })?
    }
}

async fn run_queue(storage: Storage, mut receiver: mpsc::UnboundedReceiver<Pending>) {
    let in_flight = Arc::new(tokio::sync::Semaphore::new(GROUPS_IN_FLIGHT));
    while let Some(first) = receiver.recv().await {
        // Wait for a free slot before taking the group, so it holds everything queued by then.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut group = vec![first];
        let mut size = group[0].drafts.len();
        while size < MAX_BATCH {
            match receiver.try_recv() {
                Ok(pending) => {
                    size += pending.drafts.len();
                    group.push(pending);
                }
                Err(_) => break,
            }
        }
        let mut lengths = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        let mut drafts = Vec::with_capacity(size);
        for pending in group {
            lengths.push(pending.drafts.len());
            replies.push(pending.reply);
            drafts.extend(pending.drafts);
        }
        let storage = storage.clone();
        tokio::spawn(async move {
            let result = storage.store_together(drafts).await;
            drop(permit);
            answer_group(result, lengths, replies);
        });
    }
}

type Reply = oneshot::Sender<Result<Vec<Outcome>, ApiError>>;

/// Hands each request of a group its own outcomes, or the group's error.
fn answer_group(result: Result<Vec<Outcome>, ApiError>, lengths: Vec<usize>, replies: Vec<Reply>) {
    match result {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for (length, reply) in lengths.into_iter().zip(replies) {
                let _ = reply.send(Ok(outcomes.by_ref().take(length).collect()));
            }
        }
        Err(error) => {
            let error = shareable(error);
            for reply in replies {
                let _ = reply.send(Err(error.copy()));
            }
        }
    }
}

impl Storage {
    /// Prepares and commits in one trip to the writer (a coalesced group is small enough).
    async fn store_together(&self, drafts: Vec<Draft>) -> Result<Vec<Outcome>, ApiError> {
        let (vault, policy) = (self.vault.clone(), self.policy.clone());
        Ok(self
            .db
            .run_write(move |conn| ingest(conn, &vault, &policy, &drafts))
            .await?)
    }

    /// Prepares on a reading connection, then commits on the writer; prepares again if another
    /// request wrote the same subjects or interactions in between.
    async fn store_pipelined(&self, drafts: Vec<Draft>) -> Result<Vec<Outcome>, ApiError> {
        let drafts = Arc::new(drafts);
        for _ in 0..MAX_INGEST_ATTEMPTS {
            let (vault, policy, batch) = (self.vault.clone(), self.policy.clone(), drafts.clone());
            let prepared = self
                .db
                .run(move |conn| prepare_ingest(conn, &vault, &policy, &batch))
                .await?;
            let committed = self
                .db
                .run_write(move |conn| commit_ingest(conn, prepared))
                .await?;
            if let Ok(outcomes) = committed {
                return Ok(outcomes);
            }
        }
        Err(SubjectError::Contended.into())
    }
}

/// An error that can be answered to every request of a group.
struct SharedError {
    status: actix_web::http::StatusCode,
    code: &'static str,
    detail: String,
}

fn shareable(error: ApiError) -> SharedError {
    let (status, code, detail) = error.into_parts();
    SharedError {
        status,
        code,
        detail,
    }
}

impl SharedError {
    fn copy(&self) -> ApiError {
        ApiError::Problem {
            status: self.status,
            code: self.code,
            detail: self.detail.clone(),
        }
    }
}
