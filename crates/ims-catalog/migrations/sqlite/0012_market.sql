-- Marketplace: images listed as products, and the projects that subscribed to (use) a listing.
-- One listing per image; product codes are unique. A subscription makes the listed image readable to the
-- subscribing project; it lives as long as its listing (delisting removes the listing's subscriptions).
CREATE TABLE market_listings (
    id           TEXT NOT NULL PRIMARY KEY,
    image_id     TEXT NOT NULL UNIQUE REFERENCES images (id) ON DELETE CASCADE,
    publisher    TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    product_code TEXT NOT NULL UNIQUE,
    version      TEXT NOT NULL,
    description  TEXT NOT NULL,
    offshelved   INTEGER NOT NULL CHECK (offshelved IN (0, 1)),
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE market_subscriptions (
    listing_id TEXT NOT NULL REFERENCES market_listings (id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    since      TEXT NOT NULL,
    PRIMARY KEY (listing_id, project_id)
);

CREATE INDEX market_subscriptions_project ON market_subscriptions (project_id);
