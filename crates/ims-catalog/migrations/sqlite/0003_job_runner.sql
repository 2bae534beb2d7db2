-- What the job runner adds to `jobs` (0002 already has `attempts`, `claimed_by` and `heartbeat_at`):
-- when a waiting job may be claimed again (backoff after a transient error), the job it is a sub-job
-- of, its final result, and a cancellation asked for while it runs.

-- RFC 3339 like every timestamp; NULL means "at once".
ALTER TABLE jobs ADD COLUMN run_after TEXT;
ALTER TABLE jobs ADD COLUMN parent_id TEXT REFERENCES jobs (id) ON DELETE CASCADE;
-- JSON: what a successful job produced; NULL until then.
ALTER TABLE jobs ADD COLUMN result TEXT;
ALTER TABLE jobs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1));

-- Claiming scans waiting jobs oldest first; take-over scans running jobs by heartbeat.
CREATE INDEX jobs_claim ON jobs (status, job_type, created_at);
CREATE INDEX jobs_heartbeat ON jobs (status, heartbeat_at);
CREATE INDEX jobs_parent ON jobs (parent_id);
