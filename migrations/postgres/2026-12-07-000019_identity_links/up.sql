-- Identity resolution (docs/tracking.md, "Identity resolution"): the other ids a person is
-- known by. A person's own row holds one id (subjects.subject_index: their user id, or the
-- anonymous id they were first seen with); every anonymous id linked to them since is here,
-- as a blind index (under the anonymous-id key) and a ciphertext under the person's data key.
-- An anonymous id belongs to one person at most: a second user claiming it is refused.
CREATE TABLE subject_aliases (
    alias_index TEXT PRIMARY KEY NOT NULL,
    subject_pk  TEXT NOT NULL REFERENCES subjects (id),
    alias_ct    BYTEA NOT NULL,
    linked_at   TIMESTAMP NOT NULL
);
CREATE INDEX subject_aliases_subject ON subject_aliases (subject_pk);

-- Ledger provenance of a merge: a statement recorded for a person merged into this one names
-- the merged person's audit pseudonym.
ALTER TABLE consent_records ADD COLUMN merged_from TEXT;
