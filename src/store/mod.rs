//! The only place that speaks SQL: the connection enum over both backends, the pool,
//! migrations, and one module per table group.
//!
//! Queries are written once against [`DbConnection`] with portable SQL types. Where a backend
//! needs its own SQL there is one explicit `match` on the connection with a comment saying why.

pub mod api_keys;
pub mod audit;
pub mod bulk;
pub mod consents;
pub mod erasure;
pub mod export;
pub mod holds;
pub mod insights;
pub mod interactions;
pub mod keys;
pub mod legal_basis;
pub mod links;
pub mod old_copies;
pub mod opendsr;
pub mod population_feed;
pub mod reports;
pub mod requests;
pub mod retention;
pub mod schema;
pub mod segments;
pub mod subjects;
mod writer;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, R2D2Connection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

/// Migrations for SQLite (`migrations/sqlite`), embedded in the binary.
pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
/// Migrations for PostgreSQL (`migrations/postgres`, same names), embedded in the binary.
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// How long a request waits for a pooled connection before the database counts as unavailable.
const POOL_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// The WAL size, in pages, at which a committing connection checkpoints itself (a backstop:
/// servers checkpoint in the background long before).
const SQLITE_AUTOCHECKPOINT_PAGES: u32 = 50_000;
/// How often a server's periodic job checkpoints the SQLite WAL (small, frequent
/// checkpoints keep each one short: the writer's tail latency follows their size; measured
/// p99 of first-contact writes at saturation 152 ms at 1 s, 50 ms at 100 ms, 35 ms at 25 ms).
pub const SQLITE_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(25);
/// How long SQLite waits for another writer's lock before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;
/// An arbitrary, fixed key for the PostgreSQL advisory lock that serializes migrations
/// between processes sharing one database.
const MIGRATION_LOCK_KEY: i64 = 0x6375_7374_6f64_6961; // "custodia"

/// The most values one `IN (…)` list binds; longer lists are split.
pub const MAX_IN_LIST: usize = 900;
/// The most rows one multi-row upsert of consent standings carries on PostgreSQL.
pub const MAX_ROWS_PER_INSERT: usize = 500;

/// Inserts many rows. diesel's `MultiConnection` cannot batch-insert (SQLite has no `DEFAULT`
/// keyword), so this is one of the places where each backend gets its own code (the row type
/// declares its columns with [`bulk::insert_columns!`]). One row: one fixed single-row
/// statement per row type ([`bulk::RowInsert`], found in diesel's statement cache by type).
/// More rows: on SQLite that statement once per row, with no savepoint
/// ([`atomically_on_sqlite`]: no round trip makes a statement per row cost more there); on
/// PostgreSQL one statement of column arrays, whatever their number ([`bulk`]).
macro_rules! insert_all {
    ($conn:expr, $rows:expr) => {{
        match (&mut *$conn, &$rows[..]) {
            (_, []) => {}
            ($crate::store::DbConnection::Sqlite(sqlite), [row]) => {
                diesel::RunQueryDsl::execute($crate::store::bulk::RowInsert(row), sqlite)?;
            }
            ($crate::store::DbConnection::Postgresql(pg), [row]) => {
                diesel::RunQueryDsl::execute($crate::store::bulk::RowInsert(row), pg)?;
            }
            ($crate::store::DbConnection::Postgresql(pg), rows) => {
                $crate::store::bulk::PgColumns::insert_columns(pg, rows)?;
            }
            ($crate::store::DbConnection::Sqlite(sqlite), rows) => {
                $crate::store::atomically_on_sqlite(sqlite, |sqlite| {
                    for row in rows {
                        diesel::RunQueryDsl::execute($crate::store::bulk::RowInsert(row), sqlite)?;
                    }
                    Ok(())
                })?;
            }
        }
    }};
}
pub(crate) use insert_all;

