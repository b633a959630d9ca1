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
-- SQLite: one writer at a time, so ids are in commit order and a reader asks for the ids after
-- the last it read. An id is never reused: a new row's is one more than the largest, and pruning
-- never deletes the newest row (not AUTOINCREMENT, whose counter makes every insert write a
-- second table and so keep a statement journal). Row triggers.
-- (PostgreSQL: the writing transaction's id, statement triggers over transition tables.)

CREATE TABLE population_changes (
    id               INTEGER PRIMARY KEY,
    subject_pk       TEXT NOT NULL,
    interaction_pk   TEXT
);
-- A reader's position and when it was taken; pruning deletes what every reader has read.
CREATE TABLE population_change_marks (
    position  BIGINT NOT NULL,
    marked_at TIMESTAMP NOT NULL
);

CREATE TRIGGER population_subjects_delete AFTER DELETE ON subjects BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (OLD.id);
END;

CREATE TRIGGER population_subject_traits_insert AFTER INSERT ON subject_traits BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (NEW.subject_pk);
END;

CREATE TRIGGER population_subject_traits_update AFTER UPDATE ON subject_traits BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (NEW.subject_pk);
END;

CREATE TRIGGER population_subject_traits_delete AFTER DELETE ON subject_traits BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (OLD.subject_pk);
END;

CREATE TRIGGER population_consent_current_insert AFTER INSERT ON consent_current BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (NEW.subject_pk);
END;

CREATE TRIGGER population_consent_current_update AFTER UPDATE ON consent_current BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (NEW.subject_pk);
END;

CREATE TRIGGER population_consent_current_delete AFTER DELETE ON consent_current BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (OLD.subject_pk);
END;

CREATE TRIGGER population_objections_insert AFTER INSERT ON objections BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (NEW.subject_pk);
END;

CREATE TRIGGER population_objections_update AFTER UPDATE ON objections BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (NEW.subject_pk);
END;

CREATE TRIGGER population_objections_delete AFTER DELETE ON objections BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (OLD.subject_pk);
END;

CREATE TRIGGER population_restrictions_insert AFTER INSERT ON restrictions BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (NEW.subject_pk);
END;

CREATE TRIGGER population_restrictions_update AFTER UPDATE ON restrictions BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (NEW.subject_pk);
END;

CREATE TRIGGER population_restrictions_delete AFTER DELETE ON restrictions BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (OLD.subject_pk);
END;

CREATE TRIGGER population_subject_members_insert AFTER INSERT ON subject_members BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (NEW.member_pk), (NEW.person_pk);
END;

CREATE TRIGGER population_subject_members_delete AFTER DELETE ON subject_members BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (OLD.member_pk), (OLD.person_pk);
END;

CREATE TRIGGER population_interaction_purposes_update AFTER UPDATE ON interaction_purposes BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (OLD.subject_pk), (NEW.subject_pk);
END;
CREATE TRIGGER population_interaction_purposes_delete AFTER DELETE ON interaction_purposes BEGIN
    INSERT INTO population_changes (subject_pk) VALUES (OLD.subject_pk);
END;
