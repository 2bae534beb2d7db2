-- Projects whose shares a project accepts without answering. Mirrors migrations/sqlite/0008.
CREATE TABLE share_auto_accept (
    project_id    text COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    from_project  text COLLATE "C" NOT NULL,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    PRIMARY KEY (project_id, from_project)
);
