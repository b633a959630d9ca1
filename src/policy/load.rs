//! Parsing and validation of policy files. Every error names `file:line`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

mod standards;

use super::{
    Action, CategoryId, Field, FieldName, InsightBudget, LegalBasis, MergeConsent, Notice, Policy,
    Purpose, PurposeId, Role, RoleId, SegmentCounts, SegmentLimits, Tracking, TrackingNotice,
    DELTA_UNITS, EPSILON_UNITS, SEGMENT_CONSENT_EVENT,
};

/// The segment size used when no `[segments]` table sets one.
pub const DEFAULT_MIN_SEGMENT_SIZE: u32 = 10;
/// Withheld sizes one key may be given per guard window when `[segments]` does not say.
pub const DEFAULT_MAX_WITHHELD: u32 = 100;
/// Differencing refusals of one key per window that alert compliance, when not configured.
pub const DEFAULT_ALERT_REFUSALS: u32 = 10;
/// The longest retention a purpose may declare (100 years).
const MAX_RETENTION_DAYS: i64 = 36_500;

/// One policy file's name and text.
#[derive(Debug, Clone)]
pub struct PolicySource {
    /// The file name as shown in errors (e.g. `policies/purposes.toml`).
    pub name: String,
    /// The file's contents.
    pub text: String,
}

