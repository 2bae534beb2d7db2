-- The nodes sharing this catalog. Mirrors migrations/sqlite/0015.
CREATE TABLE nodes (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    address         text        NOT NULL,
    started_at      timestamptz NOT NULL,
    started_at_ns   smallint    NOT NULL CHECK (started_at_ns BETWEEN 0 AND 999),
    heartbeat_at    timestamptz NOT NULL,
    heartbeat_at_ns smallint    NOT NULL CHECK (heartbeat_at_ns BETWEEN 0 AND 999),
    state           text        NOT NULL CHECK (state IN ('active', 'draining', 'drained'))
);

CREATE INDEX nodes_heartbeat ON nodes (heartbeat_at);
