-- The differencing guard remembers every question a key asked in its window, not only the sizes
-- it revealed: what it answered (`revealed`, `suppressed` below min_size, `refused` by the
-- guard) so that a repeated question gets the same answer, and withheld answers can be counted
-- per key (the probe limit and the compliance alert).
ALTER TABLE segment_answers ADD COLUMN outcome TEXT NOT NULL DEFAULT 'revealed';
CREATE INDEX segment_answers_by_key ON segment_answers (key_id, answered_at);
