-- Consent statements name a notice declared in the policy; the language of the text shown and
-- its SHA-256 are kept with the statement, as proof of which exact text the person saw (the
-- policy may drop the notice later; the proof stays). Both are declared values, never free text.
-- Rows recorded before this change have neither.
ALTER TABLE consent_records ADD COLUMN notice_language TEXT;
ALTER TABLE consent_records ADD COLUMN notice_sha256 TEXT;
