//! The field ciphertext decoder on arbitrary bytes: it refuses everything it did not seal.
#![no_main]

use std::sync::OnceLock;

use custodia::crypto::{DataKey, FieldContext, Secret};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static DataKey {
    static KEY: OnceLock<DataKey> = OnceLock::new();
    KEY.get_or_init(|| DataKey::new(*b"fuzzfuzz", &Secret::generate()))
}

fuzz_target!(|data: &[u8]| {
    let place = FieldContext {
        subject: "s",
        record: "r",
        field: "f",
    };
    assert!(key().decrypt(&place, data).is_err());
});
