-- Key epochs (docs/data-protection.md, "Key epochs"): wrapped keys are wrapped under the master
-- key and the key of an epoch, which lives outside the database (a forward-only ratchet file)
-- and is destroyed some time after the epoch is retired, so that every copy of what it wrapped
-- (backups, WAL archives, replicas, dead rows) becomes unreadable. One row per epoch: its
-- number, a check value naming its key (a host whose epoch file differs refuses to start),
-- when it started, when nothing live was wrapped under it any more, and when the first host
-- destroyed its key, and who may be re-wrapping into it. Same SQL on both backends.
CREATE TABLE key_epochs (
    epoch        BIGINT PRIMARY KEY NOT NULL,
    key_check    TEXT NOT NULL,
    started_at   TIMESTAMP NOT NULL,
    retired_at   TIMESTAMP,
    destroyed_at TIMESTAMP,
    -- A lease on re-wrapping into this epoch: one process at a time does it (renewed per batch).
    rewrap_until TIMESTAMP
);

-- The epoch a key is wrapped in; NULL: wrapped under the master key alone (before epochs),
-- re-wrapped by the first rotation.
ALTER TABLE data_keys ADD COLUMN epoch BIGINT;
ALTER TABLE key_material ADD COLUMN epoch BIGINT;
CREATE INDEX data_keys_by_epoch ON data_keys (epoch);
