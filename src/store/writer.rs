//! The SQLite writer: one thread owning the one writing connection, committing the write
//! requests that are waiting together (group commit).
//!
//! SQLite has one writer at a time. Rather than let writers collide on the database lock and
//! back off, they queue here. The thread takes every request waiting (up to a bound), runs each
//! in its own savepoint inside one `BEGIN IMMEDIATE` transaction, commits once, and only then
//! answers: a request's result is never visible before its commit. One request's failure rolls
//! back its savepoint only; a failed commit fails them all.

use std::cell::Cell;
use std::sync::mpsc::{Receiver, Sender};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::prelude::*;
use diesel::sql_types::BigInt;

use super::{ConnectionManager, DbConnection, StoreError};

/// The most requests committed together.
const MAX_GROUP: usize = 128;

/// What a job does once it knows whether its group committed (`Err` carries why not).
pub(super) type Finish = Box<dyn FnOnce(Result<(), GroupFailed>) + Send>;

/// Why a group did not commit, as each of its requests learns it.
#[derive(Debug, Clone)]
pub(crate) enum GroupFailed {
    /// Another process held the write lock past the busy timeout: the database is busy, and
    /// the request may be retried (503).
    Locked,
    /// Anything else (500).
    Other(String),
}

impl GroupFailed {
    fn of(error: &diesel::result::Error) -> GroupFailed {
        if super::is_locked_by_another_process(error) {
            GroupFailed::Locked
        } else {
            GroupFailed::Other(error.to_string())
        }
    }

    fn into_error(self) -> StoreError {
        match self {
            GroupFailed::Locked => StoreError::Locked,
            GroupFailed::Other(reason) => StoreError::GroupCommit(reason),
        }
    }
}

/// A queued write: runs in a savepoint, then learns whether the group committed.
pub(super) trait WriteJob: Send {
    /// Runs the work, in a savepoint of its own when `isolate`; returns whether it succeeded
    /// and what to do once the commit's outcome is known.
    fn run(self: Box<Self>, conn: &mut DbConnection, isolate: bool) -> (bool, Finish);
    /// The work never ran: the writer could not open a transaction.
    fn fail(self: Box<Self>, reason: GroupFailed);
}

/// A write and the channel its result goes back on.
pub(super) struct Job<T, E, F> {
    pub work: F,
    pub reply: tokio::sync::oneshot::Sender<Result<T, E>>,
}

enum SavepointError<E> {
    Work(E),
    Database(diesel::result::Error),
}

impl<E> From<diesel::result::Error> for SavepointError<E> {
    fn from(error: diesel::result::Error) -> Self {
        SavepointError::Database(error)
    }
}

impl<T, E, F> WriteJob for Job<T, E, F>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<StoreError> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut DbConnection, isolate: bool) -> (bool, Finish) {
        let Job { work, reply } = *self;
        let result = if isolate {
            match conn.transaction(|conn| work(conn).map_err(SavepointError::Work)) {
                Ok(value) => Ok(value),
                Err(SavepointError::Work(error)) => Err(error),
                Err(SavepointError::Database(error)) => Err(E::from(StoreError::from(error))),
            }
        } else {
            work(conn)
        };
        let succeeded = result.is_ok();
        let finish = Box::new(move |committed: Result<(), GroupFailed>| {
            let outcome = match committed {
                Ok(()) => result,
                Err(reason) => Err(E::from(reason.into_error())),
            };
            let _ = reply.send(outcome);
        });
        (succeeded, finish)
    }

    fn fail(self: Box<Self>, reason: GroupFailed) {
        let _ = self.reply.send(Err(E::from(reason.into_error())));
    }
}

thread_local! {
    /// On the writer thread, while a request runs alone in the writer's transaction: the
    /// connection's `total_changes()` when that transaction began.
    static LONE_SINCE: Cell<Option<i64>> = const { Cell::new(None) };
}

fn total_changes(conn: &mut SqliteConnection) -> QueryResult<i64> {
    diesel::select(diesel::dsl::sql::<BigInt>("total_changes()")).get_result(conn)
}

