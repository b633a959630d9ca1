//! Property tests standing in for fuzzing in CI (`docs/fuzzing.md`): the policy parser, the
//! segment filter parser, the ciphertext decoder, API key parsing and token verification never
//! panic on arbitrary or mutated input, refuse what is not theirs, and round-trip what is.
//! `PROPTEST_CASES` raises the number of cases for a longer run (the CI run uses the default).

use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};

use custodia::auth::{KeyId, PresentedApiKey, TokenService};
use custodia::crypto::{DataKey, FieldContext, Secret};
use custodia::policy::{load_dir, Policy, PolicySource, RoleId};
use custodia::segments::filter::Filter;

fn sample_policy() -> Policy {
    load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).expect("the sample loads")
}

fn sample_texts() -> Vec<PolicySource> {
    ["purposes.toml", "fields.toml", "notices.toml", "roles.toml"]
        .iter()
        .map(|name| PolicySource {
            name: format!("policies/{name}"),
            text: std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("policies")
                    .join(name),
            )
            .unwrap(),
        })
        .collect()
}

/// A byte edit: delete, insert or replace one character at a position (modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
}

fn edit() -> impl Strategy<Value = Edit> {
    let symbol = prop::sample::select(vec![
        '"', '=', '[', ']', '.', ',', '\n', '#', 'a', 'Z', '0', ' ', '{', '}', '\\', 'é',
    ]);
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), symbol.clone()).prop_map(|(at, c)| Edit::Insert(at, c)),
        (any::<usize>(), symbol).prop_map(|(at, c)| Edit::Replace(at, c)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let len = chars.len().max(1);
        match edit {
            Edit::Delete(at) if !chars.is_empty() => {
                chars.remove(at % len);
            }
            Edit::Insert(at, c) => chars.insert(at % (chars.len() + 1), *c),
            Edit::Replace(at, c) if !chars.is_empty() => chars[at % len] = *c,
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Arbitrary JSON, biased towards the shapes a filter has.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        prop::sample::select(vec![
            "country", "language", "DE", "fr", "purchase", "email", "web", ""
        ])
        .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        let key = prop::sample::select(vec![
            "all",
            "any",
            "not",
            "trait",
            "in",
            "interactions",
            "type",
            "channel",
            "within_days",
            "at_least",
            "other",
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..4).prop_map(|map| Value::Object(
                map.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #[test]
    fn the_policy_parser_never_panics_and_names_the_file_and_line(
        file in 0usize..3,
        edits in prop::collection::vec(edit(), 1..8),
    ) {
        let mut sources = sample_texts();
        sources[file].text = apply(&sources[file].text, &edits);
        if let Err(errors) = Policy::from_sources(&sources) {
            let text = errors.to_string();
            prop_assert!(text.contains("policies/"), "{}", text);
        }
    }

    #[test]
    fn the_filter_parser_never_panics_and_round_trips_what_it_accepts(value in json_value()) {
        let policy = sample_policy();
        let purpose = policy.purpose("marketing").expect("a sample purpose");
        if let Ok(filter) = Filter::parse(&policy, purpose, &value) {
            let canonical: Value = serde_json::from_str(&filter.canonical()).unwrap();
            let again = Filter::parse(&policy, purpose, &canonical).expect("a canonical filter parses");
            prop_assert_eq!(again, filter);
        }
    }

    #[test]
    fn the_ciphertext_decoder_refuses_anything_it_did_not_seal(
        bytes in prop::collection::vec(any::<u8>(), 0..128),
        plaintext in prop::collection::vec(any::<u8>(), 0..64),
        flip in any::<usize>(),
    ) {
        let key = DataKey::new(*b"proptest", &Secret::generate());
        let place = FieldContext { subject: "s", record: "r", field: "f" };
        prop_assert!(key.decrypt(&place, &bytes).is_err());
        let sealed = key.encrypt(&place, &plaintext);
        prop_assert_eq!(key.decrypt(&place, &sealed).unwrap(), plaintext);
        let mut tampered = sealed.clone();
        let at = flip % tampered.len();
        tampered[at] ^= 0x01;
        prop_assert!(key.decrypt(&place, &tampered).is_err());
        let elsewhere = FieldContext { subject: "s", record: "r", field: "g" };
        prop_assert!(key.decrypt(&elsewhere, &sealed).is_err());
    }

    #[test]
    fn api_keys_parse_only_in_their_shape(raw in "\\PC{0,100}", id in "[0-9a-f]{16}", secret in "[0-9a-f]{64}") {
        let _ = PresentedApiKey::parse(&raw);
        let key = format!("ck_{id}_{secret}");
        let parsed = PresentedApiKey::parse(&key).map(|parsed| format!("{parsed:?}"));
        prop_assert!(parsed.is_some_and(|shown| shown.contains(&id)));
        // One character off the secret's shape is refused.
        let short = format!("ck_{id}_{}", &secret[1..]);
        prop_assert!(PresentedApiKey::parse(&short).is_none());
    }

    #[test]
    fn tokens_verify_only_unaltered(raw in "\\PC{0,200}", flip in any::<usize>(), to in any::<u8>()) {
        let service = TokenService::new(&Secret::generate(), Duration::from_secs(60));
        prop_assert!(service.verify(&raw).is_err());
        let key_id = KeyId::parse("0123456789abcdef").expect("a key id");
        let role = RoleId::parse("compliance").expect("a role id");
        let issued = service.issue(&key_id, &role);
        prop_assert!(service.verify(&issued.token).is_ok());
        let mut bytes = issued.token.clone().into_bytes();
        let at = flip % bytes.len();
        let replacement = if to.is_ascii_alphanumeric() { to } else { b'A' };
        if bytes[at] != replacement {
            bytes[at] = replacement;
            let altered = String::from_utf8(bytes).unwrap();
            // Base64url can decode two strings to the same bytes only in a final character's
            // unused bits; anything else altered must be refused.
            if service.verify(&altered).is_ok() {
                let last_segment_end = at + 1 == issued.token.len()
                    || issued.token.as_bytes().get(at + 1) == Some(&b'.');
                prop_assert!(last_segment_end, "an altered token verified: {}", altered);
            }
        }
    }
}

#[test]
fn a_filter_sample_parses() {
    let policy = sample_policy();
    let filter = json!({"all": [{"trait": "country", "in": ["DE"]},
                                {"interactions": {"type": "purchase", "within_days": 30}}]});
    let purpose = policy.purpose("marketing").expect("a sample purpose");
    assert!(Filter::parse(&policy, purpose, &filter).is_ok());
}

/// Valid TC and GPP strings (TCF v2.2 from the IAB Tech Lab's library, purposes 1, 3 and 4 for
/// vendor 755; GPP with a US national section and its GPC segment, and one carrying tcfeuv2).
const VALID_CONSENT_STRINGS: [&str; 3] = [
    "CQu26YAQu26YAAKABAENBkFoALAAAAAAAAYgF5wAQF5gAAAA.IAAA.YAAAAAAAAAAA",
    "DBABLA~CEAQAAAAAABA.YA",
    "DBACNMA~CQu26YAQu26YAAKABAENBkFgAIAAAAAAAAYgF5wAQF5gAAAA.IAAA.YAAAAAAAAAAA~BAQAAABA.QA",
];

fn consent_string() -> impl Strategy<Value = String> {
    prop_oneof![
        // Mutations of valid strings: cut, a character changed, a piece repeated.
        (
            0usize..3,
            any::<prop::sample::Index>(),
            "[A-Za-z0-9_~.-]{0,3}",
            0usize..3
        )
            .prop_map(|(which, at, insert, mode)| {
                let valid = VALID_CONSENT_STRINGS[which];
                let at = at.index(valid.len() + 1);
                match mode {
                    0 => valid[..at].to_owned(),
                    1 => format!(
                        "{}{insert}{}",
                        &valid[..at],
                        &valid[(at + 1).min(valid.len())..]
                    ),
                    _ => format!("{valid}{}", &valid[..at]),
                }
            }),
        "[A-Za-z0-9_~.-]{0,120}",
        ".{0,40}",
    ]
}

/// Whether anything panicked since the hook was installed, even a panic the service catches
/// (it guards the GPP crate's decoders): a caught panic is still a decoder bug to know of.
static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn count_panics() {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICKED.store(true, std::sync::atomic::Ordering::SeqCst);
            previous(info);
        }));
    });
}

proptest! {
    #[test]
    fn consent_string_decoders_never_panic(tcf in consent_string(), gpp in consent_string()) {
        count_panics();
        let policy = sample_policy();
        let now = chrono::Utc::now();
        let _ = custodia::standards::signals::read(&policy, Some(&tcf), None, now);
        let _ = custodia::standards::signals::read(&policy, None, Some(&gpp), now);
        let _ = custodia::standards::signals::read(&policy, Some(&tcf), Some(&gpp), now);
        prop_assert!(!PANICKED.load(std::sync::atomic::Ordering::SeqCst), "a decoder panicked");
    }
}
