//! Storing interactions as the API receives them: small requests are coalesced
//! (`crate::coalesce`) and stored as one batch; large batches skip the queue and are prepared on a reading connection, beside other
//! requests, then committed on the writer.

use std::sync::Arc;

use super::{
    commit_ingest, ingest, ingest_in_turn, prepare_ingest, Draft, Outcome, MAX_BATCH,
    MAX_INGEST_ATTEMPTS,
};
use crate::audit::{self, Actor};
use crate::auth::KeyId;
use crate::coalesce::Coalescer;
use crate::consent::{apply_gpc, gpc_entry, gpc_evidence, record_all, ConsentJob, ConsentOutcome};
use crate::policy::Policy;
use crate::store::write_transaction;
use crate::store::{Database, DbConnection};
use crate::subjects::links::{link, LinkOutcome};
use crate::subjects::{find_or_create, upsert, SubjectChanges, SubjectError, SubjectId};
use crate::vault::Vault;

/// What is written together with a request's interactions, before them, in their transaction.
#[derive(Debug, Default)]
pub(crate) struct Together {
    /// Anonymous ids to link to users (`(user, anonymous)`: identity resolution), first.
    pub(crate) links: Vec<(SubjectId, SubjectId)>,
    /// Identifiers and traits of people, each audited.
    pub(crate) identities: Vec<(SubjectId, SubjectChanges)>,
    /// Consent statements (a consent manager's answers), each audited.
    pub(crate) consents: Vec<ConsentJob>,
}

impl Together {
    /// Whether there is nothing to write but interactions.
    pub(crate) fn is_empty(&self) -> bool {
        self.links.is_empty() && self.identities.is_empty() && self.consents.is_empty()
    }
}

/// What [`IngestQueue::store_with`] did.
#[derive(Debug)]
pub(crate) struct StoredWith {
    /// One outcome per interaction, in order.
    pub(crate) outcomes: Vec<Outcome>,
    /// One per link, in order.
    pub(crate) linked: Vec<LinkOutcome>,
    /// One per consent statement, in order (refused: the person is suppressed).
    pub(crate) consents: Vec<Result<ConsentOutcome, SubjectError>>,
}

/// Requests with fewer interactions than this are coalesced.
const COALESCE_BELOW: usize = 32;

/// What storing needs, shared by the queue's task and the request handlers.
#[derive(Clone)]
struct Storage {
    db: Database,
    vault: Arc<Vault>,
    policy: Arc<Policy>,
}

/// The entry point for storing interactions.
pub struct IngestQueue {
    queue: Coalescer<Draft, Outcome, SubjectError>,
    storage: Storage,
}

impl IngestQueue {
    /// Starts the queue's task on the current runtime.
    pub(crate) fn start(db: Database, vault: Arc<Vault>, policy: Arc<Policy>) -> IngestQueue {
        let storage = Storage { db, vault, policy };
        let for_queue = storage.clone();
        let queue = Coalescer::start(MAX_BATCH, move |drafts| {
            let storage = for_queue.clone();
            async move { storage.store_together(drafts).await }
        });
        IngestQueue { queue, storage }
    }

    /// Stores interactions together with what must take effect in the same transaction:
    /// `together` (links of anonymous ids to users, then identifiers and traits of people,
    /// each audited) and, when
    /// `gpc` names the key that relayed a Global Privacy Control signal, that signal's opt-outs
    /// for every subject of these interactions (which then decide the purposes accepted).
    /// Everything or nothing.
    pub(crate) async fn store_with(
        &self,
        drafts: Vec<Draft>,
        together: Together,
        gpc: Option<KeyId>,
        actor: Actor,
    ) -> Result<StoredWith, SubjectError> {
        let (vault, policy) = (self.storage.vault.clone(), self.storage.policy.clone());
        self.storage
            .db
            .run_write(move |conn| {
                store_together(
                    conn,
                    &vault,
                    &policy,
                    &drafts,
                    together,
                    gpc.as_ref(),
                    &actor,
                )
            })
            .await
    }

    /// Stores validated interactions and returns their outcomes, in order.
    pub(crate) async fn store(&self, drafts: Vec<Draft>) -> Result<Vec<Outcome>, SubjectError> {
        if drafts.len() >= COALESCE_BELOW {
            return self.storage.store_pipelined(drafts).await;
        }
        self.queue.submit(drafts).await
    }
}

