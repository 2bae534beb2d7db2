-- Export names minted for NBD access to an image's guest disk. Mirrors migrations/sqlite/0007.
CREATE TABLE nbd_exports (
    name_hash  text COLLATE "C" NOT NULL PRIMARY KEY,
    image_id   uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    created_by text        NOT NULL,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    expires_at    timestamptz NOT NULL,
    expires_at_ns smallint    NOT NULL CHECK (expires_at_ns BETWEEN 0 AND 999)
);

CREATE INDEX nbd_exports_image ON nbd_exports (image_id);
CREATE INDEX nbd_exports_expiry ON nbd_exports (expires_at);
