ALTER TABLE subject_requests DROP COLUMN receipt_until;
ALTER TABLE subject_requests DROP COLUMN receipt_ct;
