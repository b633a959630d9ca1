DROP TABLE subject_members;
