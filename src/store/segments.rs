//! Segments: filters compiled to SQL with the legal basis pushed down (SPEC §6, §3 rules 2, 3,
//! 6), saved segments, and the answers the differencing guard remembers.
//!
//! A population query is one statement: rule 2 (the person has an effective legal basis for the
//! purpose) and the filter, whose leaves are `<id> IN (subquery)` so that the database can drive
//! the query from the most selective index (a trait value, recent interactions of a type)
//! instead of visiting every person. For a consent-based purpose the statement runs over the
//! granted statements in `consent_current` (`legal_basis::statement_gives_legal_basis`): people
//! who never consented are never visited. Otherwise it runs over `subjects`
//! (`legal_basis::subject_has_legal_basis`). Interaction leaves count only interactions usable
//! for the purpose (rule 3).

use chrono::{Duration, NaiveDateTime};
use diesel::connection::SimpleConnection;
use diesel::dsl::{count, count_star, not, sql};
use diesel::prelude::*;
use diesel::sql_types::{Bool, Text};

use super::legal_basis::{statement_gives_legal_basis, subject_has_legal_basis, Backend};
use super::schema::{
    consent_current, interaction_purposes, interactions, segment_answers, segments,
    subject_members, subject_traits, subjects,
};
use super::{DbConnection, StoreError};
use crate::policy::PopulationRule;
use crate::population::{Filter, InteractionCondition};

