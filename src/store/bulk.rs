//! Many rows in one statement on PostgreSQL: one array per column, unpacked by `unnest`.
//!
//! A multi-row `VALUES` list is a different statement for every number of rows, so PostgreSQL
//! parses and plans each batch's inserts anew (a batch of 1,000 interactions bound 11,000
//! parameters to statements of five sizes). `INSERT INTO t (…) SELECT * FROM unnest($1::text[],
//! …)` is one statement per table whatever the number of rows, with one parameter per column,
//! and [`UnnestInsert`] lets diesel keep it prepared on each connection (diesel's `sql_query`
//! never does: PostgreSQL parsed every execution again). [`insert_all!`](super::insert_all)
//! uses it for every row type declared here with [`pg_columns!`].

use std::marker::PhantomData;

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

/// `INSERT INTO table (a, b) SELECT * FROM unnest(`: what comes before the arrays.
pub(crate) fn unnest_insert_prefix(table: &str, columns: &[&str]) -> String {
    format!(
        "INSERT INTO {table} ({}) SELECT * FROM unnest(",
        columns.join(", ")
    )
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

/// `INSERT INTO table (a, b) SELECT * FROM unnest($1::text[], $2::bytea[])`, safe for diesel
/// to keep prepared: its text depends only on the table and columns, never on the rows.
pub struct UnnestInsert<'a> {
    /// [`unnest_insert_prefix`].
    pub prefix: &'static str,
    /// Each column's values and its element type's name.
    pub columns: Vec<(Box<dyn ColumnArray + 'a>, &'static str)>,
}

impl QueryFragment<Pg> for UnnestInsert<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.prefix);
        for (index, (values, element)) in self.columns.iter().enumerate() {
            if index > 0 {
                out.push_sql(", ");
            }
            values.bind(&mut out)?;
            out.push_sql("::");
            out.push_sql(element);
            out.push_sql("[]");
        }
        out.push_sql(")");
        Ok(())
    }
}

impl<Conn> diesel::RunQueryDsl<Conn> for UnnestInsert<'_> {}

impl QueryId for UnnestInsert<'_> {
    type QueryId = ();
    // Cached by its text (one per row type), not by a type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// `SELECT count(pg_advisory_xact_lock(id)) FROM (SELECT unnest($1::bigint[]) AS id ORDER BY
/// 1)`: a transaction-level lock per id, in ascending order, in one statement that diesel keeps
/// prepared (see [`super::lock_in_order`]).
pub struct LockAll<'a>(pub &'a [i64]);

impl QueryFragment<Pg> for LockAll<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT count(pg_advisory_xact_lock(id)) FROM (SELECT unnest(");
        out.push_bind_param::<Array<BigInt>, [i64]>(self.0)?;
        out.push_sql("::bigint[]) AS id ORDER BY 1) AS ordered");
        Ok(())
    }
}

impl<Conn> diesel::RunQueryDsl<Conn> for LockAll<'_> {}

impl QueryId for LockAll<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// Declares how a row type is inserted through column arrays: its table (in
/// [`schema`](super::schema)) and every column it writes, named as its fields are. The compiler
/// checks each field against its column's type; a column left out would be refused by the
/// database as a missing `NOT NULL` value, which every test that writes the row would show.
macro_rules! pg_columns {
    ($row:ty => $table:ident { $($column:ident),+ $(,)? }) => {
        impl $crate::store::bulk::PgColumns for $row {
            fn insert_columns(
                pg: &mut diesel::PgConnection,
                rows: &[Self],
            ) -> diesel::QueryResult<usize> {
                use $crate::store::schema::$table;
                static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                let prefix = PREFIX.get_or_init(|| {
                    $crate::store::bulk::unnest_insert_prefix(
                        stringify!($table),
                        &[$(<$table::$column as diesel::Column>::NAME),+],
                    )
                });
                let query = $crate::store::bulk::UnnestInsert {
                    prefix: prefix.as_str(),
                    columns: vec![$((
                        Box::new($crate::store::bulk::Column::<
                            <$table::$column as diesel::Expression>::SqlType,
                            _,
                        >::new(rows.iter().map(|row| &row.$column).collect::<Vec<_>>()))
                            as Box<dyn $crate::store::bulk::ColumnArray + '_>,
                        <<$table::$column as diesel::Expression>::SqlType
                            as $crate::store::bulk::PgArrayType>::NAME,
                    )),+],
                };
                diesel::RunQueryDsl::execute(query, pg)
            }
        }
    };
}
pub(crate) use pg_columns;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_array_per_column() {
        let prefix = unnest_insert_prefix("t", &["a", "b"]);
        let query = UnnestInsert {
            prefix: Box::leak(prefix.into_boxed_str()),
            columns: vec![
                (Box::new(Column::<Text, _>::new(vec!["x"])), "text"),
                (Box::new(Column::<Binary, _>::new(vec![vec![1u8]])), "bytea"),
            ],
        };
        assert_eq!(
            diesel::debug_query::<Pg, _>(&query).to_string().split(" -- ").next(),
            Some("INSERT INTO t (a, b) SELECT * FROM unnest($1::text[], $2::bytea[])")
        );
        assert!(
            QueryFragment::<Pg>::is_safe_to_cache_prepared(&query, &Pg).unwrap(),
            "kept prepared"
        );
    }

    #[test]
    fn locks_in_one_prepared_statement() {
        let ids = [3i64, 7];
        let query = LockAll(&ids);
        assert_eq!(
            diesel::debug_query::<Pg, _>(&query).to_string().split(" -- ").next(),
            Some("SELECT count(pg_advisory_xact_lock(id)) FROM (SELECT unnest($1::bigint[]) AS id ORDER BY 1) AS ordered")
        );
        assert!(QueryFragment::<Pg>::is_safe_to_cache_prepared(&query, &Pg).unwrap());
    }
}
