DROP INDEX interaction_purposes_by_purpose;
ALTER TABLE interaction_purposes DROP COLUMN channel;
ALTER TABLE interaction_purposes DROP COLUMN interaction_type;
ALTER TABLE interaction_purposes DROP COLUMN occurred_at;
