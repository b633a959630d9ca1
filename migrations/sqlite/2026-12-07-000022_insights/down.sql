DROP TABLE insight_releases;
DROP TABLE insight_budget;
