-- The built-in compute driver: servers, volumes, volume export names. Mirrors migrations/sqlite/0010.
CREATE TABLE servers (
    id           uuid    NOT NULL PRIMARY KEY,
    project      text COLLATE "C" NOT NULL,
    name         text    NOT NULL,
    server_type  text    NOT NULL,
    vcpus        bigint  NOT NULL,
    ram_mb       bigint  NOT NULL,
    architecture text    NOT NULL,
    status       text    NOT NULL,
    image_id     uuid,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at    timestamptz NOT NULL,
    updated_at_ns smallint    NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999)
);

CREATE INDEX servers_project ON servers (project, created_at);

CREATE TABLE volumes (
    id                uuid   NOT NULL PRIMARY KEY,
    project           text COLLATE "C" NOT NULL,
    name              text   NOT NULL,
    size              bigint NOT NULL,
    manifest_id       text   NOT NULL,
    source_image_id   uuid,
    bootable          boolean NOT NULL,
    encryption_key_id text,
    wrapped_data_key  text,
    server_id         uuid REFERENCES servers (id),
    device_index      bigint,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at    timestamptz NOT NULL,
    updated_at_ns smallint    NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999),
    CHECK ((server_id IS NULL) = (device_index IS NULL)),
    UNIQUE (server_id, device_index)
);

CREATE INDEX volumes_project ON volumes (project, created_at);

CREATE TABLE volume_exports (
    name_hash  text COLLATE "C" NOT NULL PRIMARY KEY,
    volume_id  uuid        NOT NULL REFERENCES volumes (id) ON DELETE CASCADE,
    created_by text        NOT NULL,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    expires_at    timestamptz NOT NULL,
    expires_at_ns smallint    NOT NULL CHECK (expires_at_ns BETWEEN 0 AND 999)
);

CREATE INDEX volume_exports_volume ON volume_exports (volume_id);
CREATE INDEX volume_exports_expiry ON volume_exports (expires_at);