/// Population queries over one driving table: the filter compiled to a condition on its rows
/// (leaves are `<id> IN (subquery)`), and the bucketed count and member pages with a legal-basis
/// condition on the same rows. Written once, instantiated for `subjects` (purposes on another
/// legal basis: everyone not restricted or objecting) and for `consent_current` (consent-based
/// purposes: only the granted statements; see `legal_basis::statement_gives_legal_basis`).
macro_rules! population {
    ($module:ident, $table:ident, $id:path, $id_sql:literal) => {
        mod $module {
            use super::*;

            /// A boolean condition on the driving table's rows.
            pub type Condition = Box<dyn BoxableExpression<$table::table, Backend, SqlType = Bool>>;

            /// The SQL of a bucket: the first character of the subject's random internal id
            /// (64 values).
            const BUCKET: &str = concat!("substr(", $id_sql, ", 1, 1)");

            /// The filter as a condition on the rows; interaction leaves look back from `now`.
            pub(crate) fn compile(
                filter: &Filter,
                rule: &PopulationRule,
                now: NaiveDateTime,
                merged: bool,
            ) -> Condition {
                match filter {
                    Filter::All(children) => children
                        .iter()
                        .map(|child| compile(child, rule, now, merged))
                        .reduce(|left, right| Box::new(left.and(right)))
                        .expect("`all` has children"),
                    Filter::Any(children) => children
                        .iter()
                        .map(|child| compile(child, rule, now, merged))
                        .reduce(|left, right| Box::new(left.or(right)))
                        .expect("`any` has children"),
                    Filter::Not(child) => Box::new(not(compile(child, rule, now, merged))),
                    Filter::Trait { field, values } => Box::new(
                        $id.eq_any(
                            subject_traits::table
                                .filter(subject_traits::name.eq(field.as_str().to_owned()))
                                .filter(subject_traits::value.eq_any(values.clone()))
                                .select(subject_traits::subject_pk),
                        ),
                    ),
                    Filter::Interactions(condition) => {
                        let leaf = InteractionLeaf::new(condition, rule, now);
                        let usable = interaction_purposes::table
                            .filter(interaction_purposes::purpose.eq_any(leaf.tags.clone()))
                            .filter(interaction_purposes::occurred_at.ge(leaf.since));
                        // The people merged into others (`subject_members`) keep their
                        // interactions: those count for the person, joined through the
                        // member's interactions (their `subject_pk` index). The person's own are
                        // joined too, so that a count is the person's whole; `COUNT(DISTINCT)`
                        // keeps an interaction met through two memberships once.
                        let through_members = subject_members::table
                            .inner_join(
                                interactions::table.on(interactions::subject_pk
                                    .eq(subject_members::member_pk)
                                    .or(interactions::subject_pk.eq(subject_members::person_pk))),
                            )
                            .inner_join(
                                interaction_purposes::table
                                    .on(interaction_purposes::interaction_pk.eq(interactions::id)),
                            )
                            .filter(interaction_purposes::purpose.eq_any(leaf.tags.clone()))
                            .filter(interaction_purposes::occurred_at.ge(leaf.since));
                        // A person's own interactions, as counted before members existed.
                        macro_rules! own_only {
                            ($query:expr) => {
                                if leaf.at_least <= 1 {
                                    Box::new(
                                        $id.eq_any($query.select(interaction_purposes::subject_pk)),
                                    ) as Condition
                                } else if leaf.tags.len() > 1 {
                                    // One interaction may hold several of the tags: count
                                    // interactions, not rows.
                                    Box::new(
                                        $id.eq_any(
                                            $query
                                                .group_by(interaction_purposes::subject_pk)
                                                .having(
                                                    count(interaction_purposes::interaction_pk)
                                                        .aggregate_distinct()
                                                        .ge(leaf.at_least),
                                                )
                                                .select(interaction_purposes::subject_pk),
                                        ),
                                    )
                                } else {
                                    Box::new(
                                        $id.eq_any(
                                            $query
                                                .group_by(interaction_purposes::subject_pk)
                                                .having(count_star().ge(leaf.at_least))
                                                .select(interaction_purposes::subject_pk),
                                        ),
                                    )
                                }
                            };
                        }
                        macro_rules! merged_at_least {
                            ($merged:expr) => {
                                $merged
                                    .group_by(subject_members::person_pk)
                                    .having(
                                        count(interactions::id)
                                            .aggregate_distinct()
                                            .ge(leaf.at_least),
                                    )
                                    .select(subject_members::person_pk)
                            };
                        }
                        // With nobody merged, the statement is the one before members existed.
                        // Otherwise a person's own count can only be below their whole, so the
                        // two sides together are exact.
                        macro_rules! leaf {
                            ($query:expr, $merged:expr) => {{
                                let own: Condition = own_only!($query);
                                if !merged {
                                    own
                                } else if leaf.at_least <= 1 {
                                    Box::new(
                                        own.or(
                                            $id.eq_any($merged.select(subject_members::person_pk))
                                        ),
                                    ) as Condition
                                } else {
                                    Box::new(own.or($id.eq_any(merged_at_least!($merged))))
                                        as Condition
                                }
                            }};
                        }
                        match (condition.kind.clone(), condition.channel.clone()) {
                            (None, None) => leaf!(usable, through_members),
                            (Some(kind), None) => leaf!(
                                usable.filter(
                                    interaction_purposes::interaction_type.eq(kind.clone())
                                ),
                                through_members
                                    .filter(interaction_purposes::interaction_type.eq(kind))
                            ),
                            (None, Some(channel)) => leaf!(
                                usable.filter(interaction_purposes::channel.eq(channel.clone())),
                                through_members.filter(interaction_purposes::channel.eq(channel))
                            ),
                            (Some(kind), Some(channel)) => leaf!(
                                usable
                                    .filter(interaction_purposes::interaction_type.eq(kind.clone()))
                                    .filter(interaction_purposes::channel.eq(channel.clone())),
                                through_members
                                    .filter(interaction_purposes::interaction_type.eq(kind))
                                    .filter(interaction_purposes::channel.eq(channel))
                            ),
                        }
                    }
                }
            }

            /// How many rows satisfy `basis` and match `filter`, by bucket.
            pub(crate) fn count_by_bucket(
                conn: &mut DbConnection,
                basis: Condition,
                rule: &PopulationRule,
                filter: &Filter,
                now: NaiveDateTime,
                merged: bool,
            ) -> Result<Vec<(String, i64)>, StoreError> {
                Ok($table::table
                    .filter(basis)
                    .filter(compile(filter, rule, now, merged))
                    .group_by(sql::<Text>(BUCKET))
                    .select((sql::<Text>(BUCKET), count_star()))
                    .load(conn)?)
            }

            /// A page of the internal ids of the rows satisfying `basis` and matching
            /// `filter` (if any), in id order, after `after`.
            #[allow(clippy::too_many_arguments)]
            pub(crate) fn members_page(
                conn: &mut DbConnection,
                basis: Condition,
                rule: &PopulationRule,
                filter: Option<&Filter>,
                now: NaiveDateTime,
                merged: bool,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<String>, StoreError> {
                let mut query = $table::table
                    .filter(basis)
                    .select($id)
                    .order($id)
                    .limit(limit)
                    .into_boxed();
                if let Some(filter) = filter {
                    query = query.filter(compile(filter, rule, now, merged));
                }
                if let Some(after) = after {
                    query = query.filter($id.gt(after.to_owned()));
                }
                Ok(query.load(conn)?)
            }
        }
    };
}

population!(over_subjects, subjects, subjects::id, "subjects.id");
population!(
    over_statements,
    consent_current,
    consent_current::subject_pk,
    "consent_current.subject_pk"
);

/// What an interaction leaf selects, independent of the table the query is driven from.
struct InteractionLeaf {
    /// The purpose and its ancestors (rule 3: interactions collected for one of them).
    tags: Vec<String>,
    /// The start of the look-back window.
    since: NaiveDateTime,
    /// How many usable interactions a person needs.
    at_least: i64,
}

impl InteractionLeaf {
    fn new(condition: &InteractionCondition, rule: &PopulationRule, now: NaiveDateTime) -> Self {
        // Without a look-back every interaction counts: a bound no time precedes keeps one query
        // shape (diesel needs a concrete type per shape; boxed subqueries do not cross backends).
        let since = condition.within_days.map_or_else(
            || {
                chrono::NaiveDate::from_ymd_opt(1, 1, 1)
                    .expect("a valid date")
                    .and_time(chrono::NaiveTime::MIN)
            },
            |days| now - Duration::days(i64::from(days)),
        );
        InteractionLeaf {
            tags: rule.tags.iter().map(ToString::to_string).collect(),
            since,
            at_least: i64::from(condition.at_least),
        }
    }
}

/// Runs a population query. On PostgreSQL it runs in a read-only transaction that sizes the
/// query's working memory for hashing a population (64 MiB: the set of a leaf stays one
/// in-memory hash instead of spilling to disk or falling back to a row-by-row subplan), turns off
/// JIT compilation (tens of milliseconds of compiling for a query that runs once) and parallel
/// workers (each worker would build the same hashes again; one query uses one core, which also
/// bounds what concurrent previews take from the writers).
fn population_query<T>(
    conn: &mut DbConnection,
    query: impl FnOnce(&mut DbConnection, bool) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Whether anybody was merged into somebody, read in the query's own snapshot: with nobody
    // merged the statement has no member side (the plan of a database without merges).
    let merged = |conn: &mut DbConnection| -> Result<bool, StoreError> {
        Ok(diesel::select(diesel::dsl::exists(
            subject_members::table.select(subject_members::member_pk),
        ))
        .get_result(conn)?)
    };
    if !matches!(conn, DbConnection::Postgresql(_)) {
        return conn.transaction(|conn| {
            let merged = merged(conn)?;
            query(conn, merged)
        });
    }
    conn.transaction(|conn| {
        conn.batch_execute(
            "SET TRANSACTION READ ONLY;
             SET LOCAL work_mem = '64MB';
             SET LOCAL jit = off;
             SET LOCAL max_parallel_workers_per_gather = 0;",
        )?;
        let merged = merged(conn)?;
        query(conn, merged)
    })
}

/// How many people with a legal basis under `rule` match `filter`, by bucket (the first
/// character of their internal id): the size is the sum; the buckets are the sketch the
/// differencing guard compares. Counted in the database, driven from the granted statements
/// for a consent-based purpose and from every subject otherwise.
pub(crate) fn count_by_bucket(
    conn: &mut DbConnection,
    rule: &PopulationRule,
    filter: &Filter,
    now: NaiveDateTime,
) -> Result<Vec<(String, i64)>, StoreError> {
    population_query(conn, |conn, merged| {
        if rule.needs_consent {
            over_statements::count_by_bucket(
                conn,
                statement_gives_legal_basis(rule),
                rule,
                filter,
                now,
                merged,
            )
        } else {
            over_subjects::count_by_bucket(
                conn,
                subject_has_legal_basis(rule, merged),
                rule,
                filter,
                now,
                merged,
            )
        }
    })
}

/// A page of the internal ids of the people with a legal basis under `rule` matching `filter`
/// (everyone with one, without), in id order, after `after`.
pub(crate) fn members_page(
    conn: &mut DbConnection,
    rule: &PopulationRule,
    filter: Option<&Filter>,
    now: NaiveDateTime,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    population_query(conn, |conn, merged| {
        if rule.needs_consent {
            over_statements::members_page(
                conn,
                statement_gives_legal_basis(rule),
                rule,
                filter,
                now,
                merged,
                after,
                limit,
            )
        } else {
            over_subjects::members_page(
                conn,
                subject_has_legal_basis(rule, merged),
                rule,
                filter,
                now,
                merged,
                after,
                limit,
            )
        }
    })
}

/// A saved segment.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = segments)]
pub struct SegmentRow {
    /// Its id.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// The purpose it is evaluated for.
    pub purpose: String,
    /// The canonical filter, JSON.
    pub filter: String,
    /// The API key that saved it.
    pub created_by: Option<String>,
    /// When.
    pub created_at: NaiveDateTime,
}

/// Saves a segment.
pub(crate) fn insert_segment(conn: &mut DbConnection, row: &SegmentRow) -> Result<(), StoreError> {
    diesel::insert_into(segments::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The segment with this id.
pub(crate) fn find_segment(
    conn: &mut DbConnection,
    id: &str,
) -> Result<Option<SegmentRow>, StoreError> {
    Ok(segments::table
        .find(id)
        .select(SegmentRow::as_select())
        .first(conn)
        .optional()?)
}

/// Saved segments for these purposes, newest first, after `before` (an id).
pub(crate) fn list_segments(
    conn: &mut DbConnection,
    purposes: &[String],
    before: Option<&str>,
    limit: i64,
) -> Result<Vec<SegmentRow>, StoreError> {
    let mut query = segments::table
        .filter(segments::purpose.eq_any(purposes))
        .order(segments::id.desc())
        .limit(limit)
        .select(SegmentRow::as_select())
        .into_boxed();
    if let Some(before) = before {
        query = query.filter(segments::id.lt(before.to_owned()));
    }
    Ok(query.load(conn)?)
}

/// A question a key asked, as the differencing guard remembers it.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = segment_answers)]
pub struct AnswerRow {
    /// Its id.
    pub id: String,
    /// The API key it was revealed to.
    pub key_id: String,
    /// The purpose.
    pub purpose: String,
    /// SHA-256 of the canonical filter.
    pub filter_sha256: String,
    /// The true size (revealed or not).
    pub size: i64,
    /// JSON array of 64 bucket counts.
    pub sketch: String,
    /// When.
    pub answered_at: NaiveDateTime,
    /// `revealed`, `suppressed` (below min_size) or `refused` (by the differencing guard).
    pub outcome: String,
}

/// Serializes the guard's work for one key: PostgreSQL takes a transaction-level advisory lock
/// on the key (two previews by the same key cannot both pass the guard unseen by each other);
/// SQLite's writer already holds the database.
pub(crate) fn lock_key(conn: &mut DbConnection, key_id: &str) -> Result<(), StoreError> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1)) IS NULL")
            .bind::<Text, _>(format!("custodia/segments/{key_id}"))
            .execute(pg)?;
    }
    Ok(())
}

