-- The audit trail as a hash chain (see src/audit_chain.rs): where a request came from, why it failed, and
-- each event's place in the chain with the hash of the event before it and its own. Mirrors
-- migrations/sqlite/0005. Rows written before this migration are chained, in `seq` order, by the first
-- write after it.

ALTER TABLE audit_events ADD COLUMN source_address text;
ALTER TABLE audit_events ADD COLUMN error text;
ALTER TABLE audit_events ADD COLUMN chain_position bigint;
ALTER TABLE audit_events ADD COLUMN prev_hash text;
ALTER TABLE audit_events ADD COLUMN hash text;

-- One event per position and one successor per event: the chain cannot fork.
CREATE UNIQUE INDEX audit_events_chain_position ON audit_events (chain_position);
CREATE UNIQUE INDEX audit_events_prev_hash ON audit_events (prev_hash);
CREATE INDEX audit_events_project ON audit_events (project_id, chain_position);
CREATE INDEX audit_events_unchained ON audit_events (seq) WHERE chain_position IS NULL;
