//! Insights: differentially private aggregates over time for one purpose (`docs/insights.md`).
//!
//! A question names a purpose, an optional segment filter (SPEC §6), a range of days, a measure
//! (people, or interactions) and up to two group keys (a time bucket, the interaction's type or
//! channel, a segmentable trait the purpose may use). The exact aggregate counts only people
//! with an effective legal basis for the purpose and only interactions usable for it (SPEC §3
//! rules 2–3), with each person's contribution bounded ([`Bound`]); OpenDP's discrete Laplace
//! mechanism adds the noise ([`mechanism`]); cells whose keys come from the data are released
//! only above a noisy threshold. Every fresh answer is charged to the purpose's daily privacy
//! budget in the transaction that releases it; the same question asked again that day gets the
//! released answer and spends nothing.

pub mod mechanism;
pub mod tally;

use chrono::{Datelike, Days, NaiveDate};
use serde_json::{json, Value};

use crate::policy::{FieldName, InsightBudget, Policy, Purpose, PurposeId, EPSILON_UNITS};
use crate::population::{sha256_hex, Filter};
use crate::rejection::Rejection;

/// The audit action of an insight.
pub const ACTION_QUERY: &str = "insights.query";
/// The most days a question may span.
pub const MAX_DAYS: u64 = 366;
/// The least ε a question may spend (the budget is kept in millionths).
pub const MIN_EPSILON_MICROS: u64 = 1_000;
/// ε a question spends when it does not say.
pub const DEFAULT_EPSILON_MICROS: u64 = 100_000;
/// The most cells one person may contribute to.
pub const MAX_CELLS_PER_PERSON: u32 = 400;
/// The most interactions one person may contribute to one cell.
pub const MAX_PER_CELL: u32 = 1_000;
/// Interactions per person and cell counted when a question does not say.
pub const DEFAULT_PER_CELL: u32 = 10;
/// The share of a day's δ one question spends (when it spends any).
pub const DELTA_SHARE: u64 = 10;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// People with at least one usable interaction in the cell.
    People,
    /// Usable interactions in the cell (at most `per_cell` per person).
    Interactions,
}

impl Measure {
    fn as_str(self) -> &'static str {
        match self {
            Measure::People => "people",
            Measure::Interactions => "interactions",
        }
    }
}

/// A time bucket's width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// A calendar day (UTC).
    Day,
    /// An ISO week (Monday to Sunday).
    Week,
    /// A calendar month.
    Month,
}

/// One group key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKey {
    /// The time bucket an interaction occurred in.
    Time(TimeUnit),
    /// The interaction's type.
    Type,
    /// The interaction's channel.
    Channel,
    /// A segmentable trait of the person.
    Trait(FieldName),
}

impl GroupKey {
    /// The key's name in a request and in an answer's cell.
    pub fn name(&self) -> String {
        match self {
            GroupKey::Time(TimeUnit::Day) => "day".into(),
            GroupKey::Time(TimeUnit::Week) => "week".into(),
            GroupKey::Time(TimeUnit::Month) => "month".into(),
            GroupKey::Type => "type".into(),
            GroupKey::Channel => "channel".into(),
            GroupKey::Trait(field) => format!("trait:{}", field.as_str()),
        }
    }

    /// Whether the key's values come from the data (released only above a threshold) rather
    /// than from the question (time buckets: every one is released).
    pub fn comes_from_data(&self) -> bool {
        !matches!(self, GroupKey::Time(_))
    }
}

/// How much one person may contribute: to at most `cells` cells, and at most `per_cell` to
/// each (1 when people are counted). A person over the bound contributes to `cells` of their
/// cells chosen at random; the noise is scaled to `cells × per_cell`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    /// Cells per person.
    pub cells: u32,
    /// Per person and cell.
    pub per_cell: u32,
}

impl Bound {
    /// The L1 sensitivity of the bounded aggregate: how much adding or removing one person can
    /// change the sum of all cells.
    pub fn sensitivity(self) -> i64 {
        i64::from(self.cells) * i64::from(self.per_cell)
    }
}

/// A question, checked.
#[derive(Debug, Clone)]
pub struct Question {
    /// The purpose.
    pub purpose: PurposeId,
    /// The population, if narrowed.
    pub filter: Option<Filter>,
    /// The first day.
    pub from: NaiveDate,
    /// The last day (included).
    pub to: NaiveDate,
    /// What is counted.
    pub measure: Measure,
    /// Up to two keys.
    pub group_by: Vec<GroupKey>,
    /// ε to spend, in millionths.
    pub epsilon_micros: u64,
    /// Each person's contribution.
    pub bound: Bound,
}

