-- What the Huawei Cloud IMS API adds to the catalog: access keys (AK/SK), per-project quotas, the
-- key/value resource tags of the IMS API (separate from Glance's plain-string tags in `image_tags`),
-- durable jobs, and operator additions to the built-in OS version catalogue.
-- Mirrors migrations/sqlite/0002_ims.sql; same conventions as 0001 (timestamptz plus `_ns`, "C" collation
-- for ordered text).

CREATE TABLE access_keys (
    -- The access key id (AK), as sent in `Authorization: SDK-HMAC-SHA256 Access=<AK>, ...`.
    id            text COLLATE "C" NOT NULL PRIMARY KEY,
    user_id       text COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- When set, the key is only valid in this project; else in every project where the user has a role.
    project_id    text COLLATE "C" REFERENCES projects (id) ON DELETE CASCADE,
    -- The secret (SK) sealed by the service's secret sealer (AES-256-GCM under a master key), base64.
    sealed_secret text        NOT NULL,
    description   text,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    revoked       boolean     NOT NULL
);

CREATE INDEX access_keys_user ON access_keys (user_id);
CREATE INDEX access_keys_project ON access_keys (project_id);

-- A project's own limit for a resource (`private_images`, ...); absent means the service default.
CREATE TABLE project_quotas (
    project_id text   NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    resource   text   NOT NULL,
    quota      bigint NOT NULL CHECK (quota >= 0),
    PRIMARY KEY (project_id, resource)
);

-- IMS resource tags: one value per key per image.
CREATE TABLE image_resource_tags (
    image_id uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    key      text COLLATE "C" NOT NULL,
    value    text NOT NULL,
    PRIMARY KEY (image_id, key)
);

CREATE INDEX image_resource_tags_key_value ON image_resource_tags (key, value);

-- Long-running work. The job runner (claims, heartbeats, retries) uses `attempts`, `claimed_by` and
-- `heartbeat_at`.
CREATE TABLE jobs (
    id              text COLLATE "C" NOT NULL PRIMARY KEY,
    job_type        text             NOT NULL,
    project_id      text             NOT NULL,
    status          text             NOT NULL CHECK (status IN ('INIT', 'RUNNING', 'SUCCESS', 'FAIL')),
    -- Percent done, 0 to 100.
    progress        double precision NOT NULL CHECK (progress >= 0 AND progress <= 100),
    -- What the job works on and produced (`image_id`, `sub_jobs_result`, ...).
    entities        jsonb            NOT NULL,
    -- The job's input, for a runner that (re)starts it.
    params          jsonb            NOT NULL,
    error_code      text,
    fail_reason     text,
    attempts        bigint           NOT NULL CHECK (attempts >= 0),
    claimed_by      text,
    heartbeat_at    timestamptz,
    heartbeat_at_ns smallint         CHECK (heartbeat_at_ns BETWEEN 0 AND 999),
    created_at      timestamptz      NOT NULL,
    created_at_ns   smallint         NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at      timestamptz      NOT NULL,
    updated_at_ns   smallint         NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999),
    begin_time      timestamptz,
    begin_time_ns   smallint         CHECK (begin_time_ns BETWEEN 0 AND 999),
    end_time        timestamptz,
    end_time_ns     smallint         CHECK (end_time_ns BETWEEN 0 AND 999),
    CHECK ((heartbeat_at IS NULL) = (heartbeat_at_ns IS NULL)),
    CHECK ((begin_time IS NULL) = (begin_time_ns IS NULL)),
    CHECK ((end_time IS NULL) = (end_time_ns IS NULL))
);

CREATE INDEX jobs_project ON jobs (project_id, created_at);
CREATE INDEX jobs_status ON jobs (status, created_at);

-- OS versions an operator added to the built-in catalogue (`GET /v1/cloudimages/os_version`).
CREATE TABLE os_versions (
    os_version_key text COLLATE "C" NOT NULL PRIMARY KEY,
    platform       text COLLATE "C" NOT NULL,
    os_version     text        NOT NULL,
    os_bit         bigint      NOT NULL CHECK (os_bit IN (32, 64)),
    os_type        text        NOT NULL CHECK (os_type IN ('Linux', 'Windows', 'Other')),
    created_at     timestamptz NOT NULL
);
