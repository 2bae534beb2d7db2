-- Export names minted for NBD access to an image's guest disk. Only the SHA-256 of each secret name is
-- stored; a row does not outlive its image row.
CREATE TABLE nbd_exports (
    name_hash  TEXT NOT NULL PRIMARY KEY,
    image_id   TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE INDEX nbd_exports_image ON nbd_exports (image_id);
CREATE INDEX nbd_exports_expiry ON nbd_exports (expires_at);
