-- Data keys in 64 hash partitions (PostgreSQL only). After an erasure the deleted key row must
-- leave the database files at once, not only the table: a plain VACUUM marks its space free
-- but leaves its bytes in the page, and the row is wrapped under keys that are still live. So
-- the erasure rewrites the partition that held the key (VACUUM FULL: a new file with the live
-- rows only, the old one truncated), which takes milliseconds for a partition of 1/64 of the
-- keys instead of the whole table (docs/data-protection.md, "Erasure").
-- SQLite has no partitions and needs none: secure_delete zeroes deleted cells in place, and
-- the WAL is truncated after an erasure.
CREATE TABLE data_keys_partitioned (
    subject_pk    TEXT NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    key_id        TEXT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped       BYTEA NOT NULL,
    epoch         BIGINT,
    PRIMARY KEY (subject_pk)
) PARTITION BY HASH (subject_pk);

DO $$
BEGIN
    FOR i IN 0..63 LOOP
        EXECUTE format(
            'CREATE TABLE data_keys_p%s PARTITION OF data_keys_partitioned FOR VALUES WITH (MODULUS 64, REMAINDER %s)',
            i, i);
    END LOOP;
END $$;

INSERT INTO data_keys_partitioned (subject_pk, key_id, master_key_id, wrapped, epoch)
SELECT subject_pk, key_id, master_key_id, wrapped, epoch FROM data_keys;
DROP TABLE data_keys;
ALTER TABLE data_keys_partitioned RENAME TO data_keys;
CREATE INDEX data_keys_by_master_key ON data_keys (master_key_id);
CREATE INDEX data_keys_by_epoch ON data_keys (epoch);
