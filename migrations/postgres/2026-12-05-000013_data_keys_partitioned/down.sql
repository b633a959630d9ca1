CREATE TABLE data_keys_unpartitioned (
    subject_pk    TEXT PRIMARY KEY NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    key_id        TEXT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped       BYTEA NOT NULL,
    epoch         BIGINT
);
INSERT INTO data_keys_unpartitioned (subject_pk, key_id, master_key_id, wrapped, epoch)
SELECT subject_pk, key_id, master_key_id, wrapped, epoch FROM data_keys;
DROP TABLE data_keys;
ALTER TABLE data_keys_unpartitioned RENAME TO data_keys;
CREATE INDEX data_keys_by_master_key ON data_keys (master_key_id);
CREATE INDEX data_keys_by_epoch ON data_keys (epoch);
