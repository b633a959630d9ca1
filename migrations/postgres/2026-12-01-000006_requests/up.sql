-- Data-subject requests (Art. 12-22 GDPR, CCPA §1798.100-130) and their deadlines. The person
-- is named only as the keyed blind index of the identifier the request gave (subject_id or
-- e-mail) and that identifier sealed under the deployment's request key; both are cleared when
-- the person is erased, leaving the audit pseudonym. Free text (reasons) and rectification
-- values are sealed too. `purposes` (objections) and `result` (counts, ids) hold no personal
-- data.
CREATE TABLE subject_requests (
    id                 TEXT PRIMARY KEY NOT NULL,
    kind               TEXT NOT NULL,
    regulation         TEXT NOT NULL,
    status             TEXT NOT NULL,
    identity_kind      TEXT NOT NULL,
    identity_index     TEXT,
    identity_ct        TEXT,
    pseudonym          TEXT,
    purposes           TEXT NOT NULL,
    changes_ct         TEXT,
    received_at        TIMESTAMP NOT NULL,
    due_at             TIMESTAMP NOT NULL,
    extended_at        TIMESTAMP,
    extension_reason_ct TEXT,
    verified_at        TIMESTAMP,
    completed_at       TIMESTAMP,
    rejected_at        TIMESTAMP,
    rejection_reason_ct TEXT,
    result             TEXT,
    created_by         TEXT,
    updated_at         TIMESTAMP NOT NULL
);
-- The queue: open requests by deadline.
CREATE INDEX subject_requests_queue ON subject_requests (status, due_at);
-- Erasure clears the identity of every request naming the person.
CREATE INDEX subject_requests_identity ON subject_requests (identity_index);
