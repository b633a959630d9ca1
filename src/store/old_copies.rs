//! Removing an erased key's old copies from the database files once the erasure has committed,
//! and the registry of this process's long read snapshots that may have to end for it.
//!
//! - **SQLite**: deleted cells are zeroed in place (`secure_delete`), but the WAL still holds
//!   page images from before the deletion. `wal_checkpoint(TRUNCATE)` copies the WAL back and
//!   truncates it to nothing, which it can do only when no reader holds a snapshot that still
//!   needs it; it then answers `busy` (a row, not an error). So the checkpoint is retried, with
//!   a short busy timeout each time (while it waits, new writers wait too), until it reports
//!   that it held.
//! - **PostgreSQL**: the deleted row stays in its page, as a dead tuple and, after a plain
//!   `VACUUM`, as bytes in free space. The partition of `data_keys` that held it is rewritten
//!   (`VACUUM FULL`: a new file with the live rows only), and `subject_requests` when requests
//!   naming the person lost their keys, once no transaction that began before the erasure still
//!   runs (it could still see the row, so the rewrite would keep it).
//!
//! Readers that hold an older snapshot are waited for; after [`PATIENCE`] this process's own
//! long readers (exports) that began before the erasure are ended, and on PostgreSQL after
//! twice that other sessions' transactions too (`pg_terminate_backend`; replication senders are
//! never ended, only waited for). Readers in other processes on SQLite can only be waited for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use super::erasure::ErasedKey;
use super::{DbConnection, StoreError};

/// How long readers that began before an erasure are waited for before they are ended.
pub const PATIENCE: Duration = Duration::from_secs(5);
/// How long an erasure's answer waits at most for its old copies to be removed.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// The busy timeout of one SQLite checkpoint attempt (new writers wait that long at most).
const CHECKPOINT_BUSY_MS: u32 = 50;
/// The pause between attempts.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// This process's long read snapshots (exports), so that an erasure can end those that began
/// before it.
#[derive(Debug, Default)]
pub struct LongReaders {
    next: AtomicU64,
    open: Mutex<HashMap<u64, (Instant, tokio::sync::watch::Sender<bool>)>>,
}

/// One registered long reader; it is unregistered when dropped.
#[derive(Debug)]
pub struct LongReader {
    id: u64,
    readers: Arc<LongReaders>,
    ended: tokio::sync::watch::Receiver<bool>,
}

impl LongReader {
    /// Resolves when the reader is asked to end (an erasure needs its snapshot gone).
    pub(crate) async fn ended(&self) {
        let mut ended = self.ended.clone();
        let _ = ended.wait_for(|ended| *ended).await;
    }

    /// Whether the reader was asked to end.
    pub(crate) fn is_ended(&self) -> bool {
        *self.ended.borrow()
    }
}

impl Drop for LongReader {
    fn drop(&mut self) {
        self.readers
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

impl LongReaders {
    /// Registers a reader that is about to take its snapshot.
    pub(crate) fn register(self: &Arc<Self>) -> LongReader {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (sender, ended) = tokio::sync::watch::channel(false);
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (Instant::now(), sender));
        LongReader {
            id,
            readers: self.clone(),
            ended,
        }
    }

    /// Asks every reader registered before `before` to end; returns how many were asked.
    pub(crate) fn end_started_before(&self, before: Instant) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut asked = 0;
        for (started, ended) in open.values() {
            if *started <= before {
                let _ = ended.send(true);
                asked += 1;
            }
        }
        asked
    }
}

#[derive(QueryableByName)]
struct CheckpointResult {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    busy: i32,
}

#[derive(QueryableByName)]
struct Holder {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    client: bool,
}

#[derive(QueryableByName)]
struct Now {
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    now: chrono::DateTime<chrono::Utc>,
}

/// Whether an attempt removed the old copies.
enum Attempt {
    Done,
    /// Readers with older snapshots hold them (PostgreSQL: their process ids, and whether each
    /// is a client session that may be ended).
    Blocked(Vec<(i32, bool)>),
}