/// One problem found in the policy files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// The file (or directory) the problem is in.
    pub file: String,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in the policy files (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    purpose: Vec<RawPurpose>,
    #[serde(default)]
    field: Vec<RawField>,
    #[serde(default)]
    role: Vec<RawRole>,
    #[serde(default)]
    notice: Vec<RawNotice>,
    segments: Option<Spanned<RawSegments>>,
    tracking: Option<Spanned<RawTracking>>,
    controller: Option<Spanned<standards::RawController>>,
    dpv: Option<Spanned<standards::RawDpv>>,
    tcf: Option<Spanned<standards::RawTcf>>,
    gpp: Option<Spanned<standards::RawGpp>>,
    gpc: Option<Spanned<standards::RawGpc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTracking {
    #[serde(default)]
    default_purposes: Vec<Spanned<String>>,
    #[serde(default)]
    events: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    consent_categories: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default)]
    merge_consent: Option<Spanned<String>>,
    consent_events: Option<Vec<String>>,
    consent_notice: Option<Spanned<RawTrackingNotice>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrackingNotice {
    id: String,
    version: String,
    language: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotice {
    id: Spanned<String>,
    version: Spanned<String>,
    language: Spanned<String>,
    url: Spanned<String>,
    sha256: Spanned<String>,
    purposes: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPurpose {
    id: Spanned<String>,
    legal_basis: LegalBasis,
    description: Spanned<String>,
    retention_days: Spanned<i64>,
    #[serde(default)]
    gpc: bool,
    /// Absent: held exactly when the legal basis is `legal_obligation`.
    legal_hold: Option<bool>,
    categories: Option<Vec<Spanned<String>>>,
    insights: Option<Spanned<RawInsights>>,
}

/// `insights = { epsilon_per_day = 1.0, delta_per_day = 1e-6 }` on a purpose.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInsights {
    epsilon_per_day: f64,
    #[serde(default)]
    delta_per_day: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: Spanned<String>,
    category: Spanned<String>,
    #[serde(default)]
    segmentable: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    id: Spanned<String>,
    actions: Vec<Spanned<String>>,
    #[serde(default)]
    purposes: Vec<Spanned<String>>,
    #[serde(default)]
    own_requests_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSegments {
    min_size: Spanned<i64>,
    #[serde(default)]
    counts: Option<Spanned<String>>,
    #[serde(default)]
    epsilon: Option<Spanned<f64>>,
    #[serde(default)]
    max_withheld: Option<Spanned<i64>>,
    #[serde(default)]
    alert_refusals: Option<Spanned<i64>>,
}

/// Reads every `*.toml` file directly inside `dir` (sorted by name) and validates them together.
pub fn load_dir(dir: &Path) -> Result<Policy, PolicyErrors> {
    let dir_error = |message: String| {
        PolicyErrors(vec![PolicyError {
            file: dir.display().to_string(),
            line: None,
            message,
        }])
    };
    let entries = std::fs::read_dir(dir)
        .map_err(|error| dir_error(format!("cannot read the policy directory: {error}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|error| dir_error(format!("cannot read the policy directory: {error}")))?
            .path();
        if path.extension().is_some_and(|ext| ext == "toml") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(dir_error("no *.toml policy files in this directory".into()));
    }
    let mut sources = Vec::with_capacity(paths.len());
    for path in paths {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|error| {
            PolicyErrors(vec![PolicyError {
                file: name.clone(),
                line: None,
                message: format!("cannot read the file: {error}"),
            }])
        })?;
        sources.push(PolicySource { name, text });
    }
    Policy::from_sources(&sources)
}

/// Where something was written: which file, which bytes.
#[derive(Clone)]
struct Location {
    file: usize,
    span: Range<usize>,
}

/// Collects errors while validation goes on, so that one run reports all of them.
struct Checker<'a> {
    sources: &'a [PolicySource],
    errors: Vec<PolicyError>,
}

impl Checker<'_> {
    fn line_of(&self, location: &Location) -> usize {
        let text = &self.sources[location.file].text;
        let end = location.span.start.min(text.len());
        1 + text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
    }

    fn describe(&self, location: &Location) -> String {
        format!(
            "{}:{}",
            self.sources[location.file].name,
            self.line_of(location)
        )
    }

    fn error(&mut self, location: &Location, message: impl Into<String>) {
        let line = Some(self.line_of(location));
        self.errors.push(PolicyError {
            file: self.sources[location.file].name.clone(),
            line,
            message: message.into(),
        });
    }

    /// Records a duplicate, or remembers where `key` was first defined.
    fn first_definition(
        &mut self,
        seen: &mut BTreeMap<String, Location>,
        what: &str,
        key: &str,
        location: &Location,
    ) -> bool {
        if let Some(first) = seen.get(key) {
            let first = self.describe(first);
            self.error(
                location,
                format!("duplicate {what} `{key}` (first defined at {first})"),
            );
            false
        } else {
            seen.insert(key.to_owned(), location.clone());
            true
        }
    }
}

fn at<T>(file: usize, spanned: &Spanned<T>) -> Location {
    Location {
        file,
        span: spanned.span(),
    }
}

struct ParsedPurpose {
    location: Location,
    id: PurposeId,
    legal_basis: LegalBasis,
    description: String,
    retention_days: u32,
    gpc: bool,
    legal_hold: bool,
    categories: Option<Vec<(Location, CategoryId)>>,
    insights: Option<InsightBudget>,
}

impl Policy {
    /// Validates policy files given as text. Pure: no I/O.
    pub fn from_sources(sources: &[PolicySource]) -> Result<Policy, PolicyErrors> {
        let mut checker = Checker {
            sources,
            errors: Vec::new(),
        };
        let mut files = Vec::with_capacity(sources.len());
        for (index, source) in sources.iter().enumerate() {
            match toml::from_str::<RawFile>(&source.text) {
                Ok(file) => files.push((index, file)),
                Err(error) => {
                    let location = Location {
                        file: index,
                        span: error.span().unwrap_or(0..0),
                    };
                    let message = error.message().trim().to_owned();
                    checker.error(&location, message);
                }
            }
        }
        if !checker.errors.is_empty() {
            return Err(PolicyErrors(checker.errors));
        }

        let fields = check_fields(&mut checker, &files);
        let known_categories: BTreeSet<CategoryId> = fields
            .values()
            .flat_map(|field| field.category.with_ancestors())
            .collect();
        let purposes = check_purposes(&mut checker, &files, &known_categories);
        let roles = check_roles(&mut checker, &files, &purposes);
        let segments = check_segments(&mut checker, &files);
        let notices = check_notices(&mut checker, &files, &purposes);
        let tracking = check_tracking(&mut checker, &files, &purposes, &notices);
        let standards = standards::check_standards(&mut checker, &files, &purposes, &fields);
        if roles.is_empty() && checker.errors.is_empty() {
            checker.errors.push(PolicyError {
                file: sources.first().map(|s| s.name.clone()).unwrap_or_default(),
                line: None,
                message: "the policy defines no [[role]]: no API key could do anything".into(),
            });
        }
        if !checker.errors.is_empty() {
            return Err(PolicyErrors(checker.errors));
        }
        Ok(Policy {
            purposes,
            fields,
            roles,
            notices,
            segments,
            tracking,
            standards,
            sha256: policy_digest(sources),
            files: sources.iter().map(|s| file_name(&s.name)).collect(),
        })
    }
}

/// A notice id or version: 1 to 64 letters, digits, `.`, `_` or `-`.
fn is_notice_token(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A language tag as notices use them: `en`, `de`, `pt-BR`, `es-419` (primary language of 2–3
/// lowercase letters, optionally a region of 2 capitals or 3 digits).
pub(crate) fn is_language_tag(text: &str) -> bool {
    let (language, region) = match text.split_once('-') {
        Some((language, region)) => (language, Some(region)),
        None => (text, None),
    };
    (2..=3).contains(&language.len())
        && language.bytes().all(|b| b.is_ascii_lowercase())
        && region.is_none_or(|region| {
            (region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase()))
                || (region.len() == 3 && region.bytes().all(|b| b.is_ascii_digit()))
        })
}

fn check_notices(
    checker: &mut Checker<'_>,
    files: &[(usize, RawFile)],
    purposes: &BTreeMap<PurposeId, Purpose>,
) -> Vec<Notice> {
    let mut seen = BTreeMap::new();
    let mut notices = Vec::new();
    for (file, raw) in files {
        for notice in &raw.notice {
            let mut ok = true;
            let mut fail = |checker: &mut Checker<'_>, location: Location, message: String| {
                checker.error(&location, message);
                ok = false;
            };
            for (what, value) in [("id", &notice.id), ("version", &notice.version)] {
                if !is_notice_token(value.get_ref()) {
                    fail(
                        checker,
                        at(*file, value),
                        format!(
                            "notice {what} `{}` must be 1 to 64 letters, digits, `.`, `_` or `-`",
                            value.get_ref().escape_debug()
                        ),
                    );
                }
            }
            if !is_language_tag(notice.language.get_ref()) {
                fail(
                    checker,
                    at(*file, &notice.language),
                    format!(
                        "notice language `{}` must be a language tag such as `en`, `de` or `pt-BR`",
                        notice.language.get_ref().escape_debug()
                    ),
                );
            }
            let url_ok = reqwest::Url::parse(notice.url.get_ref()).is_ok_and(|url| {
                url.scheme() == "https" && url.host_str().is_some_and(|host| !host.is_empty())
            });
            if !url_ok {
                fail(
                    checker,
                    at(*file, &notice.url),
                    "notice url must be an https:// URL where the text is published".into(),
                );
            }
            let digest = notice.sha256.get_ref();
            if digest.len() != 64
                || !digest
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                fail(
                    checker,
                    at(*file, &notice.sha256),
                    "notice sha256 must be the SHA-256 of the text shown, as 64 lowercase hex digits".into(),
                );
            }
            let mut covered = Vec::new();
            if notice.purposes.is_empty() {
                fail(
                    checker,
                    at(*file, &notice.id),
                    "a notice names the purposes it asks consent for (`purposes`)".into(),
                );
            }
            for raw_purpose in &notice.purposes {
                let location = at(*file, raw_purpose);
                match PurposeId::parse(raw_purpose.get_ref())
                    .ok()
                    .and_then(|id| purposes.get(&id))
                {
                    Some(purpose) if purpose.legal_basis == LegalBasis::Consent => {
                        covered.push(purpose.id.clone())
                    }
                    Some(purpose) => fail(
                        checker,
                        location,
                        format!("notice purpose `{}` does not rest on consent", purpose.id),
                    ),
                    None => fail(
                        checker,
                        location,
                        format!(
                            "unknown purpose `{}` in notice",
                            raw_purpose.get_ref().escape_debug()
                        ),
                    ),
                }
            }
            let key = format!(
                "{} version {} ({})",
                notice.id.get_ref(),
                notice.version.get_ref(),
                notice.language.get_ref()
            );
            if !checker.first_definition(&mut seen, "notice", &key, &at(*file, &notice.id)) || !ok {
                continue;
            }
            notices.push(Notice {
                id: notice.id.get_ref().clone(),
                version: notice.version.get_ref().clone(),
                language: notice.language.get_ref().clone(),
                url: notice.url.get_ref().clone(),
                sha256: digest.clone(),
                purposes: covered,
            });
        }
    }
    notices.sort_by(|a, b| (&a.id, &a.version, &a.language).cmp(&(&b.id, &b.version, &b.language)));
    notices
}

