-- Encryption at rest: the master keys of the built-in KMS, the data key of each encryption domain (one per
-- project and master key), and what each encrypted image was written with. Mirrors migrations/sqlite/0004.

-- Master keys of the built-in KMS. The key material is sealed by the service's secret sealer (AES-256-GCM
-- under the node's master key); the catalog never holds it in clear.
CREATE TABLE kms_keys (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    alias           text        NOT NULL UNIQUE,
    description     text,
    -- `enabled` or `disabled`: a disabled key wraps and unwraps nothing until it is enabled again.
    state           text        NOT NULL CHECK (state IN ('enabled', 'disabled')),
    sealed_material text        NOT NULL,
    created_at      timestamptz NOT NULL,
    created_at_ns   smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at      timestamptz NOT NULL,
    updated_at_ns   smallint    NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999)
);

-- The data key of one encryption domain, wrapped by the master key `key_id` (of whichever KMS provider the
-- service runs with). Chunks written by the project under that master key dedup with each other only.
CREATE TABLE encryption_domains (
    project_id       text        NOT NULL,
    key_id           text        NOT NULL,
    wrapped_data_key text        NOT NULL,
    created_at       timestamptz NOT NULL,
    PRIMARY KEY (project_id, key_id)
);

-- The domain an encrypted image's data was written in: its master key and its wrapped data key (a copy of
-- the domain's, so that the image stays readable whoever owns it later).
CREATE TABLE image_encryption (
    image_id         uuid NOT NULL PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    key_id           text NOT NULL,
    wrapped_data_key text NOT NULL
);

CREATE INDEX image_encryption_key ON image_encryption (key_id);
