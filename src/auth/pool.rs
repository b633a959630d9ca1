//! The threads API keys are checked on. Each check is an argon2id hash (~25 ms of one core,
//! 19 MiB of memory), so checks run on a few dedicated threads of their own — never on the
//! database's connections or the shared blocking pool — behind a bounded queue:
//!
//! - a flood of bad keys cannot take database connections or threads from other requests;
//! - memory is bounded by the number of threads: each keeps one argon2 working memory and
//!   reuses it (`api_key::argon2_matches`). Allocating it per check left a 19 MiB block behind
//!   each time (922 MiB measured under 200 concurrent bad keys; still 272 MiB with the checks on
//!   this pool but allocating per check; 83 MiB with both);
//! - the checker threads run at a lower scheduling priority (nice 10): under a flood they take
//!   the processor only when request handling leaves it idle, so the flood slows other key
//!   checks, not reads and writes (docs/benchmarks.md, "Token-exchange floods").

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce() + Send>;

/// How many API keys may be checked (argon2id: ~25 ms of one core and 19 MiB each) at once:
/// one per core, on threads of their own (`auth::KeyCheckPool`).
pub fn key_check_threads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// How many key checks may wait for a thread; past that, 503 `busy` at once. With the
/// per-address limit (bursts of 40) this is several addresses' bursts, about a second of work
/// per core.
pub const KEY_CHECKS_QUEUED: usize = 128;

/// A fixed set of threads that check API keys, with a bounded queue in front.
#[derive(Clone)]
pub struct KeyCheckPool {
    queue: SyncSender<Job>,
}

/// Lowers the calling thread's scheduling priority to nice 10. On Linux the nice value is per
/// thread.
#[cfg(target_os = "linux")]
fn yield_to_requests() {
    // SAFETY: setpriority only changes a scheduling attribute; with PRIO_PROCESS and who = 0 it
    // applies to the calling thread on Linux.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if result != 0 {
        tracing::debug!("could not lower the key-check thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn yield_to_requests() {}

/// The queue is full: the caller should answer "busy".
#[derive(Debug, thiserror::Error)]
#[error("too many API key checks are waiting")]
pub struct PoolBusy;

impl KeyCheckPool {
    /// Starts `threads` checker threads behind a queue of `queue` waiting checks.
    pub(crate) fn start(threads: usize, queue: usize) -> KeyCheckPool {
        let (sender, receiver) = sync_channel::<Job>(queue);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads.max(1) {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("key-check-{index}"))
                .spawn(move || {
                    yield_to_requests();
                    loop {
                        let job = match receiver.lock() {
                            Ok(receiver) => receiver.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                })
                .expect("a key-check thread starts");
        }
        KeyCheckPool { queue: sender }
    }

    /// Runs `check` on a checker thread and returns its result; [`PoolBusy`] at once when the
    /// queue is full.
    pub async fn run<T: Send + 'static>(
        &self,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PoolBusy> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(check());
        });
        match self.queue.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => return Err(PoolBusy),
        }
        result.await.map_err(|_| PoolBusy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checks_run_on_the_pool_and_a_full_queue_is_busy() {
        let pool = KeyCheckPool::start(1, 1);
        assert_eq!(pool.run(|| 2 + 2).await.unwrap(), 4);
        let name = pool
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("key-check-0"));
        // One thread busy, one job waiting: the next is refused at once.
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || blocked.recv().ok()).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let second = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| 1).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(matches!(pool.run(|| 3).await, Err(PoolBusy)));
        release.send(()).unwrap();
        assert!(first.await.unwrap().is_ok());
        assert_eq!(second.await.unwrap().unwrap(), 1);
    }
}
