//! Periodic work, run by one runner: audit checkpoints, retention, key epochs, OpenDSR
//! callbacks, the SQLite WAL checkpoint, old copies of erased keys, rate-limit upkeep, the
//! consolidation of merged people.
//!
//! Every job gets the same treatment: its interval with up to a tenth more of random jitter (so
//! that several processes on one database do not run in step), a failure logged and tried again
//! at the next turn, metrics (`custodia_job_runs_total`, `custodia_job_duration_seconds`,
//! `custodia_job_last_success_timestamp_seconds`, by job), a wake-up for work that arrived
//! early ([`Jobs::wake`]), a run on demand that waits for its end ([`Jobs::run_now`], what tests
//! use instead of sleeping through an interval), and a clean stop ([`Jobs::stop`]): a run in
//! progress finishes, no new one starts.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::sync::{mpsc, oneshot, watch};

use crate::clock::Clock;

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ran {
    /// Its work is done until the next turn.
    Done,
    /// It stopped at a batch's bound with more waiting: it runs again at once.
    More,
    /// Its work is over for good (a one-time migration): the job ends.
    Finished,
}

/// Why a run failed, as it is logged (never with personal data).
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

type RunFuture = Pin<Box<dyn Future<Output = Result<Ran, Failure>> + Send>>;
type Work = Box<dyn Fn() -> RunFuture + Send + Sync>;

/// When a job runs.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    every: Duration,
    at_start: bool,
}

impl Schedule {
    /// Every `interval`, the first time one interval after start.
    pub(crate) fn every(interval: Duration) -> Schedule {
        Schedule {
            every: interval,
            at_start: false,
        }
    }

    /// At start, then every `interval`.
    pub(crate) fn at_start_then_every(interval: Duration) -> Schedule {
        Schedule {
            every: interval,
            at_start: true,
        }
    }
}

/// The runner's metrics.
#[derive(Clone)]
struct JobMetrics {
    runs: IntCounterVec,
    duration: HistogramVec,
    last_success: IntGaugeVec,
}

impl JobMetrics {
    fn new(registry: &Registry) -> JobMetrics {
        let runs = IntCounterVec::new(
            Opts::new("custodia_job_runs_total", "Runs of periodic jobs"),
            &["job", "outcome"],
        )
        .expect("metric options are valid");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "custodia_job_duration_seconds",
                "Time taken by one run of a periodic job",
            )
            .buckets(vec![0.001, 0.01, 0.1, 1.0, 10.0, 60.0, 600.0]),
            &["job"],
        )
        .expect("metric options are valid");
        let last_success = IntGaugeVec::new(
            Opts::new(
                "custodia_job_last_success_timestamp_seconds",
                "When a periodic job last ran without failing (Unix time)",
            ),
            &["job"],
        )
        .expect("metric options are valid");
        for metric in [
            Box::new(runs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(last_success.clone()),
        ] {
            if let Err(error) = registry.register(metric) {
                tracing::warn!(error = %error, "job metrics not registered");
            }
        }
        JobMetrics {
            runs,
            duration,
            last_success,
        }
    }
}

/// A request to a job's loop: run now, and say when done (if anyone waits).
type Trigger = Option<oneshot::Sender<()>>;

/// The runner. Clones share it.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

struct Inner {
    clock: Clock,
    metrics: JobMetrics,
    triggers: Mutex<HashMap<&'static str, mpsc::UnboundedSender<Trigger>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    stop: watch::Sender<bool>,
}

impl Jobs {
    /// A runner whose metrics are in `registry` and whose run times come from `clock`.
    pub fn new(registry: &Registry, clock: Clock) -> Jobs {
        Jobs {
            inner: Arc::new(Inner {
                clock,
                metrics: JobMetrics::new(registry),
                triggers: Mutex::default(),
                tasks: Mutex::default(),
                stop: watch::channel(false).0,
            }),
        }
    }

    /// Starts `work` on the current runtime under `name` (a metric label: a fixed word).
    pub(crate) fn start<F, Fut>(&self, name: &'static str, schedule: Schedule, work: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Ran, Failure>> + Send + 'static,
    {
        let (sender, receiver) = mpsc::unbounded_channel();
        if let Ok(mut triggers) = self.inner.triggers.lock() {
            triggers.insert(name, sender);
        }
        let work: Work = Box::new(move || Box::pin(work()));
        let task = tokio::spawn(run_job(self.inner.clone(), name, schedule, work, receiver));
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }

    /// Asks `name` to run soon (work arrived); returns at once. Unknown names are ignored.
    pub(crate) fn wake(&self, name: &str) {
        if let Some(sender) = self.sender(name) {
            let _ = sender.send(None);
        }
    }

    /// Runs `name` now and waits until that run (and any follow-up it asked for) has ended.
    /// `false` when no such job is running.
    #[cfg(any(test, feature = "test-support"))]
    pub async fn run_now(&self, name: &str) -> bool {
        let Some(sender) = self.sender(name) else {
            return false;
        };
        let (done, ended) = oneshot::channel();
        if sender.send(Some(done)).is_err() {
            return false;
        }
        ended.await.is_ok()
    }

    fn sender(&self, name: &str) -> Option<mpsc::UnboundedSender<Trigger>> {
        self.inner
            .triggers
            .lock()
            .ok()
            .and_then(|triggers| triggers.get(name).cloned())
    }

    /// Stops every job: a run in progress finishes (up to `patience`), none starts after.
    pub(crate) async fn stop(&self, patience: Duration) {
        self.inner.stop.send_replace(true);
        let tasks: Vec<_> = self
            .inner
            .tasks
            .lock()
            .map(|mut tasks| tasks.drain(..).collect())
            .unwrap_or_default();
        let all = futures_util::future::join_all(tasks);
        if tokio::time::timeout(patience, all).await.is_err() {
            tracing::warn!("periodic jobs still running at shutdown were left to the runtime");
        }
    }
}

/// `every` plus up to a tenth of it, at random.
fn jittered(every: Duration) -> Duration {
    use ring::rand::SecureRandom;
    let mut bytes = [0_u8; 2];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return every;
    }
    let fraction = f64::from(u16::from_le_bytes(bytes)) / f64::from(u16::MAX);
    every + every.mul_f64(fraction / 10.0)
}

