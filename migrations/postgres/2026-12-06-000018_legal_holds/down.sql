DROP TABLE held_interactions;
DROP TABLE legal_holds;
