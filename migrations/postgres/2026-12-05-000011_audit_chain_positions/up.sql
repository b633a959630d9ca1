-- Every audit row holds a chain position: `seq` counts from 1 (docs/audit.md). A row outside
-- the chain (seq 0 or below, copying another row's hash) used to pass a verification that
-- walked `seq > 0` only. The database now refuses such rows; verification also counts every
-- row of the table, so a row that got in with the constraint dropped is still found.
-- (SQLite cannot add a CHECK to an existing table: it refuses them with insert triggers.)
ALTER TABLE audit_log ADD CONSTRAINT audit_log_seq_in_chain CHECK (seq > 0);
ALTER TABLE audit_subjects ADD CONSTRAINT audit_subjects_seq_in_chain CHECK (seq > 0);