fn check_fields(
    checker: &mut Checker<'_>,
    files: &[(usize, RawFile)],
) -> BTreeMap<FieldName, Field> {
    let mut seen = BTreeMap::new();
    let mut fields = BTreeMap::new();
    for (file, raw) in files {
        for field in &raw.field {
            let location = at(*file, &field.name);
            let name = match FieldName::parse(field.name.get_ref()) {
                Ok(name) => name,
                Err(message) => {
                    checker.error(&location, message);
                    continue;
                }
            };
            let category = match CategoryId::parse(field.category.get_ref()) {
                Ok(category) => category,
                Err(message) => {
                    checker.error(&at(*file, &field.category), message);
                    continue;
                }
            };
            if checker.first_definition(&mut seen, "field", name.as_str(), &location) {
                fields.insert(
                    name.clone(),
                    Field {
                        name,
                        category,
                        segmentable: field.segmentable,
                    },
                );
            }
        }
    }
    fields
}

fn check_purposes(
    checker: &mut Checker<'_>,
    files: &[(usize, RawFile)],
    known_categories: &BTreeSet<CategoryId>,
) -> BTreeMap<PurposeId, Purpose> {
    let mut seen = BTreeMap::new();
    let mut parsed: BTreeMap<PurposeId, ParsedPurpose> = BTreeMap::new();
    for (file, raw) in files {
        for purpose in &raw.purpose {
            let location = at(*file, &purpose.id);
            let id = match PurposeId::parse(purpose.id.get_ref()) {
                Ok(id) => id,
                Err(message) => {
                    checker.error(&location, message);
                    continue;
                }
            };
            if checker.first_definition(&mut seen, "purpose", id.as_str(), &location) {
                let parsed_purpose =
                    parse_purpose(checker, *file, purpose, location, id, known_categories);
                parsed.insert(parsed_purpose.id.clone(), parsed_purpose);
            }
        }
    }
    resolve_hierarchy(checker, &parsed)
}

