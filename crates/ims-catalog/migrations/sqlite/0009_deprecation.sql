-- Deprecation: from `deprecate_at` on (RFC 3339 UTC, the fixed nine-digit fraction of 0001), an image is
-- left out of default lists; it stays readable and usable.
ALTER TABLE images ADD COLUMN deprecate_at TEXT;

CREATE INDEX images_deprecate_at ON images (deprecate_at);
