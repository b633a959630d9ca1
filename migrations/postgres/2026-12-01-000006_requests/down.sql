DROP TABLE subject_requests;
