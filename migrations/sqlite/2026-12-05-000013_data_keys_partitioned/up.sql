-- PostgreSQL splits data_keys into 64 hash partitions here, so that an erasure can rewrite the
-- one partition that held the deleted key (its bytes would otherwise stay in the page). SQLite
-- needs nothing: secure_delete zeroes deleted cells in place and the WAL is truncated after an
-- erasure. Nothing changes in this file's schema.
SELECT 1;
