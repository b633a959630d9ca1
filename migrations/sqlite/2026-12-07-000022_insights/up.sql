-- Differentially private insights (docs/insights.md). What each purpose's insights spent of its
-- daily privacy budget, in whole units (ε in millionths, δ in 10^-12), so that spending adds
-- exactly; charged in the transaction that releases an answer, by an update that only succeeds
-- while the day's spending stays within the policy's budget.
CREATE TABLE insight_budget (
    purpose         TEXT NOT NULL,
    day             TEXT NOT NULL,
    epsilon_micros  BIGINT NOT NULL,
    delta_picos     BIGINT NOT NULL,
    PRIMARY KEY (purpose, day)
);
-- Answers released, per purpose, day and question: the same question asked again that day, by
-- any key, is given the same answer and spends nothing (no averaging of fresh noise). Noisy
-- aggregates only: no person, no exact count.
CREATE TABLE insight_releases (
    purpose          TEXT NOT NULL,
    day              TEXT NOT NULL,
    question_sha256  TEXT NOT NULL,
    answer           TEXT NOT NULL,
    epsilon_micros   BIGINT NOT NULL,
    delta_picos      BIGINT NOT NULL,
    released_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (purpose, day, question_sha256)
);
