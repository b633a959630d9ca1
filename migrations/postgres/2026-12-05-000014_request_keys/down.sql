ALTER TABLE subject_requests DROP COLUMN key_wrapped;
ALTER TABLE subject_requests DROP COLUMN key_epoch;
ALTER TABLE subject_requests DROP COLUMN key_master_key_id;
ALTER TABLE subject_requests DROP COLUMN key_id;
