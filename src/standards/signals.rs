//! IAB TCF v2.2 TC strings and GPP strings, read into the consent statements they stand for,
//! through the mapping the policy declares (`[tcf]`, `[gpp]`; `docs/standards.md`).
//!
//! - **TCF.** Each policy purpose named in `[tcf] purposes` or `special_features` gets one
//!   statement: granted when every TCF purpose or special feature mapped to it is consented
//!   (with `vendor_id`: the purpose consent, the vendor's consent, and no publisher restriction
//!   forbidding it; without: the publisher TC segment's purpose consent), withdrawn otherwise.
//! - **GPP.** A US section (national or state) that says the person opted out of sale, sharing
//!   or targeted advertising withdraws the purposes mapped to that opt-out; "did not opt out"
//!   is not consent under the policy's consent-based purposes, so it records nothing. Its GPC
//!   field stands for a `Sec-GPC: 1` signal. A `tcfeuv2` section is read like a TC string.
//! - A withdrawal from any signal wins over a grant from another in the same call.
//!
//! Malformed, truncated, outdated (TCF before v2.2, GPP's retired TCF v1 and USP v1 sections)
//! and stale strings are refused with a precise 422, before anything is recorded.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use iab_gpp::sections::SectionId;
use iab_gpp::v1::GPPString;
use serde_json::Value;

use super::tcf::{self, Bits, TcError, TcString};
use crate::policy::standards::{GppMapping, TcfMapping};
use crate::policy::{Policy, PurposeId};
use crate::rejection::Rejection;

/// The longest consent string accepted (a TC string with a full vendor bitfield and every
/// segment is about 3 KB).
pub const MAX_STRING_BYTES: usize = 16 * 1024;

/// What a call's consent strings say, mapped onto policy purposes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// One statement per purpose: granted (`true`) or withdrawn.
    pub statements: BTreeMap<PurposeId, bool>,
    /// Whether a GPP US section carried the GPC signal.
    pub gpc: bool,
}

impl Signals {
    fn decide(&mut self, purpose: &PurposeId, granted: bool) {
        let entry = self.statements.entry(purpose.clone()).or_insert(granted);
        *entry = *entry && granted;
    }
}

fn tcf_refusal(error: &TcError, field: &str) -> Rejection {
    match error {
        TcError::Version(found) => Rejection::invalid(
            "tcf_version_unsupported",
            format!("`{field}` is a TCF v{found} string; TCF v2 (v2.2) strings are required"),
        ),
        TcError::Truncated => Rejection::invalid(
            "invalid_tcf_string",
            format!("`{field}` is truncated: it ends before its fields do"),
        ),
        TcError::NotBase64 => Rejection::invalid(
            "invalid_tcf_string",
            format!("`{field}` is not web-safe base64 (segments separated by `.`)"),
        ),
        TcError::Malformed => Rejection::invalid(
            "invalid_tcf_string",
            format!("`{field}` is malformed: a segment or range does not follow the TCF v2 format"),
        ),
    }
}

/// Decodes a TC string and checks it is current: TCF v2 with a policy version of at least the
/// policy's minimum (4 is v2.2), last updated within `max_age_days` and not in the future.
fn decode_tcf(
    mapping: &TcfMapping,
    text: &str,
    now: DateTime<Utc>,
    field: &str,
) -> Result<TcString, Rejection> {
    if text.is_empty() || text.len() > MAX_STRING_BYTES || !text.is_ascii() {
        return Err(Rejection::invalid(
            "invalid_tcf_string",
            format!("`{field}` must be 1 to {MAX_STRING_BYTES} ASCII characters"),
        ));
    }
    let model = tcf::decode(text).map_err(|error| tcf_refusal(&error, field))?;
    if model.policy_version < mapping.min_policy_version {
        return Err(Rejection::invalid(
            "tcf_policy_outdated",
            format!(
                "`{field}` was made under TCF policy version {}; TCF v2.2 strings (policy version {} or later) are required",
                model.policy_version, mapping.min_policy_version
            ),
        ));
    }
    let updated = model.last_updated;
    let age_days = (now.timestamp() - updated) / 86_400;
    if age_days > i64::from(mapping.max_age_days) {
        return Err(Rejection::invalid(
            "tcf_string_stale",
            format!(
                "`{field}` was last updated {age_days} days ago; the policy accepts strings up to {} days old (the CMP must ask again)",
                mapping.max_age_days
            ),
        ));
    }
    if updated > now.timestamp() + 86_400 {
        return Err(Rejection::invalid(
            "invalid_tcf_string",
            format!("`{field}` was last updated in the future"),
        ));
    }
    Ok(model)
}

