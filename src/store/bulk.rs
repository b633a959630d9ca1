//! Inserting rows without diesel rebuilding each statement's text: on PostgreSQL many rows in
//! one statement, one array per column, unpacked by `unnest`; one row (and on SQLite every row)
//! through one fixed single-row statement per table, which diesel finds in its statement cache
//! by type.
//!
//! A multi-row `VALUES` list is a different statement for every number of rows, so PostgreSQL
//! parses and plans each batch's inserts anew (a batch of 1,000 interactions bound 11,000
//! parameters to statements of five sizes). `INSERT INTO t (…) SELECT * FROM unnest($1::text[],
//! …)` is one statement per table whatever the number of rows, with one parameter per column,
//! and [`ArrayStatement`] lets diesel keep it prepared on each connection (diesel's `sql_query`
//! never does: PostgreSQL parsed every execution again). [`insert_all!`](super::insert_all)
//! uses it for every row type declared here with [`insert_columns!`].
//!
//! `insert_into(table).values(row)` of a derived `Insertable` has no static query id: diesel
//! built its SQL text again at every execution to look the prepared statement up (14 % of the
//! SQLite writer's time in a batch of 1,000 interactions). [`RowInsert`] has one per row type.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::serialize::ToSql;
use diesel::sql_types::{Array, BigInt, Binary, HasSqlType, Integer, Nullable, Text, Timestamp};
use diesel::QueryResult;

/// PostgreSQL's name of a SQL type, for the array casts of an `unnest` insert.
pub trait PgArrayType {
    /// The element type's name (`text`, `bytea` …).
    const NAME: &'static str;
}

impl PgArrayType for Text {
    const NAME: &'static str = "text";
}
impl PgArrayType for Binary {
    const NAME: &'static str = "bytea";
}
impl PgArrayType for Timestamp {
    const NAME: &'static str = "timestamp";
}
impl PgArrayType for BigInt {
    const NAME: &'static str = "int8";
}
impl PgArrayType for Integer {
    const NAME: &'static str = "int4";
}
impl<T: PgArrayType> PgArrayType for Nullable<T> {
    const NAME: &'static str = T::NAME;
}

/// Rows that PostgreSQL takes as one array per column.
pub trait PgColumns: Sized {
    /// Inserts `rows` in one statement.
    fn insert_columns(pg: &mut diesel::PgConnection, rows: &[Self]) -> diesel::QueryResult<usize>;
}

/// The text of `INSERT INTO table (a, b) SELECT * FROM unnest($1::text[], $2::bytea[])`
/// around its parameters (one piece more than there are columns).
pub(crate) fn unnest_insert_text(table: &str, columns: &[(&str, &str)]) -> Vec<String> {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let mut text = vec![format!(
        "INSERT INTO {table} ({}) SELECT * FROM unnest(",
        names.join(", ")
    )];
    for (index, (_, element)) in columns.iter().enumerate() {
        let after = if index + 1 == columns.len() {
            ")"
        } else {
            ", "
        };
        text.push(format!("::{element}[]{after}"));
    }
    text
}

/// One column's values, bound as one array parameter.
pub trait ColumnArray {
    /// Binds the array.
    fn bind<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()>;
}

/// The values of a column of SQL type `ST`.
pub struct Column<ST, T> {
    values: T,
    sql_type: PhantomData<ST>,
}

impl<ST, T> Column<ST, T> {
    /// The column's values, in row order.
    pub fn new(values: T) -> Self {
        Column {
            values,
            sql_type: PhantomData,
        }
    }
}

impl<ST: 'static, T> ColumnArray for Column<ST, T>
where
    Pg: HasSqlType<Array<ST>>,
    T: ToSql<Array<ST>, Pg>,
{
    fn bind<'b>(&'b self, out: &mut AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_bind_param::<Array<ST>, T>(&self.values)
    }
}

