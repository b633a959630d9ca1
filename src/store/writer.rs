//! The SQLite writer: one thread owning the one writing connection, committing the write
//! requests that are waiting together (group commit).
//!
//! SQLite has one writer at a time. Rather than let writers collide on the database lock and
//! back off, they queue here. The thread takes every request waiting (up to a bound), runs each
//! in its own savepoint inside one `BEGIN IMMEDIATE` transaction, commits once, and only then
//! answers: a request's result is never visible before its commit. One request's failure rolls
//! back its savepoint only; a failed commit fails them all.

use std::sync::mpsc::{Receiver, Sender};

use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::Connection;

use super::{ConnectionManager, DbConnection, StoreError};

/// The most requests committed together.
const MAX_GROUP: usize = 128;

/// What a job does once it knows whether its group committed (`Err` carries why not).
pub(super) type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;

/// A queued write: runs in a savepoint, then learns whether the group committed.
pub(super) trait WriteJob: Send {
    /// Runs the work, in a savepoint of its own when `isolate`; returns whether it succeeded
    /// and what to do once the commit's outcome is known.
    fn run(self: Box<Self>, conn: &mut DbConnection, isolate: bool) -> (bool, Finish);
    /// The work never ran: the writer could not open a transaction.
    fn fail(self: Box<Self>, reason: String);
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
        let finish = Box::new(move |committed: Result<(), String>| {
            let outcome = match committed {
                Ok(()) => result,
                Err(reason) => Err(E::from(StoreError::GroupCommit(reason))),
            };
            let _ = reply.send(outcome);
        });
        (succeeded, finish)
    }

    fn fail(self: Box<Self>, reason: String) {
        let _ = self
            .reply
            .send(Err(E::from(StoreError::GroupCommit(reason))));
    }
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
            match manager.establish() {
                Ok(conn) => connection = Some(conn),
                Err(error) => {
                    for job in jobs {
                        job.fail(error.to_string());
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
                job.fail(error.to_string());
            }
            connection = None;
            continue;
        }
        // A job alone in its group needs no savepoint of its own (savepoints make SQLite keep
        // a copy of every page they touch): if it fails, the whole transaction rolls back.
        let isolate = jobs.len() > 1;
        let mut all_succeeded = true;
        let mut finishers = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (succeeded, finish) = job.run(conn, isolate);
            all_succeeded &= succeeded;
            finishers.push(finish);
        }
        let DbConnection::Sqlite(sqlite) = conn else {
            unreachable!("the group writer only serves SQLite");
        };
        let committed = if isolate || all_succeeded {
            AnsiTransactionManager::commit_transaction(sqlite).map_err(|error| {
                let _ = AnsiTransactionManager::rollback_transaction(sqlite);
                error.to_string()
            })
        } else {
            // The lone job failed; its result is already an error, which is what it gets.
            AnsiTransactionManager::rollback_transaction(sqlite).map_err(|error| error.to_string())
        };
        if committed.is_err() {
            connection = None;
        }
        for finish in finishers {
            finish(committed.clone());
        }
    }
}
