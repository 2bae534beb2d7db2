-- Glance multiple stores: the stores besides the node's default store that hold a copy of an image's data,
-- as a comma-separated list of store ids (empty: the default store only).
ALTER TABLE images ADD COLUMN extra_stores TEXT NOT NULL DEFAULT '';
