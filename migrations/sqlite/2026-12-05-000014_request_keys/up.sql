-- Each data-subject request's own key (docs/data-protection.md, "Data-subject requests"): the
-- identifier a request names and the values to rectify are sealed under it, not under the
-- deployment's requests key, so that clearing the identity at erasure destroys the key and old
-- copies of the row (backups, dead rows) become unreadable with its key epoch. Wrapped like a
-- data key (master key and key epoch); NULL for requests filed before this, which stay under the
-- requests key. (BYTEA on PostgreSQL, BLOB on SQLite: the same binary type for diesel.)
ALTER TABLE subject_requests ADD COLUMN key_id TEXT;
ALTER TABLE subject_requests ADD COLUMN key_master_key_id TEXT;
ALTER TABLE subject_requests ADD COLUMN key_epoch BIGINT;
ALTER TABLE subject_requests ADD COLUMN key_wrapped BLOB;