/// Runs `load` over `keys` in chunks of [`MAX_IN_LIST`] (each chunk binds one `IN` list) and
/// concatenates the rows.
pub(crate) fn load_chunked<'k, T>(
    keys: &[&'k str],
    mut load: impl FnMut(&[&'k str]) -> diesel::QueryResult<Vec<T>>,
) -> Result<Vec<T>, StoreError> {
    let mut rows = Vec::new();
    for chunk in keys.chunks(MAX_IN_LIST) {
        rows.extend(load(chunk)?);
    }
    Ok(rows)
}

/// Runs `rows` (one statement per row) as one unit on SQLite: inside the caller's transaction
/// when there is one (a failed row fails the caller's work, which then rolls back whole; every
/// caller of [`insert_all!`] propagates its error), otherwise in a transaction of its own.
///
/// Not diesel's own batch insert: for derived `Insertable` rows (every field may be a default)
/// it runs one statement per row anyway, inside a savepoint, and every page a statement touches
/// inside a savepoint is first copied to the savepoint's journal (a third of an import's time).
/// Nor one multi-row `INSERT`: a statement that writes several rows keeps a statement journal
/// for the same reason.
pub(crate) fn atomically_on_sqlite(
    sqlite: &mut diesel::SqliteConnection,
    rows: impl FnOnce(&mut diesel::SqliteConnection) -> QueryResult<()>,
) -> QueryResult<()> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let depth =
        AnsiTransactionManager::transaction_manager_status_mut(sqlite).transaction_depth()?;
    if depth.is_some() {
        rows(sqlite)
    } else {
        sqlite.transaction(rows)
    }
}

/// One connection to either backend.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    /// A PostgreSQL connection (production).
    Postgresql(diesel::PgConnection),
    /// An SQLite connection (the embedded default).
    Sqlite(diesel::SqliteConnection),
}

/// A pool of connections to the configured database.
pub type DbPool = r2d2::Pool<ConnectionManager>;

/// Errors from the storage layer. Messages never contain personal data: queries bind values
/// as parameters, and diesel's errors do not echo them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had from the pool in time (the database is down or saturated).
    #[error("the database is unavailable: {0}")]
    Unavailable(#[from] r2d2::PoolError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A connection could not be established.
    #[error("could not connect to the database: {0}")]
    Connection(#[from] diesel::ConnectionError),
    /// Migrations failed.
    #[error("database migration failed: {0}")]
    Migration(String),
    /// The group of writes this one was committed with failed to commit.
    #[error("the write was not committed: {0}")]
    GroupCommit(String),
    /// The blocking worker running a query was cancelled.
    #[error("a database task was cancelled")]
    Cancelled,
    /// Every database connection stayed busy for the whole checkout timeout.
    #[error("no database connection became free in time")]
    Saturated,
    /// SQLite's write lock stayed with another process for the whole busy timeout (a large
    /// import batch committing, a maintenance command).
    #[error("another process held the database's write lock for the whole busy timeout")]
    Locked,
}

impl crate::rejection::Outage for StoreError {
    fn is_outage(&self) -> bool {
        match self {
            StoreError::Unavailable(_)
            | StoreError::Connection(_)
            | StoreError::Saturated
            | StoreError::Locked => true,
            StoreError::Query(error) => is_locked_by_another_process(error),
            _ => false,
        }
    }
}

/// Whether SQLite gave up waiting, after its busy timeout, for a write lock another process
/// holds (`custodia import` committing a large batch, a maintenance command): the database is
/// busy for a while, not broken, and the request may be retried.
pub(crate) fn is_locked_by_another_process(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(_, info) if info.message() == "database is locked"
    )
}

/// Which backend a database URL names; chosen from the URL's scheme, never guessed.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
    /// `sqlite://PATH`, `sqlite:PATH` or a plain file path.
    Sqlite(PathBuf),
}

impl DatabaseUrl {
    /// Reads a URL: the `postgres`/`postgresql` schemes select PostgreSQL; `sqlite:` or a bare
    /// path selects SQLite. Any other scheme is an error rather than a file name.
    pub fn parse(raw: &str) -> Result<DatabaseUrl, String> {
        let raw = raw.trim();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(raw.to_owned()));
        }
        let path = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
            .unwrap_or(raw);
        if path.is_empty() {
            return Err("the database URL is empty".into());
        }
        if let Some((scheme, _)) = path.split_once("://") {
            return Err(format!(
                "unsupported database URL scheme `{scheme}`: use postgres://… or sqlite://PATH"
            ));
        }
        Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
    }

    /// The backend's name, for logs and `/readyz`.
    pub fn backend(&self) -> &'static str {
        match self {
            DatabaseUrl::Postgres(_) => "postgres",
            DatabaseUrl::Sqlite(_) => "sqlite",
        }
    }
}

