-- The population index's change feed (docs/segments.md, "The population index"). Every process
-- keeps the segmentable state of the population in memory and, before answering a count, reads
-- the changes committed since it last looked. Triggers write the feed in the transaction of the
-- change itself: any change names the subject, whose state is read again. Two changes are
-- written by the code that makes them instead, in the same transaction and statement batch,
-- because they are the hot paths of ingest (a row trigger costs SQLite a statement journal per
-- row): a new subject (`store::subjects::insert`) and a new interaction with its subject
-- (`store::interactions::insert`; its purpose rows are read and appended to the person). The feed holds internal ids only, no
-- value (nothing about a person outlives their erasure here but two random ids, for at most
-- ten minutes). Pruned ten minutes after every process has read it (`population_change_marks`).
-- PostgreSQL: transactions commit out of id order, so each row carries its writing transaction's
-- id and a reader asks for the transactions that were in progress or not yet begun at its last
-- snapshot (`pg_snapshot_xip`, `pg_snapshot_xmax`); the key leads with it. Statement triggers over
-- transition tables: one INSERT per statement. (SQLite: ids in commit order, row triggers.)

CREATE TABLE population_changes (
    txid             BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    id               BIGSERIAL NOT NULL,
    subject_pk       TEXT NOT NULL,
    interaction_pk   TEXT,
    PRIMARY KEY (txid, id)
);
-- A reader's position and when it was taken; pruning deletes what every reader has read.
CREATE TABLE population_change_marks (
    position  BIGINT NOT NULL,
    marked_at TIMESTAMP NOT NULL
);

CREATE FUNCTION population_log_old_subjects() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO population_changes (subject_pk) SELECT DISTINCT id FROM old_rows;
    RETURN NULL;
END $$;
CREATE FUNCTION population_log_new() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO population_changes (subject_pk) SELECT DISTINCT subject_pk FROM new_rows;
    RETURN NULL;
END $$;
CREATE FUNCTION population_log_old() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO population_changes (subject_pk) SELECT DISTINCT subject_pk FROM old_rows;
    RETURN NULL;
END $$;
CREATE FUNCTION population_log_new_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO population_changes (subject_pk)
        SELECT member_pk FROM new_rows UNION SELECT person_pk FROM new_rows;
    RETURN NULL;
END $$;
CREATE FUNCTION population_log_old_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO population_changes (subject_pk)
        SELECT member_pk FROM old_rows UNION SELECT person_pk FROM old_rows;
    RETURN NULL;
END $$;

CREATE TRIGGER population_subjects_delete AFTER DELETE ON subjects
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_old_subjects();
CREATE TRIGGER population_subject_traits_insert AFTER INSERT ON subject_traits
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_new();
CREATE TRIGGER population_subject_traits_update AFTER UPDATE ON subject_traits
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_new();
CREATE TRIGGER population_subject_traits_delete AFTER DELETE ON subject_traits
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_old();
CREATE TRIGGER population_consent_current_insert AFTER INSERT ON consent_current
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_new();
CREATE TRIGGER population_consent_current_update AFTER UPDATE ON consent_current
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_new();
CREATE TRIGGER population_consent_current_delete AFTER DELETE ON consent_current
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_old();
CREATE TRIGGER population_objections_insert AFTER INSERT ON objections
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_new();
CREATE TRIGGER population_objections_update AFTER UPDATE ON objections
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_new();
CREATE TRIGGER population_objections_delete AFTER DELETE ON objections
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_old();
CREATE TRIGGER population_restrictions_insert AFTER INSERT ON restrictions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_new();
CREATE TRIGGER population_restrictions_update AFTER UPDATE ON restrictions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_new();
CREATE TRIGGER population_restrictions_delete AFTER DELETE ON restrictions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_old();
CREATE TRIGGER population_subject_members_insert AFTER INSERT ON subject_members
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_new_members();
CREATE TRIGGER population_subject_members_delete AFTER DELETE ON subject_members
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_old_members();
CREATE FUNCTION population_log_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO population_changes (subject_pk)
        SELECT subject_pk FROM old_rows UNION SELECT subject_pk FROM new_rows;
    RETURN NULL;
END $$;
CREATE TRIGGER population_interaction_purposes_update AFTER UPDATE ON interaction_purposes
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION population_log_moved();
CREATE TRIGGER population_interaction_purposes_delete AFTER DELETE ON interaction_purposes
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION population_log_old();
