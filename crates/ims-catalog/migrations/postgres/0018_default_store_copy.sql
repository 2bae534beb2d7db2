-- Glance multiple stores: whether the node's default store holds a copy of the image's data. An image
-- deleted from the default store (`DELETE /v2/stores/local/{id}`) is held by its extra stores only.
ALTER TABLE images ADD COLUMN in_default_store boolean NOT NULL DEFAULT TRUE;