async fn run_job(
    inner: Arc<Inner>,
    name: &'static str,
    schedule: Schedule,
    work: Work,
    mut triggers: mpsc::UnboundedReceiver<Trigger>,
) {
    let mut stop = inner.stop.subscribe();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut due_now = schedule.at_start;
    loop {
        if !due_now {
            tokio::select! {
                _ = tokio::time::sleep(jittered(schedule.every)) => {}
                trigger = triggers.recv() => match trigger {
                    Some(trigger) => waiting.extend(trigger),
                    None => return,
                },
                _ = stop.changed() => return,
            }
        }
        if *stop.borrow() {
            return;
        }
        // Everyone who asked before this run starts is answered when it ends.
        while let Ok(trigger) = triggers.try_recv() {
            waiting.extend(trigger);
        }
        let ran = run_once(&inner, name, &work).await;
        due_now = ran == Some(Ran::More);
        if !due_now {
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
        }
        if ran == Some(Ran::Finished) {
            // Later requests to run find the job gone.
            if let Ok(mut all) = inner.triggers.lock() {
                all.remove(name);
            }
            return;
        }
    }
}

/// One run, measured and logged; `None` when it failed.
async fn run_once(inner: &Inner, name: &'static str, work: &Work) -> Option<Ran> {
    let started = std::time::Instant::now();
    let result = work().await;
    let metrics = &inner.metrics;
    metrics
        .duration
        .with_label_values(&[name])
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(ran) => {
            metrics.runs.with_label_values(&[name, "ok"]).inc();
            metrics
                .last_success
                .with_label_values(&[name])
                .set(inner.clock.now().timestamp());
            Some(ran)
        }
        Err(error) => {
            metrics.runs.with_label_values(&[name, "failed"]).inc();
            tracing::warn!(job = name, error = %error, "a periodic job failed; it runs again at its next turn");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting(
        jobs: &Jobs,
        name: &'static str,
        schedule: Schedule,
        answer: impl Fn(usize) -> Result<Ran, Failure> + Send + Sync + 'static,
    ) -> Arc<AtomicUsize> {
        let runs = Arc::new(AtomicUsize::new(0));
        let counted = runs.clone();
        let answer = Arc::new(answer);
        jobs.start(name, schedule, move || {
            let (runs, answer) = (counted.clone(), answer.clone());
            async move { answer(runs.fetch_add(1, Ordering::SeqCst) + 1) }
        });
        runs
    }

    #[tokio::test]
    async fn run_now_waits_for_a_run_and_its_follow_ups_and_stop_ends_the_jobs() {
        let registry = Registry::new();
        let jobs = Jobs::new(&registry, Clock::system());
        let hour = Duration::from_secs(3600);
        // Three batches' worth of work, then done.
        let runs = counting(&jobs, "batches", Schedule::every(hour), |n| {
            Ok(if n < 3 { Ran::More } else { Ran::Done })
        });
        let failing = counting(&jobs, "failing", Schedule::every(hour), |_| {
            Err("the database is away".into())
        });
        assert!(jobs.run_now("batches").await);
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(jobs.run_now("failing").await);
        assert_eq!(failing.load(Ordering::SeqCst), 1);
        assert!(!jobs.run_now("unknown").await);

        let text = {
            let mut buffer = Vec::new();
            prometheus::Encoder::encode(
                &prometheus::TextEncoder::new(),
                &registry.gather(),
                &mut buffer,
            )
            .unwrap();
            String::from_utf8(buffer).unwrap()
        };
        assert!(text.contains(r#"custodia_job_runs_total{job="batches",outcome="ok"} 3"#));
        assert!(text.contains(r#"custodia_job_runs_total{job="failing",outcome="failed"} 1"#));

        jobs.stop(Duration::from_secs(5)).await;
        assert!(!jobs.run_now("batches").await, "a stopped job runs no more");
        assert_eq!(runs.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_job_that_finishes_is_gone_and_one_at_start_runs_unasked() {
        let jobs = Jobs::new(&Registry::new(), Clock::system());
        let hour = Duration::from_secs(3600);
        let once = counting(&jobs, "once", Schedule::at_start_then_every(hour), |_| {
            Ok(Ran::Finished)
        });
        for _ in 0..100 {
            if once.load(Ordering::SeqCst) == 1 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(once.load(Ordering::SeqCst), 1);
        assert!(!jobs.run_now("once").await);
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        let every = Duration::from_secs(100);
        for _ in 0..100 {
            let wait = jittered(every);
            assert!(
                wait >= every && wait <= Duration::from_secs(110),
                "{wait:?}"
            );
        }
    }
}