/// Shows the URL without its password.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Postgres(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let rest = match rest.split_once('@') {
                    Some((userinfo, host)) if !userinfo.contains('/') => {
                        let user = userinfo.split(':').next().unwrap_or_default();
                        format!("{user}:***@{host}")
                    }
                    _ => rest.to_owned(),
                };
                write!(f, "{scheme}://{rest}")
            }
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

/// Opens connections of the backend the URL names and prepares each one.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
}

impl ConnectionManager {
    /// A manager for `url`.
    pub fn new(url: DatabaseUrl) -> Self {
        ConnectionManager { url }
    }

    /// Opens one connection, with SQLite set to WAL, foreign keys on and a busy timeout.
    pub(crate) fn establish(&self) -> Result<DbConnection, StoreError> {
        match &self.url {
            DatabaseUrl::Postgres(url) => Ok(DbConnection::Postgresql(
                diesel::PgConnection::establish(url)?,
            )),
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|error| {
                        diesel::ConnectionError::BadConnection(format!(
                            "cannot create {}: {error}",
                            dir.display()
                        ))
                    })?;
                }
                let tmp = sqlite_temporary_dir(path);
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&tmp)
                    .or_else(|error| match error.kind() {
                        std::io::ErrorKind::AlreadyExists => Ok(()),
                        _ => Err(error),
                    })
                    .map_err(|error| {
                        diesel::ConnectionError::BadConnection(format!(
                            "cannot create {}: {error}",
                            tmp.display()
                        ))
                    })?;
                let path = path.to_str().ok_or_else(|| {
                    diesel::ConnectionError::InvalidConnectionUrl(
                        "the SQLite path is not valid UTF-8".into(),
                    )
                })?;
                let mut conn = diesel::SqliteConnection::establish(path)?;
                // secure_delete overwrites deleted content, so an erased person's rows do not
                // linger in free space of the file. WAL with synchronous=NORMAL: a commit is durable against a process crash at
                // once and against power loss from the next checkpoint. Memory is bounded: a
                // 16 MiB page cache per pooled connection, no memory map (mapped pages count as
                // the process's resident memory, once per connection), and sorts that outgrow
                // the cache spill to temporary files rather than to memory; the operating
                // system's file cache keeps a busy database's pages warm beyond that
                // (docs/benchmarks.md, "Memory"). A server
                // checkpoints in the background (`Database::checkpoint_wal`), so commits do
                // not stall copying the WAL back; the automatic checkpoint is only a backstop.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                     PRAGMA journal_mode = WAL;
                     PRAGMA synchronous = NORMAL;
                     PRAGMA foreign_keys = ON;
                     PRAGMA secure_delete = ON;
                     PRAGMA cache_size = -16384;
                     PRAGMA mmap_size = 0;
                     PRAGMA temp_store = FILE;
                     PRAGMA wal_autocheckpoint = {SQLITE_AUTOCHECKPOINT_PAGES};"
                ))?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// Readies a connection for a long run of large write transactions (`custodia import`): on
/// SQLite, statement journals in memory (each batch's nested writes journal every page they
/// touch; the writer thread does the same) and a page cache of 128 MiB for the indexes the
/// batches insert into. Nothing to do on PostgreSQL.
pub(crate) fn prepare_bulk_writes(conn: &mut DbConnection) -> Result<(), StoreError> {
    if let DbConnection::Sqlite(sqlite) = conn {
        sqlite.batch_execute("PRAGMA temp_store = MEMORY; PRAGMA cache_size = -131072;")?;
    }
    Ok(())
}

/// Copies what the WAL holds into the database file as far as readers allow (SQLite; nothing
/// on PostgreSQL): what a server's job does every few milliseconds, for a long run of writes
/// outside a server.
pub(crate) fn checkpoint(conn: &mut DbConnection) -> Result<(), StoreError> {
    if let DbConnection::Sqlite(sqlite) = conn {
        sqlite.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")?;
    }
    Ok(())
}

/// Where SQLite's temporary files go (large sorts, journals): `tmp` beside the database file,
/// owner-only, so that pages of the database never land outside its directory. The binary
/// points SQLite there (`SQLITE_TMPDIR`) before it starts any thread.
pub fn sqlite_temporary_dir(database: &std::path::Path) -> PathBuf {
    match database.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => dir.join("tmp"),
        None => PathBuf::from("tmp"),
    }
}

