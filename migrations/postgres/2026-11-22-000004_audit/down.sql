DROP TABLE audit_checkpoints;
DROP TABLE audit_head;
DROP TABLE audit_subjects;
DROP TABLE audit_log;
DROP FUNCTION custodia_audit_head_forward();
DROP FUNCTION custodia_audit_append_only();