/// One purpose as written, its values checked (each mistake reported where it is written).
fn parse_purpose(
    checker: &mut Checker<'_>,
    file: usize,
    purpose: &RawPurpose,
    location: Location,
    id: PurposeId,
    known_categories: &BTreeSet<CategoryId>,
) -> ParsedPurpose {
    let description = purpose.description.get_ref().trim();
    if description.is_empty() {
        checker.error(
            &at(file, &purpose.description),
            format!("purpose `{id}` needs a non-empty description"),
        );
    }
    let retention = *purpose.retention_days.get_ref();
    if !(1..=MAX_RETENTION_DAYS).contains(&retention) {
        checker.error(
            &at(file, &purpose.retention_days),
            format!(
                "retention_days of purpose `{id}` must be between 1 and {MAX_RETENTION_DAYS}, not {retention}"
            ),
        );
    }
    let categories = purpose.categories.as_ref().map(|list| {
        let mut categories = Vec::new();
        for raw_category in list {
            let category_location = at(file, raw_category);
            match CategoryId::parse(raw_category.get_ref()) {
                Ok(category) if known_categories.contains(&category) => {
                    categories.push((category_location, category));
                }
                Ok(category) => checker.error(
                    &category_location,
                    format!(
                        "unknown data category `{category}` in purpose `{id}`: no [[field]] belongs to it"
                    ),
                ),
                Err(message) => checker.error(&category_location, message),
            }
        }
        categories
    });
    let insights = purpose
        .insights
        .as_ref()
        .and_then(|raw| check_insights(checker, file, raw, &id));
    ParsedPurpose {
        location,
        id,
        legal_basis: purpose.legal_basis,
        description: description.to_owned(),
        retention_days: u32::try_from(retention.clamp(1, MAX_RETENTION_DAYS)).unwrap_or(1),
        gpc: purpose.gpc,
        legal_hold: purpose
            .legal_hold
            .unwrap_or(purpose.legal_basis == LegalBasis::LegalObligation),
        categories,
        insights,
    }
}

