-- What the Huawei Cloud IMS API adds to the catalog: access keys (AK/SK), per-project quotas, the
-- key/value resource tags of the IMS API (separate from Glance's plain-string tags in `image_tags`),
-- durable jobs, and operator additions to the built-in OS version catalogue.
-- Same conventions as 0001 (TEXT ids, RFC 3339 timestamps with nine fraction digits, INTEGER booleans).

CREATE TABLE access_keys (
    -- The access key id (AK), as sent in `Authorization: SDK-HMAC-SHA256 Access=<AK>, ...`.
    id            TEXT    NOT NULL PRIMARY KEY,
    user_id       TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- When set, the key is only valid in this project; else in every project where the user has a role.
    project_id    TEXT    REFERENCES projects (id) ON DELETE CASCADE,
    -- The secret (SK) sealed by the service's secret sealer (AES-256-GCM under a master key), base64.
    sealed_secret TEXT    NOT NULL,
    description   TEXT,
    created_at    TEXT    NOT NULL,
    revoked       INTEGER NOT NULL CHECK (revoked IN (0, 1))
);

CREATE INDEX access_keys_user ON access_keys (user_id);
CREATE INDEX access_keys_project ON access_keys (project_id);

-- A project's own limit for a resource (`private_images`, ...); absent means the service default.
CREATE TABLE project_quotas (
    project_id TEXT    NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    resource   TEXT    NOT NULL,
    quota      INTEGER NOT NULL CHECK (quota >= 0),
    PRIMARY KEY (project_id, resource)
);

-- IMS resource tags: one value per key per image.
CREATE TABLE image_resource_tags (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (image_id, key)
);

CREATE INDEX image_resource_tags_key_value ON image_resource_tags (key, value);

-- Long-running work. The later job runner (claims, heartbeats, retries) uses `attempts`,
-- `claimed_by` and `heartbeat_at`; the first jobs (member batches) run in the node that created them.
CREATE TABLE jobs (
    id           TEXT    NOT NULL PRIMARY KEY,
    job_type     TEXT    NOT NULL,
    project_id   TEXT    NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('INIT', 'RUNNING', 'SUCCESS', 'FAIL')),
    -- Percent done, 0 to 100.
    progress     REAL    NOT NULL CHECK (progress >= 0 AND progress <= 100),
    -- JSON object: what the job works on and produced (`image_id`, `sub_jobs_result`, ...).
    entities     TEXT    NOT NULL,
    -- JSON: the job's input, for a runner that (re)starts it.
    params       TEXT    NOT NULL,
    error_code   TEXT,
    fail_reason  TEXT,
    attempts     INTEGER NOT NULL CHECK (attempts >= 0),
    claimed_by   TEXT,
    heartbeat_at TEXT,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    begin_time   TEXT,
    end_time     TEXT
);

CREATE INDEX jobs_project ON jobs (project_id, created_at);
CREATE INDEX jobs_status ON jobs (status, created_at);

-- OS versions an operator added to the built-in catalogue (`GET /v1/cloudimages/os_version`).
CREATE TABLE os_versions (
    os_version_key TEXT    NOT NULL PRIMARY KEY,
    platform       TEXT    NOT NULL,
    os_version     TEXT    NOT NULL,
    os_bit         INTEGER NOT NULL CHECK (os_bit IN (32, 64)),
    os_type        TEXT    NOT NULL CHECK (os_type IN ('Linux', 'Windows', 'Other')),
    created_at     TEXT    NOT NULL
);
