-- What remains of an erased person: proof of the erasure, with no identifier in clear. The
-- pseudonym is the one the audit log used for the person (it links the tombstone to those
-- entries and, with the data key destroyed, to nothing else); `counts` is the JSON of what was
-- erased by category; `receipt_sha256` the SHA-256 of the signed receipt handed out (the
-- receipt itself names the subject_id, so it is not kept).
CREATE TABLE erasures (
    id        TEXT PRIMARY KEY NOT NULL,
    pseudonym TEXT NOT NULL,
    erased_at TIMESTAMP NOT NULL,
    erased_by TEXT,
    counts    TEXT NOT NULL,
    receipt_sha256 TEXT NOT NULL
);

-- Identifiers whose ingestion stays blocked after an erasure with `?suppress=true`, until a
-- compliance officer lifts it: the keyed blind index of the subject_id (never the id itself)
-- and the pseudonym the erased person had (naming the erasure in the audit log).
CREATE TABLE suppressions (
    subject_index TEXT PRIMARY KEY NOT NULL,
    pseudonym     TEXT NOT NULL,
    since         TIMESTAMP NOT NULL,
    recorded_by   TEXT
);