/// The most ε a purpose may spend on insights per day.
const MAX_EPSILON_PER_DAY: f64 = 10.0;
/// The most δ a purpose may spend per day (a δ is a probability of failing outright: keep it far
/// below one over the population).
const MAX_DELTA_PER_DAY: f64 = 1e-3;

/// A purpose's insights budget, checked.
fn check_insights(
    checker: &mut Checker<'_>,
    file: usize,
    raw: &Spanned<RawInsights>,
    id: &PurposeId,
) -> Option<InsightBudget> {
    let location = at(file, raw);
    let (epsilon, delta) = (raw.get_ref().epsilon_per_day, raw.get_ref().delta_per_day);
    if !(0.001..=MAX_EPSILON_PER_DAY).contains(&epsilon) {
        checker.error(
            &location,
            format!("insights.epsilon_per_day of purpose `{id}` must be from 0.001 to {MAX_EPSILON_PER_DAY}, not {epsilon}"),
        );
        return None;
    }
    if !(delta == 0.0 || (1e-12..=MAX_DELTA_PER_DAY).contains(&delta)) {
        checker.error(
            &location,
            format!("insights.delta_per_day of purpose `{id}` must be 0 or from 1e-12 to {MAX_DELTA_PER_DAY}, not {delta}"),
        );
        return None;
    }
    Some(InsightBudget {
        epsilon_per_day_micros: (epsilon * EPSILON_UNITS).round() as u64,
        delta_per_day_picos: (delta * DELTA_UNITS).round() as u64,
    })
}

/// Parents before children: a dotted id's depth orders the hierarchy, so no cycle can be
/// written down and one pass in depth order resolves every inherited category list. A purpose
/// whose parent is missing or invalid is reported and left out.
fn resolve_hierarchy(
    checker: &mut Checker<'_>,
    parsed: &BTreeMap<PurposeId, ParsedPurpose>,
) -> BTreeMap<PurposeId, Purpose> {
    let mut order: Vec<&ParsedPurpose> = parsed.values().collect();
    order.sort_by_key(|p| (p.id.as_str().matches('.').count(), p.id.clone()));
    let mut purposes: BTreeMap<PurposeId, Purpose> = BTreeMap::new();
    for purpose in order {
        let parent = match purpose.id.parent() {
            Some(parent_id) => match purposes.get(&parent_id) {
                Some(parent) => Some(parent),
                None => {
                    let message = if parsed.contains_key(&parent_id) {
                        format!(
                            "purpose `{}` descends from `{parent_id}`, which is invalid",
                            purpose.id
                        )
                    } else {
                        format!(
                            "unknown parent purpose `{parent_id}` of `{}`: declare it",
                            purpose.id
                        )
                    };
                    checker.error(&purpose.location, message);
                    continue;
                }
            },
            None => None,
        };
        let Some((categories, inherited)) = resolve_categories(checker, purpose, parent) else {
            continue;
        };
        purposes.insert(
            purpose.id.clone(),
            Purpose {
                id: purpose.id.clone(),
                legal_basis: purpose.legal_basis,
                description: purpose.description.clone(),
                retention_days: purpose.retention_days,
                gpc: purpose.gpc,
                legal_hold: purpose.legal_hold,
                categories,
                categories_inherited: inherited,
                insights: purpose.insights,
            },
        );
    }
    purposes
}

