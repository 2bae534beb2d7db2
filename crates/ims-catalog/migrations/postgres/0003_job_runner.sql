-- What the job runner adds to `jobs` (0002 already has `attempts`, `claimed_by` and `heartbeat_at`):
-- when a waiting job may be claimed again (backoff after a transient error), the job it is a sub-job
-- of, its final result, and a cancellation asked for while it runs. Mirrors migrations/sqlite/0003.

-- NULL means "at once".
ALTER TABLE jobs ADD COLUMN run_after timestamptz;
ALTER TABLE jobs ADD COLUMN run_after_ns smallint CHECK (run_after_ns BETWEEN 0 AND 999);
ALTER TABLE jobs ADD CHECK ((run_after IS NULL) = (run_after_ns IS NULL));
ALTER TABLE jobs ADD COLUMN parent_id text COLLATE "C" REFERENCES jobs (id) ON DELETE CASCADE;
-- What a successful job produced; NULL until then.
ALTER TABLE jobs ADD COLUMN result jsonb;
ALTER TABLE jobs ADD COLUMN cancel_requested boolean NOT NULL DEFAULT FALSE;

-- Claiming scans waiting jobs oldest first; take-over scans running jobs by heartbeat.
CREATE INDEX jobs_claim ON jobs (status, job_type, created_at, created_at_ns, id);
CREATE INDEX jobs_heartbeat ON jobs (status, heartbeat_at);
CREATE INDEX jobs_parent ON jobs (parent_id);