/// Whether a nested write transaction on this connection may do without a savepoint: it runs
/// on the writer thread, for a request alone in the writer's transaction, outside any savepoint
/// of its own, and nothing has been written in the transaction yet. Then undoing the whole
/// transaction undoes exactly this work.
///
/// Why it matters: SQLite copies every page a savepoint's statements change into the statement
/// journal, and ending each statement inside it walks that journal from the start; a batch of
/// new people (thousands of pages) spent more time there than in its inserts.
pub(super) fn lone_write(conn: &mut DbConnection) -> QueryResult<bool> {
    let (Some(since), DbConnection::Sqlite(conn)) = (LONE_SINCE.get(), conn) else {
        return Ok(false);
    };
    let depth = AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()?
        .map(u32::from);
    Ok(depth == Some(1) && total_changes(conn)? == since)
}

/// Runs `work` in the lone request's transaction; if it fails, rolls the transaction back and
/// begins a new one, so the writer's commit that follows commits nothing of it (as a savepoint's
/// rollback would have).
pub(super) fn undo_on_error<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    let result = work(conn);
    if let (Err(_), DbConnection::Sqlite(sqlite)) = (&result, conn) {
        // From here on the request has written nothing; later writes of it take savepoints.
        AnsiTransactionManager::rollback_transaction(sqlite).map_err(super::failed)?;
        AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")
            .map_err(super::failed)?;
        LONE_SINCE.set(total_changes(sqlite).ok());
    }
    result
}

/// Starts the writer thread; it ends when every sender is dropped.
pub(super) fn spawn_writer(manager: ConnectionManager) -> Sender<Box<dyn WriteJob>> {
    let (sender, receiver) = std::sync::mpsc::channel::<Box<dyn WriteJob>>();
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || writer_loop(&manager, &receiver))
        .expect("the SQLite writer thread starts");
    sender
}

