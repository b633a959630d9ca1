-- Every audit row holds a chain position: `seq` counts from 1 (docs/audit.md). A row outside
-- the chain (seq 0 or below, copying another row's hash) used to pass a verification that
-- walked `seq > 0` only. The database now refuses such rows; verification also counts every
-- row of the table, so a row that got in anyway is still found.
-- (PostgreSQL adds CHECK constraints; SQLite cannot add one to an existing table, so insert
-- triggers refuse the rows instead.)
CREATE TRIGGER audit_log_seq_in_chain BEFORE INSERT ON audit_log
WHEN NEW.seq IS NULL OR NEW.seq < 1
BEGIN SELECT RAISE(ABORT, 'audit entries hold chain positions from 1: seq must be positive'); END;
CREATE TRIGGER audit_subjects_seq_in_chain BEFORE INSERT ON audit_subjects
WHEN NEW.seq IS NULL OR NEW.seq < 1
BEGIN SELECT RAISE(ABORT, 'audit entries hold chain positions from 1: seq must be positive'); END;
