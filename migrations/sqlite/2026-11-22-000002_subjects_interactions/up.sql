-- Same as the PostgreSQL migration, with BLOB for binary columns.
-- Keys wrapped by the master key: the root secret (and anything else deployment-wide).
CREATE TABLE key_material (
    name          TEXT PRIMARY KEY NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped       BLOB NOT NULL,
    created_at    TIMESTAMP NOT NULL
);

-- A subject is known outside only by the app's subject_id, stored here as a blind index and
-- as a ciphertext under the subject's own data key.
CREATE TABLE subjects (
    id             TEXT PRIMARY KEY NOT NULL,
    subject_index  TEXT NOT NULL UNIQUE,
    subject_id_ct  BLOB NOT NULL,
    identifiers_ct TEXT NOT NULL,
    traits_ct      TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    updated_at     TIMESTAMP NOT NULL
);

-- One data key per subject, stored only wrapped. Erasure deletes this row first.
CREATE TABLE data_keys (
    subject_pk    TEXT PRIMARY KEY NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    key_id        TEXT NOT NULL,
    master_key_id TEXT NOT NULL,
    wrapped       BLOB NOT NULL
);
CREATE INDEX data_keys_by_master_key ON data_keys (master_key_id);

-- Blind indexes of e-mail addresses and phone numbers.
CREATE TABLE subject_identifiers (
    subject_pk  TEXT NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    blind_index TEXT NOT NULL,
    PRIMARY KEY (subject_pk, kind)
);
CREATE INDEX subject_identifiers_lookup ON subject_identifiers (kind, blind_index);

-- Segmentable traits only, in a form the database can filter on.
CREATE TABLE subject_traits (
    subject_pk TEXT NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (subject_pk, name)
);
CREATE INDEX subject_traits_filter ON subject_traits (name, value);

-- Ids are time-ordered (UUIDv7) so new rows append to the primary key. The one index that
-- grows at random places is (subject_pk, client_index): it enforces idempotency and serves
-- every per-subject read.
CREATE TABLE interactions (
    id               TEXT PRIMARY KEY NOT NULL,
    subject_pk       TEXT NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    client_index     TEXT NOT NULL,
    client_id_ct     BLOB NOT NULL,
    interaction_type TEXT NOT NULL,
    channel          TEXT NOT NULL,
    occurred_at      TIMESTAMP NOT NULL,
    recorded_at      TIMESTAMP NOT NULL,
    purposes         TEXT NOT NULL,
    data_ct          TEXT NOT NULL,
    recorded_by      TEXT NOT NULL,
    UNIQUE (subject_pk, client_index)
);

-- The purposes each interaction was accepted for, so purpose limitation runs in SQL.
CREATE TABLE interaction_purposes (
    interaction_pk TEXT NOT NULL REFERENCES interactions (id) ON DELETE CASCADE,
    subject_pk     TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    PRIMARY KEY (interaction_pk, purpose)
);

-- Master key rotations, so an interrupted one can be resumed.
CREATE TABLE master_key_rotations (
    id           TEXT PRIMARY KEY NOT NULL,
    from_key_id  TEXT NOT NULL,
    to_key_id    TEXT NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    finished_at  TIMESTAMP,
    rewrapped    BIGINT NOT NULL
);