/// A purpose's categories (and whether they are its parent's): its own, each within its
/// parent's, or else its parent's; `None` (reported) for a root that declares none.
fn resolve_categories(
    checker: &mut Checker<'_>,
    purpose: &ParsedPurpose,
    parent: Option<&Purpose>,
) -> Option<(Vec<CategoryId>, bool)> {
    match (&purpose.categories, parent) {
        (Some(own), parent) => {
            if let Some(parent) = parent {
                for (location, category) in own {
                    if !parent.categories.iter().any(|c| category.is_within(c)) {
                        checker.error(
                            location,
                            format!(
                                "purpose `{}` may not use category `{category}`: its parent `{}` does not",
                                purpose.id, parent.id
                            ),
                        );
                    }
                }
            }
            let mut list: Vec<CategoryId> = own.iter().map(|(_, c)| c.clone()).collect();
            list.sort();
            list.dedup();
            Some((list, false))
        }
        (None, Some(parent)) => Some((parent.categories.clone(), true)),
        (None, None) => {
            checker.error(
                &purpose.location,
                format!(
                    "purpose `{}` has no parent to inherit categories from: declare `categories`",
                    purpose.id
                ),
            );
            None
        }
    }
}

fn check_roles(
    checker: &mut Checker<'_>,
    files: &[(usize, RawFile)],
    purposes: &BTreeMap<PurposeId, Purpose>,
) -> BTreeMap<RoleId, Role> {
    let mut seen = BTreeMap::new();
    let mut roles = BTreeMap::new();
    for (file, raw) in files {
        for role in &raw.role {
            let location = at(*file, &role.id);
            let id = match RoleId::parse(role.id.get_ref()) {
                Ok(id) => id,
                Err(message) => {
                    checker.error(&location, message);
                    continue;
                }
            };
            if !checker.first_definition(&mut seen, "role", id.as_str(), &location) {
                continue;
            }
            let mut actions = Vec::new();
            for raw_action in &role.actions {
                let action_location = at(*file, raw_action);
                match Action::parse(raw_action.get_ref()) {
                    Some(action) if actions.contains(&action) => checker.error(
                        &action_location,
                        format!("action `{action}` is listed twice in role `{id}`"),
                    ),
                    Some(action) => actions.push(action),
                    None => checker.error(
                        &action_location,
                        format!(
                            "unknown action `{}` in role `{id}` (known actions: {})",
                            raw_action.get_ref().escape_debug(),
                            Action::ALL.map(Action::as_str).join(", ")
                        ),
                    ),
                }
            }
            let mut role_purposes = Vec::new();
            for raw_purpose in &role.purposes {
                let purpose_location = at(*file, raw_purpose);
                match PurposeId::parse(raw_purpose.get_ref()) {
                    Ok(purpose) if role_purposes.contains(&purpose) => checker.error(
                        &purpose_location,
                        format!("purpose `{purpose}` is listed twice in role `{id}`"),
                    ),
                    Ok(purpose) if purposes.contains_key(&purpose) => role_purposes.push(purpose),
                    Ok(purpose) => checker.error(
                        &purpose_location,
                        format!("unknown purpose `{purpose}` in role `{id}`"),
                    ),
                    Err(message) => checker.error(&purpose_location, message),
                }
            }
            actions.sort();
            roles.insert(
                id.clone(),
                Role {
                    id,
                    actions,
                    purposes: role_purposes,
                    own_requests_only: role.own_requests_only,
                },
            );
        }
    }
    roles
}