/// A question as sent (the HTTP layer deserializes it strictly).
#[derive(Debug, Clone)]
pub struct Asked {
    /// `purpose`.
    pub purpose: String,
    /// `filter`.
    pub filter: Option<Value>,
    /// `from` (`YYYY-MM-DD`).
    pub from: String,
    /// `to` (`YYYY-MM-DD`).
    pub to: String,
    /// `measure`.
    pub measure: String,
    /// `group_by`.
    pub group_by: Vec<String>,
    /// `epsilon`.
    pub epsilon: Option<f64>,
    /// `bound.cells`.
    pub cells: Option<u32>,
    /// `bound.per_cell`.
    pub per_cell: Option<u32>,
}

/// A day written `YYYY-MM-DD`, exactly.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
}

fn date(name: &str, text: &str) -> Result<NaiveDate, Rejection> {
    parse_day(text).ok_or_else(|| {
        Rejection::invalid(
            "invalid_date",
            format!("`{name}` must be a date written YYYY-MM-DD"),
        )
    })
}

impl Question {
    /// Checks a question for `purpose` (already authorized for the caller's role).
    pub fn parse(policy: &Policy, purpose: &Purpose, asked: &Asked) -> Result<Question, Rejection> {
        let filter = asked
            .filter
            .as_ref()
            .map(|value| crate::segments::filter::Filter::parse(policy, purpose, value))
            .transpose()?;
        let (from, to) = (date("from", &asked.from)?, date("to", &asked.to)?);
        if to < from {
            return Err(Rejection::invalid(
                "invalid_range",
                "`to` must not be before `from`",
            ));
        }
        if (to - from).num_days() as u64 >= MAX_DAYS {
            return Err(Rejection::invalid(
                "range_too_long",
                format!("a question spans at most {MAX_DAYS} days"),
            ));
        }
        let measure = match asked.measure.as_str() {
            "people" => Measure::People,
            "interactions" => Measure::Interactions,
            _ => {
                return Err(Rejection::invalid(
                    "invalid_measure",
                    "`measure` is `people` or `interactions`",
                ))
            }
        };
        let group_by = Self::group_keys(policy, purpose, &asked.group_by)?;
        let epsilon_micros = match asked.epsilon {
            None => DEFAULT_EPSILON_MICROS,
            Some(epsilon) if epsilon.is_finite() && epsilon > 0.0 => {
                let micros = (epsilon * EPSILON_UNITS).round();
                if micros < MIN_EPSILON_MICROS as f64 || micros > 10.0 * EPSILON_UNITS {
                    return Err(Rejection::invalid(
                        "invalid_epsilon",
                        "`epsilon` must be from 0.001 to 10",
                    ));
                }
                micros as u64
            }
            Some(_) => {
                return Err(Rejection::invalid(
                    "invalid_epsilon",
                    "`epsilon` must be a positive number",
                ))
            }
        };
        let time_buckets = group_by.iter().find_map(|key| match key {
            GroupKey::Time(unit) => Some(TimeAxis::new(*unit, from, to).buckets() as u32),
            _ => None,
        });
        let cells = asked.cells.unwrap_or(time_buckets.unwrap_or(1));
        if !(1..=MAX_CELLS_PER_PERSON).contains(&cells) {
            return Err(Rejection::invalid(
                "invalid_bound",
                format!("`bound.cells` must be from 1 to {MAX_CELLS_PER_PERSON}"),
            ));
        }
        let per_cell = match (measure, asked.per_cell) {
            (Measure::People, None | Some(1)) => 1,
            (Measure::People, Some(_)) => return Err(Rejection::invalid(
                "invalid_bound",
                "`bound.per_cell` is 1 when people are counted (a person counts once in a cell)",
            )),
            (Measure::Interactions, per_cell) => {
                let per_cell = per_cell.unwrap_or(DEFAULT_PER_CELL);
                if !(1..=MAX_PER_CELL).contains(&per_cell) {
                    return Err(Rejection::invalid(
                        "invalid_bound",
                        format!("`bound.per_cell` must be from 1 to {MAX_PER_CELL}"),
                    ));
                }
                per_cell
            }
        };
        Ok(Question {
            purpose: purpose.id.clone(),
            filter,
            from,
            to,
            measure,
            group_by,
            epsilon_micros,
            bound: Bound { cells, per_cell },
        })
    }

