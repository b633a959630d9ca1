//! Maps of encrypted values (field name → ciphertext), stored as JSON text with base64 values.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;

use crate::crypto::{DataKey, DecryptError, FieldContext};

/// The record name used for values that belong to the subject itself (identifiers, traits).
pub const SUBJECT_RECORD: &str = "subject";

/// Encrypts one value for its place and encodes it as base64.
pub(crate) fn seal(key: &DataKey, context: &FieldContext<'_>, plaintext: &[u8]) -> String {
    STANDARD_NO_PAD.encode(key.encrypt(context, plaintext))
}

/// Decodes and decrypts one value sealed by [`seal`] for the same place.
pub fn open(
    key: &DataKey,
    context: &FieldContext<'_>,
    sealed: &str,
) -> Result<Vec<u8>, DecryptError> {
    let bytes = STANDARD_NO_PAD.decode(sealed).map_err(|_| DecryptError)?;
    key.decrypt(context, &bytes)
}

/// Reads a stored map (field name → base64 ciphertext). A map that does not parse is treated as
/// a decryption failure: it is never silently dropped.
pub(crate) fn read_map(json: &str) -> Result<BTreeMap<String, String>, DecryptError> {
    serde_json::from_str(json).map_err(|_| DecryptError)
}

/// Writes a map of sealed values.
pub(crate) fn write_map(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).expect("a map of strings encodes")
}
