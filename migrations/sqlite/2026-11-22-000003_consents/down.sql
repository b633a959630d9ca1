DROP TABLE restrictions;
DROP TABLE objections;
DROP TABLE consent_current;
DROP TABLE consent_records;