    fn group_keys(
        policy: &Policy,
        purpose: &Purpose,
        names: &[String],
    ) -> Result<Vec<GroupKey>, Rejection> {
        if names.len() > 2 {
            return Err(Rejection::invalid(
                "too_many_group_keys",
                "`group_by` has at most two keys",
            ));
        }
        let mut keys: Vec<GroupKey> = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let key = match name.as_str() {
                "day" => GroupKey::Time(TimeUnit::Day),
                "week" => GroupKey::Time(TimeUnit::Week),
                "month" => GroupKey::Time(TimeUnit::Month),
                "type" => GroupKey::Type,
                "channel" => GroupKey::Channel,
                other => match other.strip_prefix("trait:") {
                    Some(field_name) => {
                        let field = policy.field(field_name).ok_or_else(|| {
                            Rejection::invalid(
                                "undeclared_field",
                                format!(
                                    "group_by[{i}]: field `{}` is not declared in the policy",
                                    field_name.escape_debug()
                                ),
                            )
                        })?;
                        if !field.segmentable {
                            return Err(Rejection::invalid(
                                "non_segmentable_trait",
                                format!("group_by[{i}]: `{field_name}` is not segmentable: it is stored encrypted and cannot be grouped on"),
                            ));
                        }
                        if !policy.purpose_may_use(purpose, &field.category) {
                            return Err(Rejection::invalid(
                                "trait_not_permitted",
                                format!(
                                    "group_by[{i}]: `{field_name}` (category `{}`) is not among the categories purpose `{}` may use",
                                    field.category, purpose.id
                                ),
                            ));
                        }
                        GroupKey::Trait(field.name.clone())
                    }
                    None => {
                        return Err(Rejection::invalid(
                            "invalid_group_key",
                            format!("group_by[{i}]: keys are `day`, `week`, `month`, `type`, `channel` or `trait:<field>`"),
                        ))
                    }
                },
            };
            if keys.contains(&key) {
                return Err(Rejection::invalid(
                    "invalid_group_key",
                    format!("group_by[{i}] repeats a key"),
                ));
            }
            if matches!(key, GroupKey::Time(_))
                && keys.iter().any(|k| matches!(k, GroupKey::Time(_)))
            {
                return Err(Rejection::invalid(
                    "invalid_group_key",
                    "`group_by` has at most one time key",
                ));
            }
            keys.push(key);
        }
        Ok(keys)
    }

    /// How much one person counts towards selecting the values of the keys that come from the
    /// data: once per value, in at most as many values as they may have — one for a trait (a
    /// person has one value), `bound.cells` for a type or a channel.
    pub fn selection_bound(&self) -> Bound {
        let traits_only = self
            .group_by
            .iter()
            .filter(|key| key.comes_from_data())
            .all(|key| matches!(key, GroupKey::Trait(_)));
        Bound {
            cells: if traits_only { 1 } else { self.bound.cells },
            per_cell: 1,
        }
    }

    /// Whether some group key's values come from the data (see [`GroupKey::comes_from_data`]).
    pub fn keys_from_data(&self) -> bool {
        self.group_by.iter().any(GroupKey::comes_from_data)
    }

    /// The time axis, when grouped by time.
    pub fn time_axis(&self) -> Option<TimeAxis> {
        self.group_by.iter().find_map(|key| match key {
            GroupKey::Time(unit) => Some(TimeAxis::new(*unit, self.from, self.to)),
            _ => None,
        })
    }

    /// The canonical form: equal for the same question (a repeat gets the released answer).
    pub fn canonical(&self) -> String {
        json!({
            "purpose": self.purpose.as_str(),
            "filter": self.filter.as_ref().map(Filter::canonical),
            "from": self.from.to_string(),
            "to": self.to.to_string(),
            "measure": self.measure.as_str(),
            "group_by": self.group_by.iter().map(GroupKey::name).collect::<Vec<_>>(),
            "epsilon_micros": self.epsilon_micros,
            "bound": [self.bound.cells, self.bound.per_cell],
        })
        .to_string()
    }

    /// SHA-256 (hex) of the canonical form.
    pub fn sha256(&self) -> String {
        sha256_hex(&self.canonical())
    }

    /// SHA-256 (hex) of the filter's canonical form (of `all` when there is none), as the
    /// audit log names it.
    pub fn filter_sha256(&self) -> String {
        self.filter
            .as_ref()
            .map_or_else(|| sha256_hex("all"), Filter::sha256)
    }

    /// The first instant counted, in Unix seconds.
    pub fn start_seconds(&self) -> i64 {
        self.from
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp()
    }

    /// The instant after the last counted, in Unix seconds.
    pub fn end_seconds(&self) -> i64 {
        (self.to + Days::new(1))
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp()
    }
}

