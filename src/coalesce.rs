//! Coalescing: concurrent small requests of one kind are stored together, in one transaction.
//!
//! Requests wait in a queue; a task takes every request waiting (up to a bound), hands their
//! items to one store call, and answers each request with its own results. Nothing waits on a
//! timer: under light load a group is one request; under load groups grow, and each item costs
//! about what it costs in a batch (one commit, one round of lookups, for the whole group). Two
//! groups are stored at once: on PostgreSQL on separate connections; on SQLite they meet at the
//! single writer, which commits them together.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

/// The error of a group that failed as a whole (it failed to commit): every request of the
/// group gets it. Implemented by the errors of the write paths that coalesce.
pub trait GroupError: Send + 'static + Sized {
    /// The same failure, for another request of the group (the first gets the original).
    fn share(&self) -> Self;
    /// The error of a request whose queue has stopped (the process is shutting down).
    fn queue_stopped() -> Self;
}

/// How many groups are stored at once. Two: one is prepared while the other commits. More
/// only made groups smaller: every write transaction ends by appending to the audit chain,
/// whose head row serializes commits, so fewer, larger groups commit more per lock (measured
/// in docs/benchmarks.md, "Audit log cost").
const GROUPS_IN_FLIGHT: usize = 2;

type Reply<Out, E> = oneshot::Sender<Result<Vec<Out>, E>>;

struct Pending<In, Out, E> {
    items: Vec<In>,
    reply: Reply<Out, E>,
}

/// A queue that stores the items of concurrent requests together.
pub struct Coalescer<In, Out, E> {
    sender: mpsc::UnboundedSender<Pending<In, Out, E>>,
}

impl<In: Send + 'static, Out: Send + 'static, E: GroupError> Coalescer<In, Out, E> {
    /// Starts the queue's task on the current runtime. `store` gets every item of a group, in
    /// request order, and must return one result per item, in the same order.
    pub(crate) fn start<F, Fut>(max_items: usize, store: F) -> Coalescer<In, Out, E>
    where
        F: Fn(Vec<In>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Out>, E>> + Send + 'static,
    {
        let (sender, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(Arc::new(store), receiver, max_items));
        Coalescer { sender }
    }

    /// Queues a request's items and waits for their results.
    pub(crate) async fn submit(&self, items: Vec<In>) -> Result<Vec<Out>, E> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send(Pending { items, reply })
            .map_err(|_| E::queue_stopped())?;
        answer.await.map_err(|_| E::queue_stopped())?
    }
}

async fn run<In, Out, E, F, Fut>(
    store: Arc<F>,
    mut receiver: mpsc::UnboundedReceiver<Pending<In, Out, E>>,
    max_items: usize,
) where
    In: Send + 'static,
    Out: Send + 'static,
    E: GroupError,
    F: Fn(Vec<In>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<Out>, E>> + Send + 'static,
{
    let in_flight = Arc::new(tokio::sync::Semaphore::new(GROUPS_IN_FLIGHT));
    while let Some(first) = receiver.recv().await {
        // Wait for a free slot before taking the group, so it holds everything queued by then.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut group = vec![first];
        let mut size = group[0].items.len();
        while size < max_items {
            match receiver.try_recv() {
                Ok(pending) => {
                    size += pending.items.len();
                    group.push(pending);
                }
                Err(_) => break,
            }
        }
        let mut lengths = Vec::with_capacity(group.len());
        let mut replies = Vec::with_capacity(group.len());
        let mut items = Vec::with_capacity(size);
        for pending in group {
            lengths.push(pending.items.len());
            replies.push(pending.reply);
            items.extend(pending.items);
        }
        let store = store.clone();
        tokio::spawn(async move {
            let result = store(items).await;
            drop(permit);
            answer_group(result, lengths, replies);
        });
    }
}

/// Hands each request of a group its own results, or the group's error.
fn answer_group<Out, E: GroupError>(
    result: Result<Vec<Out>, E>,
    lengths: Vec<usize>,
    replies: Vec<Reply<Out, E>>,
) {
    match result {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for (length, reply) in lengths.into_iter().zip(replies) {
                let _ = reply.send(Ok(outcomes.by_ref().take(length).collect()));
            }
        }
        Err(error) => {
            let mut replies = replies.into_iter();
            let first = replies.next();
            for reply in replies {
                let _ = reply.send(Err(error.share()));
            }
            if let Some(reply) = first {
                let _ = reply.send(Err(error));
            }
        }
    }
}