impl ConnectionManager {
    /// The SQLite writer's own connection: as [`establish`](Self::establish), with statement
    /// and savepoint journals (copies of the pages a multi-row statement or a grouped request
    /// changes, kept to undo it) in memory. With `temp_store = FILE` they went to temporary
    /// files: more bytes than the WAL itself, and outside the data directory. Readers keep
    /// `FILE`, for the sorts of large segment queries. (A larger page cache for the writer was
    /// measured slower: SQLite's savepoint code walks the whole cache.)
    pub(crate) fn establish_writer(&self) -> Result<DbConnection, StoreError> {
        let mut conn = self.establish()?;
        if let DbConnection::Sqlite(sqlite) = &mut conn {
            sqlite.batch_execute("PRAGMA temp_store = MEMORY;")?;
        }
        Ok(conn)
    }
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = StoreError;

    fn connect(&self) -> Result<DbConnection, StoreError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), StoreError> {
        Ok(conn.ping()?)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Whether PostgreSQL's autovacuum is off: planner statistics are then never gathered, and
/// plans drift from the data as tables grow (the server warns at start).
pub(crate) fn autovacuum_off(conn: &mut DbConnection) -> Result<bool, StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        setting: String,
    }
    match conn {
        DbConnection::Postgresql(pg) => {
            let row: Setting =
                diesel::sql_query("SELECT setting FROM pg_settings WHERE name = 'autovacuum'")
                    .get_result(pg)?;
            Ok(row.setting == "off")
        }
        DbConnection::Sqlite(_) => Ok(false),
    }
}

/// How long a pooled PostgreSQL connection is used before it is replaced (checked every 30
/// seconds, while it is idle).
pub const POSTGRES_CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(120);

/// Builds the pool. Connections are opened lazily, so building never blocks on the database.
///
/// PostgreSQL connections are replaced after [`POSTGRES_CONNECTION_LIFETIME`]: statements are
/// prepared once per connection, and PostgreSQL may settle on a generic plan for one. A generic
/// plan made while a table was nearly empty (a new deployment) scans the whole table; planned
/// again later it uses the index. Fresh statistics (autovacuum's `ANALYZE`) replace such plans
/// at once; without them (autovacuum off) nothing would, and a lookup by a unique key would
/// read every row for the life of the connection (measured: 116 million rows read by 5,000
/// consent lookups in one minute). Write transactions plan every statement afresh
/// ([`write_transaction`]); for reads, where that cost 15–25 % of throughput, replacing
/// connections bounds the staleness to minutes.
pub(crate) fn build_pool(url: &DatabaseUrl, max_size: u32) -> DbPool {
    let lifetime = match url {
        DatabaseUrl::Postgres(_) => Some(POSTGRES_CONNECTION_LIFETIME),
        DatabaseUrl::Sqlite(_) => None,
    };
    r2d2::Pool::builder()
        .max_size(max_size)
        .max_lifetime(lifetime)
        .min_idle(Some(0))
        .connection_timeout(POOL_CHECKOUT_TIMEOUT)
        .build_unchecked(ConnectionManager::new(url.clone()))
}

/// Applies every pending migration, returning the versions applied.
///
/// Safe when several processes start at once: PostgreSQL takes a transaction-scoped advisory
/// lock, SQLite an immediate (write-locked) transaction, so one process migrates and the
/// others then find nothing pending.
pub(crate) fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, StoreError> {
    type MigrationResult = Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>>;
    // Each backend has its own migration folder and its own way to take the lock.
    let result: MigrationResult = match conn {
        DbConnection::Postgresql(pg) => pg.transaction(|pg| {
            diesel::sql_query(format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .execute(pg)?;
            let applied = pg.run_pending_migrations(POSTGRES_MIGRATIONS)?;
            Ok(applied.iter().map(ToString::to_string).collect())
        }),
        DbConnection::Sqlite(sqlite) => sqlite.immediate_transaction(|sqlite| {
            let applied = sqlite.run_pending_migrations(SQLITE_MIGRATIONS)?;
            Ok(applied.iter().map(ToString::to_string).collect())
        }),
    };
    result.map_err(|error| StoreError::Migration(error.to_string()))
}

/// Runs `work` in a transaction that holds the database's write lock from its first statement.
///
/// SQLite: `BEGIN IMMEDIATE`, so a transaction that reads before it writes waits for other
/// writers (busy timeout) instead of failing when it upgrades. PostgreSQL: a plain transaction;
/// row locks and constraints serialize what must be serialized. Its statements are planned for
/// the tables as they are now (`plan_cache_mode = force_custom_plan`, in the same round trip as
/// `BEGIN`): writes make tables grow from nothing, and a cached generic plan made while one was
/// nearly empty would scan it in full on every later write (see [`build_pool`]).
/// Inside a transaction already (the SQLite group writer's), a savepoint; but when the writer's
/// transaction holds this request alone and nothing has been written in it yet, the
/// transaction itself is the unit that is undone (see [`writer::lone_write`]).
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    transaction_planned(
        conn,
        "BEGIN; SET LOCAL plan_cache_mode = force_custom_plan",
        work,
    )
}

