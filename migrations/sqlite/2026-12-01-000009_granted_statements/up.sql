-- Segment counts for a consent-based purpose are driven from the granted statements: one range
-- of this index (purpose, status) gives the people who may be counted, in subject order, and the
-- people who never consented are never visited. Consent writes keep it exact (the current
-- statement is upserted in the same transaction as the ledger row); erasure deletes the rows.
CREATE INDEX consent_current_by_purpose ON consent_current (purpose, status, subject_pk);
