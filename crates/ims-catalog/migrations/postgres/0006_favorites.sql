-- Frequently used images: each user's own list of favourite images. A row outlives neither its user nor
-- its image row; an image that is deleted (or that the user can no longer see) is left out when the list
-- is read. Mirrors migrations/sqlite/0006.
CREATE TABLE image_favorites (
    user_id     text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    image_id    uuid        NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    added_at    timestamptz NOT NULL,
    added_at_ns smallint    NOT NULL CHECK (added_at_ns BETWEEN 0 AND 999),
    PRIMARY KEY (user_id, image_id)
);

CREATE INDEX image_favorites_image ON image_favorites (image_id);
