-- The consent ledger: append-only statements (grants and withdrawals), never updated; deleted
-- only with their subject (erasure). `sequence` orders one subject's statements.
CREATE TABLE consent_records (
    id             TEXT PRIMARY KEY NOT NULL,
    subject_pk     TEXT NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    record_index   TEXT NOT NULL,
    sequence       BIGINT NOT NULL,
    purpose        TEXT NOT NULL,
    status         TEXT NOT NULL,
    notice_id      TEXT,
    notice_version TEXT,
    source         TEXT NOT NULL,
    method         TEXT NOT NULL,
    evidence_ct    TEXT NOT NULL,
    recorded_at    TIMESTAMP NOT NULL,
    recorded_by    TEXT NOT NULL,
    UNIQUE (subject_pk, record_index),
    UNIQUE (subject_pk, sequence)
);

-- The latest statement per subject and purpose, kept in the same transaction as the ledger.
CREATE TABLE consent_current (
    subject_pk TEXT NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    status     TEXT NOT NULL,
    sequence   BIGINT NOT NULL,
    since      TIMESTAMP NOT NULL,
    record_id  TEXT NOT NULL,
    PRIMARY KEY (subject_pk, purpose)
);

-- Objections (Art. 21): one row per subject and purpose while the objection stands.
CREATE TABLE objections (
    subject_pk  TEXT NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL,
    since       TIMESTAMP NOT NULL,
    recorded_by TEXT NOT NULL,
    PRIMARY KEY (subject_pk, purpose)
);

-- Restriction of processing (Art. 18): a row while it stands.
CREATE TABLE restrictions (
    subject_pk  TEXT PRIMARY KEY NOT NULL REFERENCES subjects (id) ON DELETE CASCADE,
    since       TIMESTAMP NOT NULL,
    recorded_by TEXT NOT NULL
);
