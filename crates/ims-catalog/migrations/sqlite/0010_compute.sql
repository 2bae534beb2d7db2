-- The built-in compute driver: servers, their volumes (RAW guest disks held as manifests), and the NBD
-- export names minted for volumes (only the SHA-256 of each secret name is stored).
CREATE TABLE servers (
    id           TEXT    NOT NULL PRIMARY KEY,
    project      TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    server_type  TEXT    NOT NULL,
    vcpus        INTEGER NOT NULL,
    ram_mb       INTEGER NOT NULL,
    architecture TEXT    NOT NULL,
    status       TEXT    NOT NULL,
    image_id     TEXT,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
);

CREATE INDEX servers_project ON servers (project, created_at);

CREATE TABLE volumes (
    id                TEXT    NOT NULL PRIMARY KEY,
    project           TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    size              INTEGER NOT NULL,
    manifest_id       TEXT    NOT NULL,
    source_image_id   TEXT,
    bootable          INTEGER NOT NULL,
    encryption_key_id TEXT,
    wrapped_data_key  TEXT,
    server_id         TEXT REFERENCES servers (id),
    device_index      INTEGER,
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    CHECK ((server_id IS NULL) = (device_index IS NULL)),
    UNIQUE (server_id, device_index)
);

CREATE INDEX volumes_project ON volumes (project, created_at);

CREATE TABLE volume_exports (
    name_hash  TEXT NOT NULL PRIMARY KEY,
    volume_id  TEXT NOT NULL REFERENCES volumes (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX volume_exports_volume ON volume_exports (volume_id);
CREATE INDEX volume_exports_expiry ON volume_exports (expires_at);