/// Removes what the database files still hold of the erased keys' rows, waiting for (and after
/// [`PATIENCE`] ending) readers with older snapshots; `Ok(false)` when it did not hold within
/// `deadline`.
pub(super) fn remove(
    conn: &mut DbConnection,
    erased: &[ErasedKey],
    readers: &LongReaders,
    deadline: Duration,
) -> Result<bool, StoreError> {
    let erased_at = Instant::now();
    // PostgreSQL: transactions that began before this moment may still see the deleted rows.
    let committed_at = match conn {
        DbConnection::Postgresql(pg) => Some(
            diesel::sql_query("SELECT clock_timestamp() AS now")
                .get_result::<Now>(pg)?
                .now,
        ),
        DbConnection::Sqlite(_) => None,
    };
    let mut ended_ours = false;
    let mut warned = false;
    loop {
        let attempt = match conn {
            DbConnection::Sqlite(sqlite) => {
                sqlite.batch_execute(&format!("PRAGMA busy_timeout = {CHECKPOINT_BUSY_MS}"))?;
                let result = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .get_result::<CheckpointResult>(sqlite);
                sqlite.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}",
                    super::SQLITE_BUSY_TIMEOUT_MS
                ))?;
                match result {
                    Ok(row) if row.busy == 0 => Attempt::Done,
                    Ok(_) => Attempt::Blocked(Vec::new()),
                    // SQLITE_BUSY as an error: another checkpoint or writer held on.
                    Err(diesel::result::Error::DatabaseError(_, info))
                        if info.message().contains("locked") || info.message().contains("busy") =>
                    {
                        Attempt::Blocked(Vec::new())
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            DbConnection::Postgresql(pg) => {
                let holders: Vec<Holder> = diesel::sql_query(
                    "SELECT pid, backend_type = 'client backend' AS client FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                       AND backend_xmin IS NOT NULL \
                       AND (xact_start IS NULL OR xact_start < $1)",
                )
                .bind::<diesel::sql_types::Timestamptz, _>(committed_at.unwrap_or_default())
                .load(pg)?;
                if holders.is_empty() {
                    let mut done = true;
                    let mut tables: Vec<&str> = erased
                        .iter()
                        .flat_map(|key| key.rewrite.iter().map(String::as_str))
                        .collect();
                    tables.sort_unstable();
                    tables.dedup();
                    for table in tables {
                        // Names come from the database itself (`tableoid::regclass`) or from
                        // this code, never from input; quote them anyway.
                        let name = table.replace('"', "\"\"");
                        // VACUUM must be a statement of its own (several statements in one call
                        // are one implicit transaction, where VACUUM cannot run).
                        pg.batch_execute("SET lock_timeout = '2s'")?;
                        let vacuumed = pg.batch_execute(&format!("VACUUM FULL \"{name}\""));
                        pg.batch_execute("RESET lock_timeout")?;
                        if let Err(error) = vacuumed {
                            if !warned {
                                tracing::warn!(error = %error, "could not rewrite a data key partition after an erasure; trying again");
                                warned = true;
                            }
                            done = false;
                        }
                    }
                    if done {
                        Attempt::Done
                    } else {
                        Attempt::Blocked(Vec::new())
                    }
                } else {
                    Attempt::Blocked(
                        holders
                            .into_iter()
                            .map(|holder| (holder.pid, holder.client))
                            .collect(),
                    )
                }
            }
        };
        let holders = match attempt {
            Attempt::Done => return Ok(true),
            Attempt::Blocked(holders) => holders,
        };
        let waited = erased_at.elapsed();
        if waited >= deadline {
            return Ok(false);
        }
        if waited >= PATIENCE && !ended_ours {
            let asked = readers.end_started_before(erased_at);
            if asked > 0 {
                tracing::warn!(
                    readers = asked,
                    "ended exports that held a snapshot from before an erasure"
                );
            }
            ended_ours = true;
        }
        if waited >= PATIENCE * 2 {
            if let DbConnection::Postgresql(pg) = conn {
                for (pid, client) in holders {
                    if client {
                        tracing::warn!(
                            pid,
                            "ending a session whose transaction began before an erasure"
                        );
                        let _ = diesel::sql_query("SELECT pg_terminate_backend($1)")
                            .bind::<diesel::sql_types::Integer, _>(pid)
                            .execute(pg);
                    }
                }
            }
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}
