-- Marketplace: images listed as products, and the projects that subscribed to (use) a listing.
-- One listing per image; product codes are unique. A subscription makes the listed image readable to the
-- subscribing project; it lives as long as its listing (delisting removes the listing's subscriptions).
-- Mirrors migrations/sqlite/0012.
CREATE TABLE market_listings (
    id            uuid        NOT NULL PRIMARY KEY,
    image_id      uuid        NOT NULL UNIQUE REFERENCES images (id) ON DELETE CASCADE,
    publisher     text COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    product_code  text COLLATE "C" NOT NULL UNIQUE,
    version       text        NOT NULL,
    description   text        NOT NULL,
    offshelved    boolean     NOT NULL,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at    timestamptz NOT NULL,
    updated_at_ns smallint    NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999)
);

CREATE TABLE market_subscriptions (
    listing_id uuid        NOT NULL REFERENCES market_listings (id) ON DELETE CASCADE,
    project_id text COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    since      timestamptz NOT NULL,
    since_ns   smallint    NOT NULL CHECK (since_ns BETWEEN 0 AND 999),
    PRIMARY KEY (listing_id, project_id)
);

CREATE INDEX market_subscriptions_project ON market_subscriptions (project_id);
