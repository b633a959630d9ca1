DROP TABLE segment_answers;
DROP TABLE segments;
