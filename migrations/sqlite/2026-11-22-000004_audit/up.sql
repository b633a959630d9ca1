-- The audit log: a hash chain of entries with a gap-free sequence. Appends read and move the
-- head row (`audit_head`) inside the write transaction of the action they record (SQLite has
-- one writer at a time). Entries name subjects only by a keyed pseudonym (see docs/audit.md);
-- they are never updated or deleted. The triggers below refuse UPDATE and DELETE through SQL;
-- unlike PostgreSQL's, they cannot stop whoever can write the database file (docs/audit.md).
-- `seq` is INTEGER PRIMARY KEY (PostgreSQL: BIGINT): SQLite's 64-bit rowid, no separate index.
CREATE TABLE audit_log (
    seq          INTEGER PRIMARY KEY NOT NULL,
    at           TIMESTAMP NOT NULL,
    actor_key_id TEXT,
    role         TEXT,
    action       TEXT NOT NULL,
    target       TEXT,
    purposes     TEXT NOT NULL,
    legal_bases  TEXT NOT NULL,
    subjects     TEXT NOT NULL,
    categories   TEXT NOT NULL,
    records      BIGINT NOT NULL,
    decision     TEXT NOT NULL,
    reason       TEXT,
    policy_hash  TEXT NOT NULL,
    request_id   TEXT,
    hash         TEXT NOT NULL
);

-- Which entries name which person: one row per pseudonym in an entry's `subjects`, keyed by
-- the pseudonym's first 64 bits (a lookup then checks the full pseudonym in the entry), so that
-- a person's entries are found through a small integer index. Derived from the entries
-- (verification checks that it matches them) and appended in the same transaction.
CREATE TABLE audit_subjects (
    subject_key BIGINT NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (subject_key, seq)
) WITHOUT ROWID;

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints: the size and head hash of the chain at a moment, signed with Ed25519.
CREATE TABLE audit_checkpoints (
    id        TEXT PRIMARY KEY NOT NULL,
    size      BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    signed_at TIMESTAMP NOT NULL,
    key_id    TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX audit_checkpoints_size ON audit_checkpoints (size);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE on audit_log is not allowed'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE on audit_log is not allowed'); END;
CREATE TRIGGER audit_subjects_no_update BEFORE UPDATE ON audit_subjects
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE on audit_subjects is not allowed'); END;
CREATE TRIGGER audit_subjects_no_delete BEFORE DELETE ON audit_subjects
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE on audit_subjects is not allowed'); END;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE on audit_checkpoints is not allowed'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE on audit_checkpoints is not allowed'); END;
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
WHEN NEW.seq < OLD.seq OR NEW.id <> OLD.id
BEGIN SELECT RAISE(ABORT, 'the audit head only moves forward'); END;
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE on audit_head is not allowed'); END;