/// The questions `key_id` asked for `purpose` since `since`, whatever they were answered.
pub(crate) fn answers_since(
    conn: &mut DbConnection,
    key_id: &str,
    purpose: &str,
    since: NaiveDateTime,
) -> Result<Vec<AnswerRow>, StoreError> {
    Ok(segment_answers::table
        .filter(segment_answers::key_id.eq(key_id))
        .filter(segment_answers::purpose.eq(purpose))
        .filter(segment_answers::answered_at.ge(since))
        .order(segment_answers::answered_at.desc())
        .select(AnswerRow::as_select())
        .load(conn)?)
}

/// How many of the questions `key_id` asked (for any purpose) since `since` were answered with
/// one of `outcomes`.
pub(crate) fn outcomes_since(
    conn: &mut DbConnection,
    key_id: &str,
    outcomes: &[&str],
    since: NaiveDateTime,
) -> Result<i64, StoreError> {
    Ok(segment_answers::table
        .filter(segment_answers::key_id.eq(key_id))
        .filter(segment_answers::answered_at.ge(since))
        .filter(segment_answers::outcome.eq_any(outcomes.iter().map(|o| o.to_string())))
        .count()
        .get_result(conn)?)
}

/// The oldest answer with one of `outcomes` given to `key_id` since `since` (when the probe
/// limit lifts).
pub(crate) fn oldest_since(
    conn: &mut DbConnection,
    key_id: &str,
    outcomes: &[&str],
    since: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, StoreError> {
    Ok(segment_answers::table
        .filter(segment_answers::key_id.eq(key_id))
        .filter(segment_answers::answered_at.ge(since))
        .filter(segment_answers::outcome.eq_any(outcomes.iter().map(|o| o.to_string())))
        .select(diesel::dsl::min(segment_answers::answered_at))
        .first(conn)?)
}

/// Remembers an answer.
pub(crate) fn insert_answer(conn: &mut DbConnection, row: &AnswerRow) -> Result<(), StoreError> {
    diesel::insert_into(segment_answers::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Forgets answers older than `before` (they no longer count against anyone).
pub(crate) fn prune_answers(
    conn: &mut DbConnection,
    before: NaiveDateTime,
) -> Result<usize, StoreError> {
    Ok(
        diesel::delete(segment_answers::table.filter(segment_answers::answered_at.lt(before)))
            .execute(conn)?,
    )
}
