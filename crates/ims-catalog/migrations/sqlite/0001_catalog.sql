-- IMS catalog schema, SQLite dialect.
--
-- Portable conventions (the PostgreSQL migrations mirror them):
--   * ids are TEXT (image ids are lowercase hyphenated UUIDs);
--   * timestamps are TEXT in RFC 3339 UTC with a fixed nine-digit fraction
--     (`2024-01-02T03:04:05.123456789Z`), so that string order is time order;
--   * booleans are INTEGER 0/1, sizes INTEGER (bytes).

CREATE TABLE images (
    id               TEXT    NOT NULL PRIMARY KEY,
    name             TEXT,
    status           TEXT    NOT NULL CHECK (status IN ('queued', 'saving', 'uploading', 'importing', 'active',
                                                        'deactivated', 'killed', 'pending_delete', 'deleted')),
    visibility       TEXT    NOT NULL CHECK (visibility IN ('public', 'community', 'shared', 'private')),
    protected        INTEGER NOT NULL CHECK (protected IN (0, 1)),
    os_hidden        INTEGER NOT NULL CHECK (os_hidden IN (0, 1)),
    owner            TEXT    NOT NULL,
    disk_format      TEXT,
    container_format TEXT,
    min_disk         INTEGER NOT NULL,
    min_ram          INTEGER NOT NULL,
    size             INTEGER,
    virtual_size     INTEGER,
    checksum         TEXT,
    os_hash_algo     TEXT,
    os_hash_value    TEXT,
    manifest_id      TEXT,
    created_at       TEXT    NOT NULL,
    updated_at       TEXT    NOT NULL,
    -- Set exactly when status is 'deleted'. A deleted row is kept so that its id is never reused.
    deleted_at       TEXT,
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);

CREATE INDEX images_owner ON images (owner);
CREATE INDEX images_status ON images (status);
CREATE INDEX images_visibility ON images (visibility);
CREATE INDEX images_created_at ON images (created_at, id);
CREATE INDEX images_updated_at ON images (updated_at, id);
CREATE INDEX images_name ON images (name);
CREATE INDEX images_manifest_id ON images (manifest_id);

CREATE TABLE image_tags (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    PRIMARY KEY (image_id, tag)
);

CREATE INDEX image_tags_tag ON image_tags (tag);

CREATE TABLE image_properties (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (image_id, key)
);

CREATE INDEX image_properties_key_value ON image_properties (key, value);

CREATE TABLE image_members (
    image_id   TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    member     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (image_id, member)
);

CREATE INDEX image_members_member ON image_members (member, status);

CREATE TABLE projects (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE users (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE role_assignments (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('reader', 'member', 'admin')),
    PRIMARY KEY (user_id, project_id)
);

CREATE INDEX role_assignments_project ON role_assignments (project_id);

CREATE TABLE tokens (
    id          TEXT    NOT NULL PRIMARY KEY,
    secret_hash TEXT    NOT NULL UNIQUE,
    user_id     TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id  TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    created_at  TEXT    NOT NULL,
    expires_at  TEXT,
    revoked     INTEGER NOT NULL CHECK (revoked IN (0, 1))
);

CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_project ON tokens (project_id);

CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    request_id TEXT NOT NULL,
    project_id TEXT,
    user_id    TEXT,
    action     TEXT NOT NULL,
    resource   TEXT NOT NULL,
    result     TEXT NOT NULL,
    detail     TEXT
);

CREATE INDEX audit_events_resource ON audit_events (resource, seq);
CREATE INDEX audit_events_at ON audit_events (at);
