-- The nodes sharing this catalog: each `ims serve` registers at start, heartbeats, and can be drained
-- (state active -> draining -> drained) so that its jobs move to other nodes.
CREATE TABLE nodes (
    id           TEXT NOT NULL PRIMARY KEY,
    address      TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'draining', 'drained'))
);

CREATE INDEX nodes_heartbeat ON nodes (heartbeat_at);
