-- A job an operator stops (`ccfs jobs cancel`) ends in the state 'cancelled', which the CHECK
-- constraint on jobs.state must accept (jobs_state_check, the name PostgreSQL gave the column's
-- constraint in 0001). And `ccfs jobs list` shows the newest jobs first, which an index on
-- created_at answers without sorting the whole history. The same as SQLite's migration 0007.
ALTER TABLE jobs DROP CONSTRAINT jobs_state_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_state_check
    CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'expired', 'cancelled'));

-- Newest first, for `ccfs jobs list` (seq breaks ties, as in the claim order).
CREATE INDEX jobs_created ON jobs (created_at, seq);
