ALTER TABLE consent_records DROP COLUMN notice_sha256;
ALTER TABLE consent_records DROP COLUMN notice_language;
