-- Segment filters and retention select interactions by purpose, time, type and channel. Those
-- three properties of an interaction never change, so they are copied onto its purpose rows,
-- and one index answers "interactions usable for P, of this type, since then" without joining
-- `interactions` row by row. Erasure and retention delete purpose rows, so the index is exact
-- by construction. (SQLite cannot drop a column default; the application always writes these
-- columns. PostgreSQL drops the defaults after the backfill.)
ALTER TABLE interaction_purposes ADD COLUMN occurred_at TIMESTAMP NOT NULL DEFAULT '1970-01-01 00:00:00';
ALTER TABLE interaction_purposes ADD COLUMN interaction_type TEXT NOT NULL DEFAULT '';
ALTER TABLE interaction_purposes ADD COLUMN channel TEXT NOT NULL DEFAULT '';
UPDATE interaction_purposes SET
    occurred_at = (SELECT i.occurred_at FROM interactions i WHERE i.id = interaction_pk),
    interaction_type = (SELECT i.interaction_type FROM interactions i WHERE i.id = interaction_pk),
    channel = (SELECT i.channel FROM interactions i WHERE i.id = interaction_pk);
CREATE INDEX interaction_purposes_by_purpose
    ON interaction_purposes (purpose, occurred_at, interaction_type, channel, subject_pk);
