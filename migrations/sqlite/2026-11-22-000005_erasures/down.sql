DROP TABLE suppressions;
DROP TABLE erasures;
