//! Checks of the consent-standards tables: `[controller]`, `[dpv]`, `[tcf]`, `[gpp]`, `[gpc]`.
//! DPV terms must be defined by the embedded vocabulary (`crate::policy::vocabulary`).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::{at, Checker, Location, RawFile};
use crate::policy::standards::{Controller, Dpv, GpcStatement, GppMapping, Standards, TcfMapping};
use crate::policy::vocabulary;
use crate::policy::{CategoryId, Field, FieldName, LegalBasis, Purpose, PurposeId};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawController {
    name: Spanned<String>,
    id: Spanned<String>,
    email: Spanned<String>,
    address: Spanned<String>,
    consent_url: Spanned<String>,
    rights_url: Spanned<String>,
    jurisdiction: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDpv {
    #[serde(default)]
    purposes: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    legal_bases: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    categories: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTcf {
    vendor_id: Option<Spanned<i64>>,
    #[serde(default)]
    purposes: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    special_features: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    min_policy_version: Option<Spanned<i64>>,
    max_age_days: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGpp {
    #[serde(default)]
    sale: Vec<Spanned<String>>,
    #[serde(default)]
    sharing: Vec<Spanned<String>>,
    #[serde(default)]
    targeted_advertising: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGpc {
    last_update: Spanned<String>,
}

/// The one table of a kind across the files, or none; a second one is an error.
fn single<'a, T>(
    checker: &mut Checker<'_>,
    files: &'a [(usize, RawFile)],
    name: &str,
    get: impl Fn(&'a RawFile) -> Option<&'a Spanned<T>>,
) -> Option<(usize, &'a Spanned<T>)> {
    let mut found: Option<(usize, &Spanned<T>)> = None;
    for (file, raw) in files {
        let Some(table) = get(raw) else { continue };
        if let Some((first_file, first)) = found {
            let first = checker.describe(&at(first_file, first));
            checker.error(
                &at(*file, table),
                format!("duplicate [{name}] table (first defined at {first})"),
            );
            continue;
        }
        found = Some((*file, table));
    }
    found
}

/// A list of DPV terms, each defined by the vocabulary and of the kind `ancestor` names.
fn terms(
    checker: &mut Checker<'_>,
    file: usize,
    values: &Spanned<Vec<Spanned<String>>>,
    ancestor: &str,
    what: &str,
) -> Vec<String> {
    if values.get_ref().is_empty() {
        checker.error(
            &at(file, values),
            format!("{what} maps to no term: name at least one"),
        );
    }
    let mut kept = Vec::new();
    for value in values.get_ref() {
        let term = value.get_ref();
        if !vocabulary::defines(term) {
            checker.error(
                &at(file, value),
                format!(
                    "{what}: `{}` is not a term of the embedded DPV vocabulary (dpv:, eu-gdpr:, pd:; see standards/dpv)",
                    term.escape_debug()
                ),
            );
        } else if !vocabulary::is_a(term, ancestor) {
            checker.error(
                &at(file, value),
                format!("{what}: `{term}` is not a {ancestor}"),
            );
        } else if !kept.contains(term) {
            kept.push(term.clone());
        }
    }
    kept
}

fn https_url(text: &str) -> bool {
    reqwest::Url::parse(text).is_ok_and(|url| url.scheme() == "https" && url.host().is_some())
}

fn check_controller(
    checker: &mut Checker<'_>,
    file: usize,
    raw: &Spanned<RawController>,
) -> Option<Controller> {
    let raw = raw.get_ref();
    let mut ok = true;
    for (what, value) in [
        ("name", &raw.name),
        ("email", &raw.email),
        ("address", &raw.address),
        ("jurisdiction", &raw.jurisdiction),
    ] {
        let text = value.get_ref();
        if text.trim().is_empty() || text.len() > 512 || text.chars().any(char::is_control) {
            checker.error(
                &at(file, value),
                format!("controller {what} must be 1 to 512 characters without control characters"),
            );
            ok = false;
        }
    }
    if !raw.email.get_ref().contains('@') {
        checker.error(
            &at(file, &raw.email),
            "controller email must be an e-mail address",
        );
        ok = false;
    }
    for (what, value) in [
        ("id", &raw.id),
        ("consent_url", &raw.consent_url),
        ("rights_url", &raw.rights_url),
    ] {
        if !https_url(value.get_ref()) {
            checker.error(
                &at(file, value),
                format!("controller {what} must be an https:// URL"),
            );
            ok = false;
        }
    }
    ok.then(|| Controller {
        name: raw.name.get_ref().clone(),
        id: raw.id.get_ref().clone(),
        email: raw.email.get_ref().clone(),
        address: raw.address.get_ref().clone(),
        consent_url: raw.consent_url.get_ref().clone(),
        rights_url: raw.rights_url.get_ref().clone(),
        jurisdiction: raw.jurisdiction.get_ref().clone(),
    })
}

/// Policy purposes named by a mapping: declared and consent-based (a TCF or GPP signal is a
/// consent choice; it cannot stand for an objection or any other basis).
fn consent_purposes(
    checker: &mut Checker<'_>,
    file: usize,
    ids: &[Spanned<String>],
    purposes: &BTreeMap<PurposeId, Purpose>,
    what: &str,
) -> Vec<PurposeId> {
    let mut kept = Vec::new();
    for id in ids {
        match PurposeId::parse(id.get_ref())
            .ok()
            .and_then(|p| purposes.get(&p))
        {
            Some(purpose) if purpose.legal_basis == LegalBasis::Consent => {
                if !kept.contains(&purpose.id) {
                    kept.push(purpose.id.clone());
                }
            }
            Some(purpose) => checker.error(
                &at(file, id),
                format!(
                    "{what} names `{}`, which does not rest on consent",
                    purpose.id
                ),
            ),
            None => checker.error(
                &at(file, id),
                format!(
                    "{what} names `{}`, which is not a declared purpose",
                    id.get_ref().escape_debug()
                ),
            ),
        }
    }
    kept
}

/// A number key of a TCF table (`"3" = [...]`) within `range`.
fn numbered(
    checker: &mut Checker<'_>,
    location: &Location,
    key: &str,
    range: std::ops::RangeInclusive<u8>,
    what: &str,
) -> Option<u8> {
    match key.parse::<u8>() {
        Ok(number) if range.contains(&number) => Some(number),
        _ => {
            checker.error(
                location,
                format!(
                    "{what} `{}` is not a TCF v2.2 number ({}–{})",
                    key.escape_debug(),
                    range.start(),
                    range.end()
                ),
            );
            None
        }
    }
}

/// An optional whole number of a table: `default` when absent; outside `range`, an error at its
/// line (and `default`, so that checking goes on).
fn number_in<T: TryFrom<i64> + PartialOrd + Copy>(
    checker: &mut Checker<'_>,
    file: usize,
    value: Option<&Spanned<i64>>,
    range: std::ops::RangeInclusive<T>,
    default: T,
    message: &str,
) -> T {
    let Some(value) = value else { return default };
    match T::try_from(*value.get_ref()) {
        Ok(number) if range.contains(&number) => number,
        _ => {
            checker.error(&at(file, value), message);
            default
        }
    }
}

fn check_tcf(
    checker: &mut Checker<'_>,
    file: usize,
    raw: &Spanned<RawTcf>,
    purposes: &BTreeMap<PurposeId, Purpose>,
) -> Option<TcfMapping> {
    let table = raw.get_ref();
    let vendor_id = match &table.vendor_id {
        None => None,
        Some(value) => match u16::try_from(*value.get_ref()) {
            Ok(id) if id >= 1 => Some(id),
            _ => {
                checker.error(
                    &at(file, value),
                    "tcf vendor_id must be a GVL vendor id (1–65535)",
                );
                None
            }
        },
    };
    let mapped = |checker: &mut Checker<'_>,
                  entries: &BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
                  range: std::ops::RangeInclusive<u8>,
                  what: &str| {
        let mut out = BTreeMap::new();
        for (key, ids) in entries {
            let location = at(file, ids);
            let number = numbered(checker, &location, key, range.clone(), what);
            let ids = consent_purposes(checker, file, ids.get_ref(), purposes, what);
            if let Some(number) = number {
                out.insert(number, ids);
            }
        }
        out
    };
    let tcf_purposes = mapped(checker, &table.purposes, 1..=11, "tcf purpose");
    let special_features = mapped(
        checker,
        &table.special_features,
        1..=2,
        "tcf special feature",
    );
    if tcf_purposes.is_empty() && special_features.is_empty() {
        checker.error(
            &at(file, raw),
            "[tcf] maps no purpose and no special feature: a TC string would record nothing",
        );
    }
    let min_policy_version = number_in(
        checker,
        file,
        table.min_policy_version.as_ref(),
        4..=63,
        4,
        "tcf min_policy_version must be 4 (TCF v2.2) or later, up to 63",
    );
    let max_age_days = number_in(
        checker,
        file,
        table.max_age_days.as_ref(),
        1..=3650,
        390,
        "tcf max_age_days must be 1 to 3650",
    );
    Some(TcfMapping {
        vendor_id,
        purposes: tcf_purposes,
        special_features,
        min_policy_version,
        max_age_days,
    })
}

/// Every consent-standards table, checked. `fields` and `purposes` are the checked ones.
pub(super) fn check_standards(
    checker: &mut Checker<'_>,
    files: &[(usize, RawFile)],
    purposes: &BTreeMap<PurposeId, Purpose>,
    fields: &BTreeMap<FieldName, Field>,
) -> Standards {
    let controller_table = single(checker, files, "controller", |raw| raw.controller.as_ref());
    let controller = controller_table.and_then(|(file, raw)| {
        check_controller(checker, file, raw).map(|controller| (at(file, raw), controller))
    });
    let mut dpv = Dpv::default();
    if let Some((file, raw)) = single(checker, files, "dpv", |raw| raw.dpv.as_ref()) {
        let table = raw.get_ref();
        for (key, values) in &table.purposes {
            match PurposeId::parse(key)
                .ok()
                .filter(|id| purposes.contains_key(id))
            {
                Some(id) => {
                    let what = format!("dpv purpose `{id}`");
                    let kept = terms(checker, file, values, "dpv:Purpose", &what);
                    dpv.purposes.insert(id, kept);
                }
                None => checker.error(
                    &at(file, values),
                    format!(
                        "[dpv.purposes] names `{}`, which is not a declared purpose",
                        key.escape_debug()
                    ),
                ),
            }
        }
        for (key, values) in &table.legal_bases {
            let known = [
                LegalBasis::Consent,
                LegalBasis::Contract,
                LegalBasis::LegalObligation,
                LegalBasis::VitalInterests,
                LegalBasis::PublicTask,
                LegalBasis::LegitimateInterest,
            ]
            .iter()
            .any(|basis| basis.as_str() == key);
            if known {
                let what = format!("dpv legal basis `{key}`");
                let kept = terms(checker, file, values, "dpv:LegalBasis", &what);
                dpv.legal_bases.insert(key.clone(), kept);
            } else {
                checker.error(
                    &at(file, values),
                    format!(
                        "[dpv.legal_bases] names `{}`, which is not a legal basis",
                        key.escape_debug()
                    ),
                );
            }
        }
        for (key, values) in &table.categories {
            let declared = CategoryId::parse(key)
                .ok()
                .filter(|category| fields.values().any(|field| &field.category == category));
            match declared {
                Some(category) => {
                    let what = format!("dpv category `{category}`");
                    let kept = terms(checker, file, values, "dpv:PersonalData", &what);
                    dpv.categories.insert(category, kept);
                }
                None => checker.error(
                    &at(file, values),
                    format!(
                        "[dpv.categories] names `{}`, which is no [[field]]'s category",
                        key.escape_debug()
                    ),
                ),
            }
        }
        // Children without their own terms have their parent's (purposes come parents first).
        let ids: Vec<PurposeId> = purposes.keys().cloned().collect();
        for id in ids {
            if !dpv.purposes.contains_key(&id) {
                if let Some(inherited) = id.parent().and_then(|parent| dpv.purposes.get(&parent)) {
                    dpv.purposes.insert(id, inherited.clone());
                }
            }
        }
    }
    // A consent record names the DPV purpose and the personal data of every statement: with a
    // controller declared, nothing may be left unmapped.
    if let Some((location, _)) = &controller {
        let unmapped: Vec<String> = purposes
            .keys()
            .filter(|id| !dpv.purposes.contains_key(*id))
            .map(ToString::to_string)
            .collect();
        if !unmapped.is_empty() {
            checker.error(
                location,
                format!(
                    "with a [controller], every purpose needs its DPV purpose in [dpv.purposes]; missing: {}",
                    unmapped.join(", ")
                ),
            );
        }
        let mut missing: Vec<String> = fields
            .values()
            .map(|field| field.category.clone())
            .filter(|category| !dpv.categories.contains_key(category))
            .map(|category| category.to_string())
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            checker.error(
                location,
                format!(
                    "with a [controller], every field category needs its DPV personal data in [dpv.categories]; missing: {}",
                    missing.join(", ")
                ),
            );
        }
    }
    let tcf = single(checker, files, "tcf", |raw| raw.tcf.as_ref())
        .and_then(|(file, raw)| check_tcf(checker, file, raw, purposes));
    let gpp = single(checker, files, "gpp", |raw| raw.gpp.as_ref()).map(|(file, raw)| {
        let table = raw.get_ref();
        let mapping = GppMapping {
            sale: consent_purposes(checker, file, &table.sale, purposes, "gpp sale"),
            sharing: consent_purposes(checker, file, &table.sharing, purposes, "gpp sharing"),
            targeted_advertising: consent_purposes(
                checker,
                file,
                &table.targeted_advertising,
                purposes,
                "gpp targeted_advertising",
            ),
        };
        if mapping.sale.is_empty()
            && mapping.sharing.is_empty()
            && mapping.targeted_advertising.is_empty()
        {
            checker.error(
                &at(file, raw),
                "[gpp] maps no opt-out (sale, sharing, targeted_advertising) to a purpose",
            );
        }
        mapping
    });
    let gpc = single(checker, files, "gpc", |raw| raw.gpc.as_ref()).and_then(|(file, raw)| {
        let value = &raw.get_ref().last_update;
        match chrono::NaiveDate::parse_from_str(value.get_ref(), "%Y-%m-%d") {
            Ok(last_update) => Some(GpcStatement { last_update }),
            Err(_) => {
                checker.error(
                    &at(file, value),
                    "gpc last_update must be a date (YYYY-MM-DD)",
                );
                None
            }
        }
    });
    Standards {
        controller: controller.map(|(_, controller)| controller),
        dpv,
        tcf,
        gpp,
        gpc,
    }
}