fn check_segments(checker: &mut Checker<'_>, files: &[(usize, RawFile)]) -> SegmentLimits {
    let mut limits = SegmentLimits {
        min_size: DEFAULT_MIN_SEGMENT_SIZE,
        max_withheld: DEFAULT_MAX_WITHHELD,
        alert_refusals: DEFAULT_ALERT_REFUSALS,
        counts: SegmentCounts::Exact,
        epsilon_micros: 100_000,
    };
    let mut first: Option<Location> = None;
    for (file, raw) in files {
        let Some(segments) = &raw.segments else {
            continue;
        };
        let location = at(*file, segments);
        if let Some(first) = &first {
            let first = checker.describe(first);
            checker.error(
                &location,
                format!("duplicate [segments] table (first defined at {first})"),
            );
            continue;
        }
        first = Some(location);
        let min_size = &segments.get_ref().min_size;
        match u32::try_from(*min_size.get_ref()) {
            Ok(size) if size >= 2 => limits.min_size = size,
            _ => checker.error(
                &at(*file, min_size),
                format!(
                    "segments.min_size must be at least 2, not {}",
                    min_size.get_ref()
                ),
            ),
        }
        let bounded = |checker: &mut Checker<'_>, name: &str, value: &Spanned<i64>, max: i64| {
            match u32::try_from(*value.get_ref()) {
                Ok(n) if n >= 1 && i64::from(n) <= max => Some(n),
                _ => {
                    checker.error(
                        &at(*file, value),
                        format!(
                            "segments.{name} must be from 1 to {max}, not {}",
                            value.get_ref()
                        ),
                    );
                    None
                }
            }
        };
        if let Some(value) = &segments.get_ref().max_withheld {
            if let Some(n) = bounded(checker, "max_withheld", value, 1_000_000) {
                limits.max_withheld = n;
            }
        }
        if let Some(value) = &segments.get_ref().alert_refusals {
            if let Some(n) = bounded(checker, "alert_refusals", value, 1_000_000) {
                limits.alert_refusals = n;
            }
        }
        if let Some(counts) = &segments.get_ref().counts {
            match counts.get_ref().as_str() {
                "exact" => limits.counts = SegmentCounts::Exact,
                "noisy" => limits.counts = SegmentCounts::Noisy,
                other => checker.error(
                    &at(*file, counts),
                    format!("segments.counts is \"exact\" or \"noisy\", not {:?}", other),
                ),
            }
        }
        if let Some(epsilon) = &segments.get_ref().epsilon {
            let value = *epsilon.get_ref();
            if (0.001..=MAX_EPSILON_PER_DAY).contains(&value) {
                limits.epsilon_micros = (value * EPSILON_UNITS).round() as u64;
            } else {
                checker.error(
                    &at(*file, epsilon),
                    format!(
                        "segments.epsilon must be from 0.001 to {MAX_EPSILON_PER_DAY}, not {value}"
                    ),
                );
            }
        }
    }
    limits
}

/// The longest event name or consent category the `[tracking]` table may name.
const MAX_TRACKING_NAME: usize = 200;

