//! Consent reporting: exact aggregates of consent statements and objections by day (no person
//! is read, only counts).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp};

use super::{DbConnection, StoreError};

/// Statements of one day, purpose, notice, status and method, as the database groups them.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct StatementCount {
    /// `YYYY-MM-DD` (UTC).
    #[diesel(sql_type = Text)]
    pub day: String,
    #[diesel(sql_type = Text)]
    pub purpose: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub notice_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub notice_version: Option<String>,
    /// `granted` or `withdrawn`.
    #[diesel(sql_type = Text)]
    pub status: String,
    /// How it was given (`gpc` for a Global Privacy Control signal).
    #[diesel(sql_type = Text)]
    pub method: String,
    #[diesel(sql_type = BigInt, column_name = n)]
    pub count: i64,
}

/// Standing objections made on one day, per purpose.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct ObjectionCount {
    #[diesel(sql_type = Text)]
    pub day: String,
    #[diesel(sql_type = Text)]
    pub purpose: String,
    #[diesel(sql_type = BigInt, column_name = n)]
    pub count: i64,
}

/// The grouped count of `table` by the day of `column` (and `columns`), within `[from, until)`
/// and for `purpose` when given: one statement per backend (the day's expression and the
/// placeholders differ).
fn grouped<R>(
    conn: &mut DbConnection,
    (table, column, columns): (&str, &str, &str),
    from: NaiveDateTime,
    until: NaiveDateTime,
    purpose: Option<&str>,
) -> Result<Vec<R>, StoreError>
where
    R: QueryableByName<diesel::sqlite::Sqlite> + QueryableByName<diesel::pg::Pg> + 'static,
{
    let (postgres, day) = match conn {
        DbConnection::Sqlite(_) => (false, format!("substr({column}, 1, 10)")),
        DbConnection::Postgresql(_) => (true, format!("to_char({column}, 'YYYY-MM-DD')")),
    };
    let place = |n: usize| {
        if postgres {
            format!("${n}")
        } else {
            "?".to_owned()
        }
    };
    let purpose_filter = if purpose.is_some() {
        format!(" AND purpose = {}", place(3))
    } else {
        String::new()
    };
    let text = format!(
        "SELECT {day} AS day, {columns}, COUNT(*) AS n FROM {table} \
         WHERE {column} >= {} AND {column} < {}{purpose_filter} \
         GROUP BY {day}, {columns}",
        place(1),
        place(2)
    );
    macro_rules! load {
        ($conn:expr, $backend:ty) => {{
            let query = diesel::sql_query(text)
                .into_boxed::<$backend>()
                .bind::<Timestamp, _>(from)
                .bind::<Timestamp, _>(until);
            match purpose {
                Some(purpose) => query.bind::<Text, _>(purpose.to_owned()).load::<R>($conn)?,
                None => query.load::<R>($conn)?,
            }
        }};
    }
    Ok(match conn {
        DbConnection::Sqlite(sqlite) => load!(sqlite, diesel::sqlite::Sqlite),
        DbConnection::Postgresql(pg) => load!(pg, diesel::pg::Pg),
    })
}

/// Statements recorded in `[from, until)`, counted by day, purpose, notice, status and method,
/// for `purpose` only when given.
pub(crate) fn statements(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    until: NaiveDateTime,
    purpose: Option<&str>,
) -> Result<Vec<StatementCount>, StoreError> {
    grouped(
        conn,
        (
            "consent_records",
            "recorded_at",
            "purpose, notice_id, notice_version, status, method",
        ),
        from,
        until,
        purpose,
    )
}

/// Standing objections made in `[from, until)`, counted by day and purpose.
pub(crate) fn objections(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    until: NaiveDateTime,
    purpose: Option<&str>,
) -> Result<Vec<ObjectionCount>, StoreError> {
    grouped(
        conn,
        ("objections", "since", "purpose"),
        from,
        until,
        purpose,
    )
}