/// [`write_transaction`] for work that only takes locks and inserts rows prepared before it
/// (an ingest's commit): its statements keep the plans PostgreSQL caches for them. Planned
/// afresh, each foreign-key check a row makes was planned again too (the checks are cached
/// statements of PostgreSQL's own): 46 % of their time, about a fifth of a batch's inserts.
/// Inserts and primary-key look-ups have one good plan, whatever the tables hold.
pub(crate) fn insert_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    transaction_planned(conn, "BEGIN", work)
}

/// Switches the rest of a [`write_transaction`] on PostgreSQL to cached plans, once its look-ups
/// are done and only inserts of what they decided remain (see [`insert_transaction`]).
pub(crate) fn plan_inserts_cached(conn: &mut DbConnection) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(pg) = conn {
        pg.batch_execute("SET LOCAL plan_cache_mode = auto")?;
    }
    Ok(())
}

fn transaction_planned<T, E, F>(conn: &mut DbConnection, begin: &str, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    use diesel::connection::AnsiTransactionManager;
    // This mirrors `SqliteConnection::immediate_transaction` but keeps the connection enum for
    // `work`.
    let started = match conn {
        DbConnection::Postgresql(pg) => AnsiTransactionManager::begin_transaction_sql(pg, begin),
        DbConnection::Sqlite(sqlite) => {
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")
        }
    };
    match started {
        Ok(()) => end_transaction(conn, work),
        Err(diesel::result::Error::AlreadyInTransaction) => {
            if writer::lone_write(conn).map_err(failed)? {
                writer::undo_on_error(conn, work)
            } else {
                transaction(conn, work)
            }
        }
        Err(error) => Err(failed(error)),
    }
}

/// A database failure as the error of the work a transaction helper runs.
pub(crate) fn failed<E: From<StoreError>>(error: diesel::result::Error) -> E {
    E::from(StoreError::from(error))
}

/// Runs `work` in a transaction (a savepoint inside another): committed if it succeeds, rolled
/// back if it fails. Domain errors only need to come from [`StoreError`].
pub(crate) fn transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    use diesel::connection::TransactionManager;
    type Manager = <DbConnection as Connection>::TransactionManager;
    Manager::begin_transaction(conn).map_err(failed)?;
    end_transaction(conn, work)
}

/// Runs `work` in the transaction just begun, then ends it: commit on success, rollback on
/// failure (through the connection enum's own transaction manager, which ends the inner one).
fn end_transaction<T, E, F>(conn: &mut DbConnection, work: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<StoreError>,
{
    use diesel::connection::TransactionManager;
    type Manager = <DbConnection as Connection>::TransactionManager;
    match work(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn).map_err(failed)?;
            Ok(value)
        }
        // As diesel's own `transaction`: the work's error wins over a transaction manager
        // that is already broken (the connection is then discarded by the pool).
        Err(error) => match Manager::rollback_transaction(conn) {
            Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(failed(rollback)),
        },
    }
}

