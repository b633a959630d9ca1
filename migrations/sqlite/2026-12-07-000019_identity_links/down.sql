ALTER TABLE consent_records DROP COLUMN merged_from;
DROP TABLE subject_aliases;
