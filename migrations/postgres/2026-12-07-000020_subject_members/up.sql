-- A merge that moves no rows (docs/data-protection.md, "Anonymous ids and merged people"): a
-- person merged into another keeps their internal id, their data key and every interaction,
-- and becomes a member of the surviving person. Reads, counts, exports, holds and erasure of a
-- person go through their members. No cascade from the person: an erasure that did not erase
-- the members first fails instead of leaving them behind.
CREATE TABLE subject_members (
    member_pk  TEXT PRIMARY KEY NOT NULL REFERENCES subjects (id),
    person_pk  TEXT NOT NULL REFERENCES subjects (id),
    merged_at  TIMESTAMP NOT NULL
);
CREATE INDEX subject_members_person ON subject_members (person_pk);