fn check_tracking(
    checker: &mut Checker<'_>,
    files: &[(usize, RawFile)],
    purposes: &BTreeMap<PurposeId, Purpose>,
    notices: &[Notice],
) -> Option<Tracking> {
    let mut tracking: Option<Tracking> = None;
    let mut first: Option<Location> = None;
    for (file, raw) in files {
        let Some(table) = &raw.tracking else {
            continue;
        };
        let location = at(*file, table);
        if let Some(first) = &first {
            let first = checker.describe(first);
            checker.error(
                &location,
                format!("duplicate [tracking] table (first defined at {first})"),
            );
            continue;
        }
        first = Some(location.clone());
        let known = |checker: &mut Checker<'_>, what: &str, ids: &[Spanned<String>]| {
            let mut kept: Vec<PurposeId> = Vec::with_capacity(ids.len());
            for id in ids {
                match PurposeId::parse(id.get_ref()) {
                    Ok(purpose) if purposes.contains_key(&purpose) => {
                        if !kept.contains(&purpose) {
                            kept.push(purpose);
                        }
                    }
                    _ => checker.error(
                        &at(*file, id),
                        format!(
                            "{what} names `{}`, which is not a declared purpose",
                            id.get_ref()
                        ),
                    ),
                }
            }
            kept
        };
        let raw = table.get_ref();
        let default_purposes = known(checker, "tracking.default_purposes", &raw.default_purposes);
        let named = |checker: &mut Checker<'_>,
                     what: &str,
                     entries: &BTreeMap<String, Vec<Spanned<String>>>| {
            let mut map = BTreeMap::new();
            for (name, ids) in entries {
                if name.trim().is_empty()
                    || name.len() > MAX_TRACKING_NAME
                    || name.chars().any(char::is_control)
                {
                    checker.error(
                        &location,
                        format!(
                            "tracking.{what} names `{name}`: a name is 1 to {MAX_TRACKING_NAME} bytes without control characters"
                        ),
                    );
                    continue;
                }
                map.insert(
                    name.clone(),
                    known(checker, &format!("tracking.{what}.{name}"), ids),
                );
            }
            map
        };
        let events = named(checker, "events", &raw.events);
        let consent_categories = named(checker, "consent_categories", &raw.consent_categories);
        let merge_consent = match &raw.merge_consent {
            None => MergeConsent::default(),
            Some(name) => MergeConsent::parse(name.get_ref()).unwrap_or_else(|| {
                checker.error(
                    &at(*file, name),
                    format!(
                        "tracking.merge_consent is `{}`: use `most_restrictive` or `latest`",
                        name.get_ref().escape_debug()
                    ),
                );
                MergeConsent::default()
            }),
        };
        let consent_notice = raw.consent_notice.as_ref().map(|spanned| {
            let notice = spanned.get_ref();
            if notices
                .iter()
                .all(|declared| declared.id != notice.id || declared.version != notice.version)
            {
                checker.error(
                    &at(*file, spanned),
                    format!(
                        "tracking.consent_notice names `{}` version `{}`, which no [[notice]] declares",
                        notice.id.escape_debug(),
                        notice.version.escape_debug()
                    ),
                );
            }
            TrackingNotice {
                id: notice.id.clone(),
                version: notice.version.clone(),
                language: notice.language.clone(),
            }
        });
        let consent_events = raw
            .consent_events
            .clone()
            .unwrap_or_else(|| vec![SEGMENT_CONSENT_EVENT.to_owned()]);
        tracking = Some(Tracking {
            default_purposes,
            events,
            consent_categories,
            merge_consent,
            consent_events,
            consent_notice,
        });
    }
    tracking
}

/// The last component of a file path: what the digest covers and `GET /v1/policy` shows.
fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_owned())
}

/// SHA-256 over every file in name order: name, a NUL byte, the text's length as a
/// big-endian u64, then the text. Renaming, reordering or editing any file changes it.
fn policy_digest(sources: &[PolicySource]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for source in sources {
        context.update(file_name(&source.name).as_bytes());
        context.update(&[0]);
        context.update(&(source.text.len() as u64).to_be_bytes());
        context.update(source.text.as_bytes());
    }
    hex::encode(context.finish())
}
