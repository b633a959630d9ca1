-- Segment filters and retention select interactions by purpose, time, type and channel. Those
-- three properties of an interaction never change, so they are copied onto its purpose rows,
-- and one index answers "interactions usable for P, of this type, since then" without joining
-- `interactions` row by row. Erasure and retention delete purpose rows, so the index is exact
-- by construction. (The defaults only serve the backfill and are dropped; SQLite cannot drop
-- them, which is why the two files differ.)
ALTER TABLE interaction_purposes ADD COLUMN occurred_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
ALTER TABLE interaction_purposes ADD COLUMN interaction_type TEXT NOT NULL DEFAULT '';
ALTER TABLE interaction_purposes ADD COLUMN channel TEXT NOT NULL DEFAULT '';
UPDATE interaction_purposes p SET
    occurred_at = i.occurred_at, interaction_type = i.interaction_type, channel = i.channel
    FROM interactions i WHERE i.id = p.interaction_pk;
ALTER TABLE interaction_purposes ALTER COLUMN occurred_at DROP DEFAULT;
ALTER TABLE interaction_purposes ALTER COLUMN interaction_type DROP DEFAULT;
ALTER TABLE interaction_purposes ALTER COLUMN channel DROP DEFAULT;
CREATE INDEX interaction_purposes_by_purpose
    ON interaction_purposes (purpose, occurred_at, interaction_type, channel, subject_pk);
