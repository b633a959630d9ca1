DROP TABLE master_key_rotations;
DROP TABLE interaction_purposes;
DROP TABLE interactions;
DROP TABLE subject_traits;
DROP TABLE subject_identifiers;
DROP TABLE data_keys;
DROP TABLE subjects;
DROP TABLE key_material;
