//! Many rows in one statement on PostgreSQL: one array per column, unpacked by `unnest`.
//!
//! A multi-row `VALUES` list is a different statement for every number of rows, so PostgreSQL
//! parses and plans each batch's inserts anew (a batch of 1,000 interactions bound 11,000
//! parameters to statements of five sizes). `INSERT INTO t (…) SELECT * FROM unnest($1::text[],
//! …)` is one statement per table whatever the number of rows: prepared once per connection,
//! with one parameter per column. [`insert_all!`](super::insert_all) uses it for every row type
//! declared here with [`pg_columns!`].

use diesel::sql_types::{BigInt, Binary, Integer, Nullable, Text, Timestamp};

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

/// `INSERT INTO table (a, b) SELECT * FROM unnest($1::text[], $2::bytea[])`.
pub(crate) fn unnest_insert_sql(table: &str, columns: &[(&str, &str)]) -> String {
    let names: Vec<&str> = columns.iter().map(|(name, _)| *name).collect();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(index, (_, element))| format!("${}::{element}[]", index + 1))
        .collect();
    format!(
        "INSERT INTO {table} ({}) SELECT * FROM unnest({})",
        names.join(", "),
        arrays.join(", ")
    )
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
                static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                let sql = SQL.get_or_init(|| {
                    $crate::store::bulk::unnest_insert_sql(
                        stringify!($table),
                        &[$((
                            <$table::$column as diesel::Column>::NAME,
                            <<$table::$column as diesel::Expression>::SqlType
                                as $crate::store::bulk::PgArrayType>::NAME,
                        )),+],
                    )
                });
                let query = diesel::sql_query(sql.as_str());
                $(
                    let query = query.bind::<diesel::sql_types::Array<
                        <$table::$column as diesel::Expression>::SqlType,
                    >, _>(rows.iter().map(|row| &row.$column).collect::<Vec<_>>());
                )+
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
        assert_eq!(
            unnest_insert_sql("t", &[("a", "text"), ("b", "bytea")]),
            "INSERT INTO t (a, b) SELECT * FROM unnest($1::text[], $2::bytea[])"
        );
    }
}
