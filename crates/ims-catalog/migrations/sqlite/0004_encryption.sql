-- Encryption at rest: the master keys of the built-in KMS, the data key of each encryption domain (one per
-- project and master key), and what each encrypted image was written with.
-- Same conventions as 0001 (TEXT ids, RFC 3339 timestamps with nine fraction digits).

-- Master keys of the built-in KMS. The key material is sealed by the service's secret sealer (AES-256-GCM
-- under the node's master key); the catalog never holds it in clear.
CREATE TABLE kms_keys (
    id              TEXT NOT NULL PRIMARY KEY,
    alias           TEXT NOT NULL UNIQUE,
    description     TEXT,
    -- `enabled` or `disabled`: a disabled key wraps and unwraps nothing until it is enabled again.
    state           TEXT NOT NULL CHECK (state IN ('enabled', 'disabled')),
    sealed_material TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
);

-- The data key of one encryption domain, wrapped by the master key `key_id` (of whichever KMS provider the
-- service runs with). Chunks written by the project under that master key dedup with each other only.
CREATE TABLE encryption_domains (
    project_id       TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    wrapped_data_key TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (project_id, key_id)
);

-- The domain an encrypted image's data was written in: its master key and its wrapped data key (a copy of
-- the domain's, so that the image stays readable whoever owns it later).
CREATE TABLE image_encryption (
    image_id         TEXT NOT NULL PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    key_id           TEXT NOT NULL,
    wrapped_data_key TEXT NOT NULL
);

CREATE INDEX image_encryption_key ON image_encryption (key_id);
