-- An executed erasure request keeps its signed receipt for a bounded time, so that an authorised
-- role can hand it to the person after the one answer that carried it: sealed with a key of the
-- request's own (the person's keys are gone), and shredded by retention at `receipt_until`.
ALTER TABLE subject_requests ADD COLUMN receipt_ct TEXT;
ALTER TABLE subject_requests ADD COLUMN receipt_until TIMESTAMP;