/// A statement of fixed text whose parameters are arrays (`… unnest($1::text[], …) …`),
/// which diesel keeps prepared on each connection: its text never depends on how many values
/// the arrays hold. (diesel never keeps a `sql_query` prepared, so PostgreSQL parsed those again
/// at every execution.)
pub struct ArrayStatement<'a> {
    /// The text around the parameters: one piece before each array, and one after the last.
    pub text: Vec<&'a str>,
    /// The arrays, in order.
    pub arrays: Vec<Box<dyn ColumnArray + 'a>>,
}

impl QueryFragment<Pg> for ArrayStatement<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        debug_assert_eq!(self.text.len(), self.arrays.len() + 1);
        let mut text = self.text.iter();
        for array in &self.arrays {
            out.push_sql(text.next().copied().unwrap_or_default());
            array.bind(&mut out)?;
        }
        out.push_sql(text.next().copied().unwrap_or_default());
        Ok(())
    }
}

impl diesel::query_builder::Query for ArrayStatement<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<Conn> diesel::RunQueryDsl<Conn> for ArrayStatement<'_> {}

impl QueryId for ArrayStatement<'_> {
    type QueryId = ();
    // Cached by its text, not by a type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// Rows inserted one at a time through one fixed statement per row type and backend.
pub trait InsertRow<DB: Backend>: 'static {
    /// Writes `INSERT INTO table (a, b) VALUES (?, ?)` (`$1, $2` on PostgreSQL), binding this
    /// row's values.
    fn walk_insert<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()>;
}

/// The single-row insert of `R`, cached by diesel under `R`'s type.
pub struct RowInsert<'a, R>(pub &'a R);

/// The statement-cache identity of [`RowInsert`] of `R`.
pub struct RowInsertId<R>(PhantomData<R>);

impl<DB: Backend, R: InsertRow<DB>> QueryFragment<DB> for RowInsert<'_, R> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_insert(out)
    }
}

impl<R: 'static> QueryId for RowInsert<'_, R> {
    type QueryId = RowInsertId<R>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<R> diesel::query_builder::Query for RowInsert<'_, R> {
    type SqlType = diesel::sql_types::Untyped;
}

impl<R, Conn> diesel::RunQueryDsl<Conn> for RowInsert<'_, R> {}

/// Declares how a row type is inserted (many rows through column arrays on PostgreSQL,
/// [`ArrayStatement`]; one at a time through one fixed statement, [`RowInsert`]): its table (in
/// [`schema`](super::schema)) and every column it writes, named as its fields are. The compiler
/// checks each field against its column's type; a column left out would be refused by the
/// database as a missing `NOT NULL` value, which every test that writes the row would show.
macro_rules! insert_columns {
    ($row:ty => $table:ident { $($column:ident),+ $(,)? }) => {
        impl $crate::store::bulk::PgColumns for $row {
            fn insert_columns(
                pg: &mut diesel::PgConnection,
                rows: &[Self],
            ) -> diesel::QueryResult<usize> {
                use $crate::store::schema::$table;
                static TEXT: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
                let text = TEXT.get_or_init(|| {
                    $crate::store::bulk::unnest_insert_text(
                        stringify!($table),
                        &[$((
                            <$table::$column as diesel::Column>::NAME,
                            <<$table::$column as diesel::Expression>::SqlType
                                as $crate::store::bulk::PgArrayType>::NAME,
                        )),+],
                    )
                });
                let query = $crate::store::bulk::ArrayStatement {
                    text: text.iter().map(String::as_str).collect(),
                    arrays: vec![$(
                        Box::new($crate::store::bulk::Column::<
                            <$table::$column as diesel::Expression>::SqlType,
                            _,
                        >::new(rows.iter().map(|row| &row.$column).collect::<Vec<_>>()))
                            as Box<dyn $crate::store::bulk::ColumnArray + '_>,
                    )+],
                };
                diesel::RunQueryDsl::execute(query, pg)
            }
        }

        $crate::store::bulk::insert_row!($row => $table, diesel::sqlite::Sqlite, { $($column),+ });
        $crate::store::bulk::insert_row!($row => $table, diesel::pg::Pg, { $($column),+ });
    };
}
pub(crate) use insert_columns;

