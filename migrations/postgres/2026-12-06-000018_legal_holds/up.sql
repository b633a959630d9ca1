-- Legal holds (GDPR Art. 17(3)(b), (e)): what an erasure keeps because a purpose with a legal
-- hold (by default, a legal obligation) still needs it. The person's data key is destroyed as
-- for any erasure; the held interactions are re-encrypted under a key of the hold's own, keep
-- only the holding purposes and the fields those may use, and nothing links them to an
-- identifier. Retention deletes each at held_until; the hold's key goes with its last record.
CREATE TABLE legal_holds (
    erasure_id     TEXT PRIMARY KEY,
    pseudonym      TEXT NOT NULL,
    key_id         TEXT NOT NULL,
    master_key_id  TEXT NOT NULL,
    epoch          BIGINT,
    wrapped        BYTEA NOT NULL,
    held_since     TIMESTAMP NOT NULL
);

-- purposes: JSON [{"purpose": "...", "until": "..."}], the holding purposes and when each ends;
-- held_until is the latest of them.
CREATE TABLE held_interactions (
    id               TEXT PRIMARY KEY,
    erasure_id       TEXT NOT NULL REFERENCES legal_holds (erasure_id),
    interaction_type TEXT NOT NULL,
    channel          TEXT NOT NULL,
    occurred_at      TIMESTAMP NOT NULL,
    purposes         TEXT NOT NULL,
    data_ct          TEXT NOT NULL,
    held_until       TIMESTAMP NOT NULL
);
CREATE INDEX held_interactions_erasure ON held_interactions (erasure_id, occurred_at);
CREATE INDEX held_interactions_until ON held_interactions (held_until);
