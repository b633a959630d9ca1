DROP INDEX segment_answers_by_key;
ALTER TABLE segment_answers DROP COLUMN outcome;
