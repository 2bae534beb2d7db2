-- Recycle bin: a binned image is deleted for every other purpose (status 'deleted', `deleted_at` set, the
-- time it was binned) but keeps its data until it is purged: `binned_status` is the status it returns to
-- when restored and `bin_purge_after` (with its nanoseconds, like every read-back time) the time from
-- which the background purge may remove it. Both are set exactly while the image is in the bin.
ALTER TABLE images ADD COLUMN binned_status text
    CHECK (binned_status IS NULL OR binned_status IN ('queued', 'saving', 'uploading', 'importing', 'active',
                                                      'deactivated', 'killed', 'pending_delete'));
ALTER TABLE images ADD COLUMN bin_purge_after timestamptz;
ALTER TABLE images ADD COLUMN bin_purge_after_ns smallint CHECK (bin_purge_after_ns BETWEEN 0 AND 999);
ALTER TABLE images ADD CONSTRAINT images_bin_fields_set_together
    CHECK ((bin_purge_after IS NULL) = (binned_status IS NULL)
           AND (bin_purge_after IS NULL) = (bin_purge_after_ns IS NULL)
           AND (binned_status IS NULL OR status = 'deleted'));

CREATE INDEX images_bin_purge_after ON images (bin_purge_after) WHERE bin_purge_after IS NOT NULL;

-- Lineage: where the image's data came from (`source_type`: upload, import, copy, server, ...), what it
-- came from (`source_ref`: `bucket:key`, a URL without credentials or query, an image or server id) and
-- the image it was derived from (`parent_id`, kept even after that image is deleted).
ALTER TABLE images ADD COLUMN source_type text;
ALTER TABLE images ADD COLUMN source_ref text;
ALTER TABLE images ADD COLUMN parent_id uuid;

CREATE INDEX images_parent_id ON images (parent_id);
