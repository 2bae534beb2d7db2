-- IMS catalog schema, PostgreSQL dialect. Mirrors migrations/sqlite/0001_catalog.sql table for table.
--
-- Conventions:
--   * image ids are uuid; every other id is text;
--   * a timestamp the service reads back is a timestamptz column (microseconds, what PostgreSQL keeps)
--     plus a `<column>_ns` smallint holding the nanoseconds below the microsecond (0 to 999), so that a
--     time round-trips exactly as the service wrote it and (column, column_ns) orders and compares in
--     time order; write-only times (`deleted_at`, ...) are a plain timestamptz;
--   * booleans are boolean, sizes and counts bigint (bytes);
--   * text that lists sort by or that a client sees ordered uses the "C" collation: byte order, the same
--     order on every server whatever its locale (and the order the SQLite backend gives).

CREATE TABLE images (
    id               uuid        NOT NULL PRIMARY KEY,
    name             text COLLATE "C",
    status           text COLLATE "C" NOT NULL CHECK (status IN ('queued', 'saving', 'uploading', 'importing',
                                                  'active', 'deactivated', 'killed', 'pending_delete', 'deleted')),
    visibility       text        NOT NULL CHECK (visibility IN ('public', 'community', 'shared', 'private')),
    protected        boolean     NOT NULL,
    os_hidden        boolean     NOT NULL,
    owner            text        NOT NULL,
    disk_format      text COLLATE "C",
    container_format text COLLATE "C",
    min_disk         bigint      NOT NULL,
    min_ram          bigint      NOT NULL,
    size             bigint,
    virtual_size     bigint,
    checksum         text,
    os_hash_algo     text,
    os_hash_value    text,
    manifest_id      text COLLATE "C",
    created_at       timestamptz NOT NULL,
    created_at_ns    smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at       timestamptz NOT NULL,
    updated_at_ns    smallint    NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999),
    -- Set exactly when status is 'deleted'. A deleted row is kept so that its id is never reused.
    deleted_at       timestamptz,
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);

CREATE INDEX images_owner ON images (owner);
CREATE INDEX images_status ON images (status);
CREATE INDEX images_visibility ON images (visibility);
CREATE INDEX images_created_at ON images (created_at, created_at_ns, id);
CREATE INDEX images_updated_at ON images (updated_at, updated_at_ns, id);
CREATE INDEX images_name ON images (name);
CREATE INDEX images_manifest_id ON images (manifest_id);

CREATE TABLE image_tags (
    image_id uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tag      text COLLATE "C" NOT NULL,
    PRIMARY KEY (image_id, tag)
);

CREATE INDEX image_tags_tag ON image_tags (tag);

CREATE TABLE image_properties (
    image_id uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    key      text COLLATE "C" NOT NULL,
    value    text NOT NULL,
    PRIMARY KEY (image_id, key)
);

CREATE INDEX image_properties_key_value ON image_properties (key, value);

CREATE TABLE image_members (
    image_id      uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    member        text COLLATE "C" NOT NULL,
    status        text        NOT NULL CHECK (status IN ('pending', 'accepted', 'rejected')),
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at    timestamptz NOT NULL,
    updated_at_ns smallint    NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999),
    PRIMARY KEY (image_id, member)
);

CREATE INDEX image_members_member ON image_members (member, status);

CREATE TABLE projects (
    id            text COLLATE "C" NOT NULL PRIMARY KEY,
    name          text COLLATE "C" NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999)
);

CREATE TABLE users (
    id            text COLLATE "C" NOT NULL PRIMARY KEY,
    name          text COLLATE "C" NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999)
);

CREATE TABLE role_assignments (
    user_id    text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id text COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('reader', 'member', 'admin')),
    PRIMARY KEY (user_id, project_id)
);

CREATE INDEX role_assignments_project ON role_assignments (project_id);

CREATE TABLE tokens (
    id            text        NOT NULL PRIMARY KEY,
    secret_hash   text        NOT NULL UNIQUE,
    user_id       text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id    text COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    expires_at    timestamptz,
    expires_at_ns smallint    CHECK (expires_at_ns BETWEEN 0 AND 999),
    revoked       boolean     NOT NULL,
    CHECK ((expires_at IS NULL) = (expires_at_ns IS NULL))
);

CREATE INDEX tokens_user ON tokens (user_id);
CREATE INDEX tokens_project ON tokens (project_id);

CREATE TABLE audit_events (
    seq        bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL,
    at_ns      smallint    NOT NULL CHECK (at_ns BETWEEN 0 AND 999),
    request_id text        NOT NULL,
    project_id text,
    user_id    text,
    action     text        NOT NULL,
    resource   text        NOT NULL,
    result     text        NOT NULL,
    detail     text
);

CREATE INDEX audit_events_resource ON audit_events (resource, seq);
CREATE INDEX audit_events_at ON audit_events (at);