/// Writes interactions with what must take effect in their transaction (see
/// [`IngestQueue::store_with`]), in one write transaction on `conn`: what the queue runs on the
/// writer, and what `custodia import` runs batch by batch.
#[allow(clippy::too_many_arguments)]
pub(crate) fn store_together(
    conn: &mut DbConnection,
    vault: &Vault,
    policy: &Policy,
    drafts: &[Draft],
    together: Together,
    gpc: Option<&KeyId>,
    actor: &Actor,
) -> Result<StoredWith, SubjectError> {
    if together.is_empty() && gpc.is_none() {
        // Interactions alone: their own transaction, without a savepoint inside another (on
        // SQLite every statement in a savepoint pays for its journal).
        return Ok(StoredWith {
            outcomes: ingest(conn, vault, policy, drafts)?,
            linked: Vec::new(),
            consents: Vec::new(),
        });
    }
    let Together {
        links,
        identities,
        consents,
    } = together;
    write_transaction(conn, |conn| {
        // Every person written about, locked first and in one order (PostgreSQL): the steps
        // below lock some of them again and append to the audit log as they go, and a person
        // locked after the audit head could deadlock with a writer holding that person and
        // waiting for the head.
        let people: Vec<String> = links
            .iter()
            .flat_map(|(user, anonymous)| [user, anonymous])
            .chain(identities.iter().map(|(id, _)| id))
            .chain(consents.iter().map(|job| &job.subject_id))
            .chain(drafts.iter().map(|draft| draft.subject_id()))
            .map(|id| crate::subjects::subject_index(vault, id))
            .collect();
        crate::store::lock_in_order(conn, "custodia/person/", &people)?;
        let mut entries = Vec::new();
        let mut linked = Vec::with_capacity(links.len());
        for (user, anonymous) in &links {
            let result = link(conn, vault, policy, user, anonymous, actor)?;
            linked.push(result.linked);
            entries.extend(result.entries);
        }
        for (subject_id, changes) in &identities {
            upsert(conn, vault, policy, subject_id, changes, actor)?;
        }
        let recorded = if consents.is_empty() {
            Vec::new()
        } else {
            record_all(conn, vault, policy, &consents)?
        };
        if let Some(recorded_by) = gpc {
            let mut seen = Vec::new();
            for draft in drafts {
                if seen.contains(&draft.subject_id()) {
                    continue;
                }
                seen.push(draft.subject_id());
                let subject = find_or_create(conn, vault, draft.subject_id())?;
                let evidence = gpc_evidence("Sec-GPC: 1", None, None, None);
                let applied = apply_gpc(conn, vault, policy, &subject, recorded_by, &evidence)?;
                entries.extend(gpc_entry(actor, policy, &subject, &applied));
            }
        }
        let outcomes = if drafts.is_empty() {
            Vec::new()
        } else {
            ingest(conn, vault, policy, drafts)?
        };
        // Last, like every append: the audit head stays locked only for the commit (locking it
        // before the inserts could deadlock with a concurrent ingest).
        audit::append(conn, policy.sha256(), entries)?;
        Ok::<_, SubjectError>(StoredWith {
            outcomes,
            linked,
            consents: recorded,
        })
    })
}

impl Storage {
    /// Prepares and commits in one trip to the writer (a coalesced group is small enough).
    async fn store_together(&self, drafts: Vec<Draft>) -> Result<Vec<Outcome>, SubjectError> {
        let (vault, policy) = (self.vault.clone(), self.policy.clone());
        self.db
            .run_write(move |conn| ingest(conn, &vault, &policy, &drafts))
            .await
    }

    /// Prepares on a reading connection, then commits on the writer; a group that lost a race
    /// with another writer of the same people is then prepared and committed in turn (under
    /// their locks, `interactions::ingest_in_turn`), where it finds what the winner stored.
    async fn store_pipelined(&self, drafts: Vec<Draft>) -> Result<Vec<Outcome>, SubjectError> {
        let drafts = Arc::new(drafts);
        let (vault, policy, batch) = (self.vault.clone(), self.policy.clone(), drafts.clone());
        let prepared = self
            .db
            .run(move |conn| prepare_ingest(conn, &vault, &policy, &batch))
            .await;
        match prepared {
            Err(error) if error.is_write_conflict() => {}
            Err(error) => return Err(error),
            Ok(prepared) => {
                let committed = self
                    .db
                    .run_write(move |conn| commit_ingest(conn, prepared))
                    .await?;
                if let Ok(outcomes) = committed {
                    return Ok(outcomes);
                }
            }
        }
        for _ in 1..MAX_INGEST_ATTEMPTS {
            let (vault, policy, batch) = (self.vault.clone(), self.policy.clone(), drafts.clone());
            let in_turn = self
                .db
                .run_write(move |conn| ingest_in_turn(conn, &vault, &policy, &batch))
                .await?;
            if let Ok(outcomes) = in_turn {
                return Ok(outcomes);
            }
        }
        Err(SubjectError::Contended)
    }
}
