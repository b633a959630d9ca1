-- The audit log: a hash chain of entries with a gap-free sequence. Appends take the head row
-- (`audit_head`, one row) FOR UPDATE in the transaction of the action they record, so every
-- process sharing this database appends to the one chain. Entries name subjects only by a
-- keyed pseudonym (see docs/audit.md); they are never updated or deleted.
-- PostgreSQL enforces append-only with triggers (SQLite has its own, weaker equivalent).
CREATE TABLE audit_log (
    seq          BIGINT PRIMARY KEY NOT NULL,
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
);

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

CREATE FUNCTION custodia_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % on % is not allowed', TG_OP, TG_TABLE_NAME;
END;
$$;

CREATE FUNCTION custodia_audit_head_forward() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq < OLD.seq OR NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'the audit head only moves forward';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION custodia_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION custodia_audit_append_only();
CREATE TRIGGER audit_subjects_append_only BEFORE UPDATE OR DELETE ON audit_subjects
    FOR EACH ROW EXECUTE FUNCTION custodia_audit_append_only();
CREATE TRIGGER audit_subjects_no_truncate BEFORE TRUNCATE ON audit_subjects
    FOR EACH STATEMENT EXECUTE FUNCTION custodia_audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION custodia_audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION custodia_audit_append_only();
CREATE TRIGGER audit_head_forward BEFORE UPDATE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION custodia_audit_head_forward();
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION custodia_audit_append_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION custodia_audit_append_only();
