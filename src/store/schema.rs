//! The portable schema shared by both backends: ids and JSON as `Text`, times as `Timestamp`
//! (UTC, without zone).

diesel::table! {
    /// API keys; only an argon2id hash of each secret is stored.
    api_keys (id) {
        id -> Text,
        name -> Text,
        role -> Text,
        secret_hash -> Text,
        created_at -> Timestamp,
        created_by -> Nullable<Text>,
        revoked_at -> Nullable<Timestamp>,
    }
}