fn writer_loop(manager: &ConnectionManager, receiver: &Receiver<Box<dyn WriteJob>>) {
    let mut connection: Option<DbConnection> = None;
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if connection.is_none() {
            match manager.establish_writer() {
                Ok(conn) => connection = Some(conn),
                Err(error) => {
                    for job in jobs {
                        job.fail(GroupFailed::Other(error.to_string()));
                    }
                    continue;
                }
            }
        }
        let conn = connection.as_mut().expect("connected above");
        let DbConnection::Sqlite(sqlite) = conn else {
            unreachable!("the group writer only serves SQLite");
        };
        if let Err(error) = AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")
        {
            for job in jobs {
                job.fail(GroupFailed::of(&error));
            }
            connection = None;
            continue;
        }
        // A job alone in its group needs no savepoint of its own (savepoints make SQLite keep
        // a copy of every page they touch): if it fails, the whole transaction rolls back.
        let isolate = jobs.len() > 1;
        if !isolate {
            match total_changes(sqlite) {
                Ok(changes) => LONE_SINCE.set(Some(changes)),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the writer's change count");
                }
            }
        }
        let mut all_succeeded = true;
        let mut finishers = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (succeeded, finish) = job.run(conn, isolate);
            all_succeeded &= succeeded;
            finishers.push(finish);
        }
        LONE_SINCE.set(None);
        let DbConnection::Sqlite(sqlite) = conn else {
            unreachable!("the group writer only serves SQLite");
        };
        let committed = if isolate || all_succeeded {
            AnsiTransactionManager::commit_transaction(sqlite).map_err(|error| {
                let _ = AnsiTransactionManager::rollback_transaction(sqlite);
                GroupFailed::of(&error)
            })
        } else {
            // The lone job failed; its result is already an error, which is what it gets.
            AnsiTransactionManager::rollback_transaction(sqlite)
                .map_err(|error| GroupFailed::of(&error))
        };
        if committed.is_err() {
            connection = None;
        }
        for finish in finishers {
            finish(committed.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    //! A request alone in the writer's transaction runs without a savepoint of its own; what it
    //! wrote must still be undone exactly as a savepoint's rollback would undo it.

    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    use crate::store::{write_transaction, Database, DatabaseUrl, DbConnection, StoreError};

    #[derive(Debug)]
    struct Failed;

    #[derive(Debug)]
    enum Error {
        Store,
        Failed,
    }

    impl From<StoreError> for Error {
        fn from(_: StoreError) -> Self {
            Error::Store
        }
    }

    impl From<diesel::result::Error> for Error {
        fn from(_: diesel::result::Error) -> Self {
            Error::Store
        }
    }

    impl From<StoreError> for Failed {
        fn from(error: StoreError) -> Self {
            panic!("unexpected database error: {error}")
        }
    }

    fn add(conn: &mut DbConnection, value: &str) -> Result<(), StoreError> {
        diesel::sql_query("INSERT INTO scratch (value) VALUES (?)")
            .bind::<diesel::sql_types::Text, _>(value)
            .execute(conn)
            .map(drop)
            .map_err(StoreError::from)
    }

    /// Writes `value`, then fails.
    fn add_then_fail(conn: &mut DbConnection, value: &str) -> Result<(), Failed> {
        write_transaction(conn, |conn| {
            add(conn, value)?;
            Err::<(), Failed>(Failed)
        })
    }

    async fn stored(db: &Database) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            value: String,
        }
        db.run(|conn| {
            diesel::sql_query("SELECT value FROM scratch ORDER BY value")
                .load::<Row>(conn)
                .map_err(|_| Error::Store)
        })
        .await
        .expect("reads")
        .into_iter()
        .map(|row| row.value)
        .collect()
    }

    async fn database(dir: &tempfile::TempDir) -> Database {
        let db = Database::connect(&DatabaseUrl::Sqlite(dir.path().join("t.db")), 4);
        db.run_write(|conn| {
            conn.batch_execute("CREATE TABLE scratch (value TEXT NOT NULL)")
                .map_err(Error::from)
        })
        .await
        .expect("creates the table");
        db
    }

    #[tokio::test]
    async fn a_failed_lone_write_leaves_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir).await;
        let answer = db
            .run_write(|conn| add_then_fail(conn, "a").map_err(|_| Error::Failed))
            .await;
        assert!(matches!(answer, Err(Error::Failed)), "{answer:?}");
        assert!(stored(&db).await.is_empty());
    }

    #[tokio::test]
    async fn a_lone_write_that_outlives_a_failed_transaction_keeps_only_what_came_after() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir).await;
        db.run_write(|conn| {
            assert!(add_then_fail(conn, "a").is_err());
            // Its writes are gone at once, not only at the end of the request.
            let count: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "(SELECT count(*) FROM scratch)",
            ))
            .get_result(conn)?;
            assert_eq!(count, 0);
            write_transaction(conn, |conn| add(conn, "b"))?;
            assert!(add_then_fail(conn, "c").is_err());
            Ok::<_, Error>(())
        })
        .await
        .expect("the request succeeds");
        assert_eq!(stored(&db).await, ["b"]);
    }

    #[tokio::test]
    async fn a_failed_transaction_after_other_writes_undoes_only_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir).await;
        db.run_write(|conn| {
            add(conn, "a")?;
            assert!(add_then_fail(conn, "b").is_err());
            Ok::<_, Error>(())
        })
        .await
        .expect("the request succeeds");
        assert_eq!(stored(&db).await, ["a"]);
    }

    #[tokio::test]
    async fn a_failed_inner_transaction_undoes_only_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir).await;
        db.run_write(|conn| {
            write_transaction(conn, |conn| {
                add(conn, "a")?;
                assert!(add_then_fail(conn, "b").is_err());
                Ok::<_, Error>(())
            })
        })
        .await
        .expect("the request succeeds");
        assert_eq!(stored(&db).await, ["a"]);
    }

    #[tokio::test]
    async fn requests_grouped_together_fail_alone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = database(&dir).await;
        let writes = (0..64).map(|n| {
            let db = db.clone();
            async move {
                let value = format!("v{n:02}");
                if n % 2 == 0 {
                    db.run_write(move |conn| add_then_fail(conn, &value).map_err(|_| Error::Failed))
                        .await
                } else {
                    db.run_write(move |conn| {
                        write_transaction(conn, |conn| add(conn, &value)).map_err(Error::from)
                    })
                    .await
                }
            }
        });
        let answers = futures_util::future::join_all(writes).await;
        for (n, answer) in answers.iter().enumerate() {
            assert_eq!(answer.is_ok(), n % 2 == 1, "request {n}: {answer:?}");
        }
        let expected: Vec<String> = (0..64)
            .filter(|n| n % 2 == 1)
            .map(|n| format!("v{n:02}"))
            .collect();
        assert_eq!(stored(&db).await, expected);
    }
}