/// The statements a decoded TC string stands for.
fn apply_tcf(mapping: &TcfMapping, model: &TcString, signals: &mut Signals) {
    let restricted = |purpose: u8, vendor: u16| {
        model
            .restrictions
            .iter()
            .any(|(restricted, kind, vendors)| {
                *restricted == purpose && *kind == 0 && vendors.contains(&vendor)
            })
    };
    for (purpose, targets) in &mapping.purposes {
        let consented = match mapping.vendor_id {
            Some(vendor) => {
                model.purpose_consents.contains(purpose)
                    && model.vendor_consents.contains(&vendor)
                    && !restricted(*purpose, vendor)
            }
            None => model
                .publisher_consents
                .as_ref()
                .is_some_and(|publisher| publisher.contains(purpose)),
        };
        for target in targets {
            signals.decide(target, consented);
        }
    }
    for (feature, targets) in &mapping.special_features {
        let opted_in = model.special_features.contains(feature)
            && mapping
                .vendor_id
                .is_none_or(|vendor| model.vendor_consents.contains(&vendor));
        for target in targets {
            signals.decide(target, opted_in);
        }
    }
}

fn gpp_invalid(detail: impl Into<String>) -> Rejection {
    Rejection::invalid("invalid_gpp_string", detail)
}

/// Finds the value of `key` anywhere in a decoded section.
fn find<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|inner| find(inner, key))),
        Value::Array(items) => items.iter().find_map(|inner| find(inner, key)),
        _ => None,
    }
}

/// Whether a GPP header's section range stays within what `iab_gpp` can add up (its section
/// ids are `u8`, and a long Fibonacci code overflows them: a panic in a debug build, found by
/// `tests/properties.rs`). Mirrors its reading: type (6 bits), version (6), then `NumEntries`
/// (12) entries, each a single id or an offset and a count, Fibonacci-coded (`11` ends a value).
/// A header that ends early passes: `iab_gpp` refuses it with a read error before adding up.
fn header_fits(header: &str) -> bool {
    // Web-safe base64, six bits per character, packed into bytes (the zero bits that pad the
    // last byte add nothing to a Fibonacci code).
    let mut bytes = vec![0u8; (header.len() * 6).div_ceil(8)];
    for (index, byte) in header.bytes().enumerate() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return false,
        };
        for bit in 0..6 {
            if (value >> (5 - bit)) & 1 == 1 {
                let at = index * 6 + bit;
                bytes[at / 8] |= 0x80 >> (at % 8);
            }
        }
    }
    let mut bits = Bits::new(&bytes, 12);
    let Ok(entries) = bits.read(12) else {
        return true;
    };
    // Each step: whether it stays within `u8`, or `Err` where `iab_gpp` stops reading first.
    let mut last_id = 0u64;
    let mut step = |bits: &mut Bits<'_>| -> Result<bool, TcError> {
        if bits.flag()? {
            // An overflow in the offset is `iab_gpp`'s panic before it reads the count.
            let Some(offset) = fibonacci(bits)? else {
                return Ok(false);
            };
            let Some(count) = fibonacci(bits)? else {
                return Ok(false);
            };
            last_id += offset + count;
            Ok(last_id <= 255)
        } else {
            let Some(id) = fibonacci(bits)? else {
                return Ok(false);
            };
            let fits = last_id + id <= 255;
            last_id = id;
            Ok(fits)
        }
    };
    for _ in 0..entries {
        match step(&mut bits) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(_) => return true,
        }
    }
    true
}

