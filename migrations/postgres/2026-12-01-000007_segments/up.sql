-- Saved segments: a filter (canonical JSON, over segmentable traits and interaction counts only:
-- no personal data) evaluated for a purpose at read time.
CREATE TABLE segments (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    purpose    TEXT NOT NULL,
    filter     TEXT NOT NULL,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX segments_by_purpose ON segments (purpose, id);

-- Counts revealed to each API key, remembered for the differencing guard's window: the size and
-- a sketch (counts per bucket of the internal subject id), never who was counted.
CREATE TABLE segment_answers (
    id            TEXT PRIMARY KEY NOT NULL,
    key_id        TEXT NOT NULL,
    purpose       TEXT NOT NULL,
    filter_sha256 TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sketch        TEXT NOT NULL,
    answered_at   TIMESTAMP NOT NULL
);
CREATE INDEX segment_answers_recent ON segment_answers (key_id, purpose, answered_at);
CREATE INDEX segment_answers_age ON segment_answers (answered_at);
