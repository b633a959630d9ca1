DROP INDEX data_keys_by_epoch;
ALTER TABLE key_material DROP COLUMN epoch;
ALTER TABLE data_keys DROP COLUMN epoch;
DROP TABLE key_epochs;