/// A Fibonacci-coded number as `iab_gpp` adds it in `u8`: `None` when it would overflow.
fn fibonacci(bits: &mut Bits<'_>) -> Result<Option<u64>, TcError> {
    const FIBONACCI: [u64; 12] = [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233];
    let (mut total, mut last) = (0u64, false);
    for index in 0.. {
        let bit = bits.flag()?;
        if last && bit {
            break;
        }
        if bit {
            total += FIBONACCI.get(index).copied().unwrap_or(0);
            if total > 255 {
                return Ok(None);
            }
        }
        last = bit;
    }
    Ok(Some(total))
}

/// Runs a third-party decoder so that a panic in it (a bug on malformed input) refuses the
/// string instead of failing the request.
fn guarded<T>(decode: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).ok()
}

/// Reads a GPP string: US sections' opt-outs and GPC, and a TCF EU v2 section.
fn apply_gpp(
    policy: &Policy,
    mapping: Option<&GppMapping>,
    text: &str,
    now: DateTime<Utc>,
    signals: &mut Signals,
) -> Result<(), Rejection> {
    if text.is_empty() || text.len() > MAX_STRING_BYTES || !text.is_ascii() {
        return Err(gpp_invalid(format!(
            "`gpp_string` must be 1 to {MAX_STRING_BYTES} ASCII characters"
        )));
    }
    let header = text.split('~').next().unwrap_or_default();
    if !header_fits(header) {
        return Err(gpp_invalid("`gpp_string` has no valid GPP header"));
    }
    let parsed = guarded(|| GPPString::parse_str(text))
        .ok_or_else(|| gpp_invalid("`gpp_string` has no valid GPP header"))?;
    let gpp = parsed.map_err(|error| {
        use iab_gpp::v1::GPPDecodeError as E;
        match error {
            E::InvalidGPPVersion { .. } => Rejection::invalid(
                "gpp_version_unsupported",
                "`gpp_string` is not a GPP v1 string (its header's version is not 1)",
            ),
            E::UnsupportedSectionId(id) => gpp_invalid(format!(
                "`gpp_string` lists section {id}, which GPP does not define"
            )),
            E::IdSectionMismatch { ids, sections } => gpp_invalid(format!(
                "`gpp_string` lists {ids} sections in its header but carries {sections}"
            )),
            E::Read { .. } => {
                gpp_invalid("`gpp_string` is truncated: it ends before its fields do")
            }
            _ => gpp_invalid("`gpp_string` has no valid GPP header"),
        }
    })?;
    for id in gpp.section_ids().copied().collect::<Vec<_>>() {
        match id {
            SectionId::TcfEuV1 | SectionId::UspV1 => {
                return Err(Rejection::invalid(
                    "gpp_section_outdated",
                    format!(
                        "`gpp_string` carries the retired {} section; CMPs must send tcfeuv2 and the US sections instead",
                        if id == SectionId::TcfEuV1 { "TCF EU v1" } else { "US Privacy (USP v1)" }
                    ),
                ))
            }
            SectionId::TcfEuV2 => {
                let Some(tcf) = policy.standards().tcf.as_ref() else {
                    continue;
                };
                let raw = gpp.section(id).unwrap_or_default();
                let model = decode_tcf(tcf, raw, now, "gpp_string`'s tcfeuv2 section`")?;
                apply_tcf(tcf, &model, signals);
            }
            _ => {
                let malformed = || {
                    gpp_invalid(format!(
                        "`gpp_string`'s section {} is malformed or truncated",
                        id as u16
                    ))
                };
                let section = guarded(|| gpp.decode_section(id))
                    .ok_or_else(malformed)?
                    .map_err(|_| malformed())?;
                let value = serde_json::to_value(&section).unwrap_or(Value::Null);
                if find(&value, "gpc") == Some(&Value::Bool(true)) {
                    signals.gpc = true;
                }
                let Some(mapping) = mapping else { continue };
                for (key, targets) in [
                    ("sale_opt_out", &mapping.sale),
                    ("sharing_opt_out", &mapping.sharing),
                    ("targeted_advertising_opt_out", &mapping.targeted_advertising),
                ] {
                    if find(&value, key).and_then(Value::as_str) == Some("OptedOut") {
                        for target in targets {
                            signals.decide(target, false);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Reads a call's TC string and GPP string (either or both) into statements.
pub fn read(
    policy: &Policy,
    tcf_string: Option<&str>,
    gpp_string: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Signals, Rejection> {
    let standards = policy.standards();
    let mut signals = Signals::default();
    if let Some(text) = tcf_string {
        let Some(mapping) = standards.tcf.as_ref() else {
            return Err(Rejection::invalid(
                "tcf_not_configured",
                "the policy has no [tcf] table mapping TCF purposes onto its own: a TC string cannot be read",
            ));
        };
        let model = decode_tcf(mapping, text, now, "tcf_string")?;
        apply_tcf(mapping, &model, &mut signals);
    }
    if let Some(text) = gpp_string {
        if standards.gpp.is_none() && standards.tcf.is_none() {
            return Err(Rejection::invalid(
                "gpp_not_configured",
                "the policy has no [gpp] (or [tcf]) table mapping GPP signals onto its purposes: a GPP string cannot be read",
            ));
        }
        apply_gpp(policy, standards.gpp.as_ref(), text, now, &mut signals)?;
    }
    Ok(signals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Policy {
        crate::policy::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
            .expect("the sample policy loads")
    }

    /// GPP strings as the IAB's GPP test data gives them, with the opt-outs and GPC field it
    /// states, through the sample policy's `[gpp]` (every opt-out withdraws
    /// `marketing.personalization`).
    #[test]
    fn published_gpp_examples_decide_as_their_fields_say() {
        let policy = sample();
        let personalization = PurposeId::parse("marketing.personalization").unwrap();
        let withdrawn = BTreeMap::from([(personalization, false)]);
        let now = Utc::now();
        for (gpp, statements, gpc) in [
            ("DBABLA~BVVVVVVVVWA", withdrawn.clone(), false),
            ("DBABLA~BVVVVVVVVWA.YA", withdrawn.clone(), true),
            ("DBABLA~BAAAAAAAAQA", BTreeMap::new(), false),
            ("DBABBg~BVVVVVVY", withdrawn.clone(), false),
            ("DBABBg~BVqqqqpY.YA", BTreeMap::new(), true),
            ("DBABRg~BVVVVWY", withdrawn.clone(), false),
            ("DBABJg~BVVVVVg.YA", withdrawn.clone(), true),
        ] {
            let signals = read(&policy, None, Some(gpp), now).expect(gpp);
            assert_eq!(signals, Signals { statements, gpc }, "{gpp}");
        }
    }

    #[test]
    fn retired_and_broken_gpp_strings_are_refused_precisely() {
        let policy = sample();
        let now = Utc::now();
        let code = |gpp: &str| read(&policy, None, Some(gpp), now).unwrap_err().code;
        // The GPP specification's example of a retired US Privacy section.
        assert_eq!(code("DBABTA~1YNN"), "gpp_section_outdated");
        assert_eq!(code("DBABLA~BVVV"), "invalid_gpp_string");
        assert_eq!(code("DBABLA"), "invalid_gpp_string");
        assert_eq!(code("xyz"), "invalid_gpp_string");
        // A header whose Fibonacci-coded section ids overflow `iab_gpp`'s arithmetic (found by
        // tests/properties.rs: it panicked in a debug build).
        assert_eq!(code("DB-A2BLA~CEAQAAAAAABA.YA"), "invalid_gpp_string");
    }
}
