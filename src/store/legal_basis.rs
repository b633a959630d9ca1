//! Rules 2 and 3 as SQL, for queries over a population (SPEC §3 rule 6): which subjects have a
//! legal basis for a purpose now, and which interactions may be used for it. Built from a
//! [`PopulationRule`] that the pure policy module computes; evaluated entirely in the database.

use diesel::dsl::{exists, not};
use diesel::prelude::*;
use diesel::sql_types::Bool;

use super::schema::{
    consent_current, interaction_purposes, interactions, objections, restrictions, subject_members,
    subjects,
};
use super::DbConnection;
use crate::policy::PopulationRule;

/// The backend type of [`DbConnection`].
pub type Backend = <DbConnection as diesel::Connection>::Backend;

diesel::alias!(consent_current as later_statement: LaterStatement);

/// A boolean condition on `subjects` rows.
pub type SubjectFilter = Box<dyn BoxableExpression<subjects::table, Backend, SqlType = Bool>>;
/// A boolean condition on `consent_current` rows.
pub type CurrentFilter =
    Box<dyn BoxableExpression<consent_current::table, Backend, SqlType = Bool>>;
/// A boolean condition on `interactions` rows.
pub type InteractionFilter =
    Box<dyn BoxableExpression<interactions::table, Backend, SqlType = Bool>>;

/// Rule 2 as a boolean expression about the subject whose internal id is the column `$subject`
/// (of the query's own table): not restricted; no objection to the purpose or an ancestor; and,
/// for a consent-based purpose, the latest statement on the purpose or an ancestor is a grant.
macro_rules! has_legal_basis {
    ($rule:expr, $subject:expr) => {{
        let rule: &PopulationRule = $rule;
        let tags: Vec<String> = rule.tags.iter().map(ToString::to_string).collect();
        let not_restricted = not(exists(
            restrictions::table.filter(restrictions::subject_pk.eq($subject)),
        ));
        let not_objected = not(exists(
            objections::table
                .filter(objections::subject_pk.eq($subject))
                .filter(objections::purpose.eq_any(tags.clone())),
        ));
        if !rule.needs_consent {
            Box::new(not_restricted.and(not_objected))
        } else if tags.len() == 1 {
            // One purpose, no ancestor: `consent_current` holds one statement per subject and
            // purpose, so it is the latest; no later statement on an ancestor can override it.
            let granted = exists(
                consent_current::table
                    .filter(consent_current::subject_pk.eq($subject))
                    .filter(consent_current::purpose.eq_any(tags))
                    .filter(consent_current::status.eq("granted")),
            );
            Box::new(not_restricted.and(not_objected).and(granted))
        } else {
            let later = later_statement
                .filter(
                    later_statement
                        .field(consent_current::subject_pk)
                        .eq($subject),
                )
                .filter(
                    later_statement
                        .field(consent_current::purpose)
                        .eq_any(tags.clone()),
                )
                .filter(
                    later_statement
                        .field(consent_current::sequence)
                        .gt(consent_current::sequence),
                );
            let latest_is_grant = exists(
                consent_current::table
                    .filter(consent_current::subject_pk.eq($subject))
                    .filter(consent_current::purpose.eq_any(tags))
                    .filter(consent_current::status.eq("granted"))
                    .filter(not(exists(later))),
            );
            Box::new(not_restricted.and(not_objected).and(latest_is_grant))
        }
    }};
}

/// Rule 2 for every subject row (see `has_legal_basis!`). A row of a person merged into
/// another (`subject_members`) is never a person of its own: it has no legal basis, and what it
/// holds counts for the person it was merged into. `merged`: whether anybody was merged (when
/// nobody was, the condition leaves the members out).
pub(crate) fn subject_has_legal_basis(rule: &PopulationRule, merged: bool) -> SubjectFilter {
    let basis: SubjectFilter = has_legal_basis!(rule, subjects::id);
    if !merged {
        return basis;
    }
    let person = not(exists(
        subject_members::table.filter(subject_members::member_pk.eq(subjects::id)),
    ));
    Box::new(person.and(basis))
}

/// Rule 2 for one person, as a condition on interaction rows: lets a read of the person's
/// interactions (their own and their members', `subject_members`) check the person's legal
/// basis in the statement that reads them.
pub(crate) fn person_has_legal_basis(rule: &PopulationRule, person_pk: &str) -> InteractionFilter {
    has_legal_basis!(rule, person_pk.to_owned())
}

/// Rule 2 over `consent_current` rows, for a consent-based purpose: the row is a subject's
/// latest statement on the purpose or an ancestor, it is a grant, and the subject is neither
/// restricted nor objecting. At most one row per subject qualifies (the latest), so a
/// population query over a consent-based purpose can be driven from the granted statements (an
/// index range of `consent_current (purpose, status, subject_pk)`) instead of from every
/// subject: the people who never consented are never visited.
pub(crate) fn statement_gives_legal_basis(rule: &PopulationRule) -> CurrentFilter {
    let tags: Vec<String> = rule.tags.iter().map(ToString::to_string).collect();
    let granted = consent_current::purpose
        .eq_any(tags.clone())
        .and(consent_current::status.eq("granted"));
    let not_restricted = not(exists(
        restrictions::table.filter(restrictions::subject_pk.eq(consent_current::subject_pk)),
    ));
    let not_objected = not(exists(
        objections::table
            .filter(objections::subject_pk.eq(consent_current::subject_pk))
            .filter(objections::purpose.eq_any(tags.clone())),
    ));
    let basis = granted.and(not_restricted).and(not_objected);
    if tags.len() == 1 {
        // One purpose, no ancestor: the row is the subject's only statement that counts.
        return Box::new(basis);
    }
    let later = later_statement
        .filter(
            later_statement
                .field(consent_current::subject_pk)
                .eq(consent_current::subject_pk),
        )
        .filter(later_statement.field(consent_current::purpose).eq_any(tags))
        .filter(
            later_statement
                .field(consent_current::sequence)
                .gt(consent_current::sequence),
        );
    Box::new(basis.and(not(exists(later))))
}

/// Rule 3 for every interaction row: it was collected for the purpose or an ancestor.
pub(crate) fn interaction_usable_for(rule: &PopulationRule) -> InteractionFilter {
    let tags: Vec<String> = rule.tags.iter().map(ToString::to_string).collect();
    Box::new(exists(
        interaction_purposes::table
            .filter(interaction_purposes::interaction_pk.eq(interactions::id))
            .filter(interaction_purposes::purpose.eq_any(tags)),
    ))
}

/// The internal ids, sorted, of the subjects among `subject_pks` with a legal basis under
/// `rule` (all subjects when `subject_pks` is `None`).
#[cfg(any(test, feature = "test-support"))]
pub fn subjects_with_legal_basis(
    conn: &mut DbConnection,
    rule: &PopulationRule,
    subject_pks: Option<&[&str]>,
) -> Result<Vec<String>, super::StoreError> {
    let mut query = subjects::table
        .filter(subject_has_legal_basis(rule, true))
        .select(subjects::id)
        .order(subjects::id)
        .into_boxed();
    if let Some(pks) = subject_pks {
        query = query
            .filter(subjects::id.eq_any(pks.iter().map(|pk| (*pk).to_owned()).collect::<Vec<_>>()));
    }
    Ok(query.load(conn)?)
}