/// The single-row insert of a row type on one backend (see [`insert_columns!`]).
macro_rules! insert_row {
    ($row:ty => $table:ident, $db:ty, { $($column:ident),+ }) => {
        impl $crate::store::bulk::InsertRow<$db> for $row {
            #[allow(unused_assignments)]
            fn walk_insert<'b>(
                &'b self,
                mut out: diesel::query_builder::AstPass<'_, 'b, $db>,
            ) -> diesel::QueryResult<()> {
                use $crate::store::schema::$table;
                static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                let prefix = PREFIX.get_or_init(|| {
                    let names: &[&str] = &[$(<$table::$column as diesel::Column>::NAME),+];
                    format!("INSERT INTO {} ({}) VALUES (", stringify!($table), names.join(", "))
                });
                out.push_sql(prefix);
                let mut separator = "";
                $(
                    out.push_sql(separator);
                    separator = ", ";
                    out.push_bind_param::<<$table::$column as diesel::Expression>::SqlType, _>(
                        &self.$column,
                    )?;
                )+
                out.push_sql(")");
                Ok(())
            }
        }
    };
}
pub(crate) use insert_row;

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sqlite::Sqlite;

    #[test]
    fn one_array_per_column() {
        let text = unnest_insert_text("t", &[("a", "text"), ("b", "bytea")]);
        let query = ArrayStatement {
            text: text.iter().map(String::as_str).collect(),
            arrays: vec![
                Box::new(Column::<Text, _>::new(vec!["x"])),
                Box::new(Column::<Binary, _>::new(vec![vec![1u8]])),
            ],
        };
        assert_eq!(
            diesel::debug_query::<Pg, _>(&query)
                .to_string()
                .split(" -- ")
                .next(),
            Some("INSERT INTO t (a, b) SELECT * FROM unnest($1::text[], $2::bytea[])")
        );
        assert!(
            QueryFragment::<Pg>::is_safe_to_cache_prepared(&query, &Pg).unwrap(),
            "kept prepared"
        );
    }

    #[test]
    fn one_fixed_single_row_statement_per_row_type() {
        let row = crate::store::interactions::InteractionPurposeRow {
            interaction_pk: "i".into(),
            subject_pk: "s".into(),
            purpose: "marketing".into(),
            occurred_at: chrono::NaiveDateTime::default(),
            interaction_type: "purchase".into(),
            channel: "web".into(),
        };
        let query = RowInsert(&row);
        let text = diesel::debug_query::<Sqlite, _>(&query).to_string();
        assert_eq!(
            text.split(" -- ").next(),
            Some(
                "INSERT INTO interaction_purposes (interaction_pk, subject_pk, purpose, \
                 occurred_at, interaction_type, channel) VALUES (?, ?, ?, ?, ?, ?)"
            )
        );
        assert!(
            text.contains("\"marketing\""),
            "the row's values are bound: {text}"
        );
        let text = diesel::debug_query::<Pg, _>(&query).to_string();
        assert!(
            text.starts_with(
                "INSERT INTO interaction_purposes (interaction_pk, subject_pk, purpose, \
                 occurred_at, interaction_type, channel) VALUES ($1, $2, $3, $4, $5, $6)"
            ),
            "{text}"
        );
        // Found in diesel's statement cache by type, not by building its text again.
        assert!(
            RowInsert::<crate::store::interactions::InteractionPurposeRow>::query_id().is_some()
        );
        assert_ne!(
            RowInsert::<crate::store::interactions::InteractionPurposeRow>::query_id(),
            RowInsert::<crate::store::interactions::InteractionRow>::query_id()
        );
    }
}
