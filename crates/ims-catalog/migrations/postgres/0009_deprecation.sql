-- Deprecation: from `deprecate_at` on, an image is left out of default lists; it stays readable and usable.
-- Stored like every read-back time: timestamptz plus the nanoseconds below the microsecond.
ALTER TABLE images ADD COLUMN deprecate_at timestamptz;
ALTER TABLE images ADD COLUMN deprecate_at_ns smallint CHECK (deprecate_at_ns BETWEEN 0 AND 999);
ALTER TABLE images ADD CONSTRAINT images_deprecate_at_ns_set
    CHECK ((deprecate_at IS NULL) = (deprecate_at_ns IS NULL));

CREATE INDEX images_deprecate_at ON images (deprecate_at);