/// Takes a transaction-level lock per key (`namespace` + key), in one global order, in one
/// statement, so that transactions writing overlapping keys wait for each other instead of
/// colliding or deadlocking (PostgreSQL advisory locks; volatile functions in a select list are
/// evaluated after its `ORDER BY`). SQLite has one writer at a time: nothing to do.
pub(crate) fn lock_in_order(
    conn: &mut DbConnection,
    namespace: &str,
    keys: &[String],
) -> Result<(), StoreError> {
    let DbConnection::Postgresql(pg) = conn else {
        return Ok(());
    };
    let mut ids: Vec<i64> = keys
        .iter()
        .map(|key| {
            let digest = ring::digest::digest(
                &ring::digest::SHA256,
                format!("{namespace}{key}").as_bytes(),
            );
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest.as_ref()[..8]);
            i64::from_be_bytes(first)
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if !ids.is_empty() {
        lock_all(ids).execute(pg)?;
    }
    Ok(())
}

/// A transaction-level advisory lock per id, in ascending order, in one statement kept
/// prepared (every write runs it).
fn lock_all(ids: Vec<i64>) -> bulk::ArrayStatement<'static> {
    bulk::ArrayStatement {
        text: vec![
            "SELECT count(pg_advisory_xact_lock(id)) FROM (SELECT unnest(",
            "::bigint[]) AS id ORDER BY 1) AS ordered",
        ],
        arrays: vec![Box::new(bulk::Column::<diesel::sql_types::BigInt, _>::new(
            ids,
        ))],
    }
}

/// Whether an error means a concurrent writer changed what a transaction relied on: a unique
/// violation (another writer inserted the same key first) or a foreign-key violation (the
/// subject was erased in the meantime). Work that fails so is prepared again from scratch.
pub(crate) fn is_write_conflict(error: &diesel::result::Error) -> bool {
    is_unique_violation(error)
        || matches!(
            error,
            diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _
            )
        )
}

