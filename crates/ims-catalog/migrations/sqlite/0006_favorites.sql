-- Frequently used images: each user's own list of favourite images. A row outlives neither its user nor
-- its image row; an image that is deleted (or that the user can no longer see) is left out when the list
-- is read.
CREATE TABLE image_favorites (
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    added_at TEXT NOT NULL,
    PRIMARY KEY (user_id, image_id)
);

CREATE INDEX image_favorites_image ON image_favorites (image_id);
