ALTER TABLE audit_subjects DROP CONSTRAINT audit_subjects_seq_in_chain;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_seq_in_chain;