/// Whether an error is a unique-constraint violation (another writer got there first).
pub(crate) fn is_unique_violation(error: &diesel::result::Error) -> bool {
    matches!(
        error,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// The pools, with a way to run blocking database work off the async workers.
///
/// On SQLite, writes go to one writer thread that commits waiting writes together (see
/// `writer.rs`): SQLite has one writer at a time anyway, and queueing writers there is far
/// faster and fairer than letting them collide on the database lock and back off in its busy
/// handler. Reads use the pool and run concurrently (WAL). On PostgreSQL, writes use the pool
/// too and run concurrently.
#[derive(Clone)]
pub struct Database {
    pool: DbPool,
    /// One permit per pooled connection: blocking database work waits for a permit *before*
    /// it takes a thread, so that a burst of requests does not park one blocking thread (its
    /// stack, its allocator cache) per request on the pool's checkout.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    writer: Option<std::sync::mpsc::Sender<Box<dyn writer::WriteJob>>>,
    url: DatabaseUrl,
    long_readers: std::sync::Arc<old_copies::LongReaders>,
    /// Erased keys whose old copies were still readable when their erasure answered: the
    /// periodic job `old_copies` removes them ([`Database::remove_pending_old_copies`]).
    pending_old_copies: std::sync::Arc<std::sync::Mutex<Vec<erasure::ErasedKey>>>,
}

impl Database {
    /// Builds the pools for `url`; connections are opened lazily.
    pub(crate) fn connect(url: &DatabaseUrl, max_size: u32) -> Self {
        let pool = build_pool(url, max_size);
        let writer = match url {
            DatabaseUrl::Sqlite(_) => {
                Some(writer::spawn_writer(ConnectionManager::new(url.clone())))
            }
            DatabaseUrl::Postgres(_) => None,
        };
        Database {
            pool,
            permits: std::sync::Arc::new(tokio::sync::Semaphore::new(max_size as usize)),
            writer,
            url: url.clone(),
            long_readers: std::sync::Arc::default(),
            pending_old_copies: std::sync::Arc::default(),
        }
    }

    /// Whether this is an SQLite database (whose WAL wants checkpointing).
    pub(crate) fn is_sqlite(&self) -> bool {
        matches!(self.url, DatabaseUrl::Sqlite(_))
    }

    /// On SQLite, copies what the WAL holds back into the database file, without waiting for
    /// readers or writers (PASSIVE), so that no commit pays for a checkpoint: the periodic job
    /// `sqlite_wal_checkpoint` runs it every [`SQLITE_CHECKPOINT_INTERVAL`]. It takes a pooled
    /// connection but no admission permit (it must go on when requests fill them). Does nothing
    /// on PostgreSQL.
    pub(crate) async fn checkpoint_wal(&self) -> Result<(), StoreError> {
        if !self.is_sqlite() {
            return Ok(());
        }
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            Ok(conn.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")?)
        })
        .await
        .map_err(|_| StoreError::Cancelled)?
    }

    /// The database URL (its `Display` hides any password).
    pub(crate) fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// A pooled connection, for synchronous callers (the CLI, start-up, tests).
    pub fn connection(&self) -> Result<r2d2::PooledConnection<ConnectionManager>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Runs `work` (which only reads) with a pooled connection on the blocking thread pool.
    pub async fn run<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run_on(work).await
    }

    /// Runs `work`, which writes: on SQLite in the group writer (its result arrives once it is
    /// committed), on PostgreSQL with a pooled connection on the blocking thread pool.
    pub(crate) async fn run_write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let Some(writer) = &self.writer else {
            return self.run_on(work).await;
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Box<dyn writer::WriteJob> = Box::new(writer::Job { work, reply });
        if writer.send(job).is_err() {
            return Err(E::from(StoreError::GroupCommit(
                "the writer has stopped".into(),
            )));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(E::from(StoreError::Cancelled)))
    }

    async fn run_on<T, E, F>(&self, work: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let permit =
            tokio::time::timeout(POOL_CHECKOUT_TIMEOUT, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| E::from(StoreError::Saturated))?
                .map_err(|_| E::from(StoreError::Cancelled))?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = pool.get().map_err(StoreError::from)?;
            work(&mut conn)
        })
        .await
        .map_err(|_| E::from(StoreError::Cancelled))?
    }

    /// Registers a long read snapshot of this process (an export), which an erasure may ask to
    /// end (see [`old_copies`]).
    pub(crate) fn long_reader(&self) -> old_copies::LongReader {
        self.long_readers.register()
    }

    /// After an erasure has committed: removes what the database files still hold of the
    /// erased keys' rows (SQLite: truncates the WAL; PostgreSQL: rewrites the partitions that
    /// held them), waiting for readers with older snapshots and ending them after a while (see
    /// [`old_copies`]). Returns whether it held within [`old_copies::DEADLINE`].
    ///
    /// Keys whose copies it could not remove in time are kept, and the periodic job
    /// `old_copies` tries them again ([`Database::remove_pending_old_copies`]) until it can.
    pub(crate) async fn remove_old_copies(&self, erased: Vec<erasure::ErasedKey>) -> bool {
        let readers = self.long_readers.clone();
        let for_work = erased.clone();
        let result = self
            .run(move |conn| old_copies::remove(conn, &for_work, &readers, old_copies::DEADLINE))
            .await;
        let held = match result {
            Ok(held) => held,
            Err(error) => {
                let error: StoreError = error;
                tracing::error!(error = %error, "could not remove old copies of an erased key");
                false
            }
        };
        if !held {
            if let Ok(mut pending) = self.pending_old_copies.lock() {
                pending.extend(erased);
            }
        }
        held
    }

    /// Tries again to remove the old copies of erased keys that were still readable when
    /// their erasure answered. Returns how many keys were waiting (0: nothing to do); those
    /// that still cannot be removed wait for the next try.
    pub(crate) async fn remove_pending_old_copies(&self) -> usize {
        let waiting: Vec<erasure::ErasedKey> = match self.pending_old_copies.lock() {
            Ok(mut pending) => pending.drain(..).collect(),
            Err(_) => return 0,
        };
        let count = waiting.len();
        if count > 0 && self.remove_old_copies(waiting).await {
            tracing::info!(
                keys = count,
                "old copies of erased keys removed after a wait"
            );
        }
        count
    }

    /// Whether the database answers a trivial query.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| Ok::<_, StoreError>(conn.ping()?)).await
    }
}

#[cfg(test)]
mod tests {
    use diesel::pg::Pg;
    use diesel::query_builder::QueryFragment;

    #[test]
    fn locks_in_one_prepared_statement() {
        let query = super::lock_all(vec![3, 7]);
        assert_eq!(
            diesel::debug_query::<Pg, _>(&query)
                .to_string()
                .split(" -- ")
                .next(),
            Some("SELECT count(pg_advisory_xact_lock(id)) FROM (SELECT unnest($1::bigint[]) AS id ORDER BY 1) AS ordered")
        );
        assert!(QueryFragment::<Pg>::is_safe_to_cache_prepared(&query, &Pg).unwrap());
    }
}