/// The identity of a noisy segment size (`docs/segments.md`, "Noisy counts"): the same filter
/// for the same purpose at the same ε is the same question, given the same size that day.
pub fn segment_size_sha256(purpose: &PurposeId, filter: &Filter, epsilon_micros: u64) -> String {
    sha256_hex(
        &json!({"segment_size": purpose.as_str(), "filter": filter.canonical(),
                "epsilon_micros": epsilon_micros})
        .to_string(),
    )
}

/// The time buckets of a question: the bucket of `from` to the bucket of `to`.
#[derive(Debug, Clone)]
pub struct TimeAxis {
    unit: TimeUnit,
    /// Each bucket's first day.
    starts: Vec<NaiveDate>,
    /// Each bucket's first instant, Unix seconds.
    start_seconds: Vec<i64>,
}

impl TimeAxis {
    /// The buckets covering `from` to `to`.
    pub fn new(unit: TimeUnit, from: NaiveDate, to: NaiveDate) -> TimeAxis {
        let first = match unit {
            TimeUnit::Day => from,
            TimeUnit::Week => from - Days::new(u64::from(from.weekday().num_days_from_monday())),
            TimeUnit::Month => from.with_day(1).expect("the first of a month exists"),
        };
        let mut starts = Vec::new();
        let mut start = first;
        while start <= to {
            starts.push(start);
            start = match unit {
                TimeUnit::Day => start + Days::new(1),
                TimeUnit::Week => start + Days::new(7),
                TimeUnit::Month => start
                    .checked_add_months(chrono::Months::new(1))
                    .expect("dates stay in range"),
            };
        }
        let start_seconds = starts
            .iter()
            .map(|day| day.and_time(chrono::NaiveTime::MIN).and_utc().timestamp())
            .collect();
        TimeAxis {
            unit,
            starts,
            start_seconds,
        }
    }

    /// How many buckets.
    pub fn buckets(&self) -> usize {
        self.starts.len()
    }

    /// The bucket of an instant within the question's range.
    pub fn bucket(&self, seconds: i64) -> u32 {
        (self
            .start_seconds
            .partition_point(|start| *start <= seconds)
            - 1) as u32
    }

    /// The label of the bucket a day (within the axis) falls in.
    pub fn label_of(&self, day: NaiveDate) -> String {
        let seconds = day.and_time(chrono::NaiveTime::MIN).and_utc().timestamp();
        self.label(self.bucket(seconds))
    }

    /// A bucket's label: `2026-01-05`, `2026-W02`, `2026-01`.
    pub fn label(&self, bucket: u32) -> String {
        let start = self.starts[bucket as usize];
        match self.unit {
            TimeUnit::Day => start.format("%Y-%m-%d").to_string(),
            TimeUnit::Week => {
                let week = start.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
            TimeUnit::Month => start.format("%Y-%m").to_string(),
        }
    }
}

/// The budgets a question for `purpose` is charged to: its own and each ancestor's that declares
/// one (a purpose's budget caps the insights of its descendants too), nearest first.
pub fn budgets(policy: &Policy, purpose: &PurposeId) -> Vec<(PurposeId, InsightBudget)> {
    policy
        .tags_permitting(purpose)
        .into_iter()
        .filter_map(|id| {
            let budget = policy.purpose(id.as_str())?.insights?;
            Some((id, budget))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn weeks_are_iso_weeks_from_the_week_of_the_first_day() {
        // 2026-01-01 is a Thursday: its ISO week is 2026-W01, which began on 2025-12-29.
        let axis = TimeAxis::new(TimeUnit::Week, day("2026-01-01"), day("2026-01-12"));
        assert_eq!(axis.buckets(), 3);
        assert_eq!(axis.label(0), "2026-W01");
        assert_eq!(axis.label(2), "2026-W03");
        let monday = day("2026-01-05")
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp();
        assert_eq!(axis.bucket(monday - 1), 0);
        assert_eq!(axis.bucket(monday), 1);
    }

    #[test]
    fn months_and_days_cover_the_range() {
        let months = TimeAxis::new(TimeUnit::Month, day("2026-01-31"), day("2026-03-01"));
        assert_eq!(
            (0..3).map(|b| months.label(b)).collect::<Vec<_>>(),
            ["2026-01", "2026-02", "2026-03"]
        );
        let days = TimeAxis::new(TimeUnit::Day, day("2024-02-28"), day("2024-03-01"));
        assert_eq!(days.buckets(), 3);
        assert_eq!(days.label(1), "2024-02-29");
    }
}
