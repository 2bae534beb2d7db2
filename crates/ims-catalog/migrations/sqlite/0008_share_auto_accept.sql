-- Projects whose shares a project accepts without answering: a share of an image owned by `from_project`
-- with `project_id` starts `accepted` instead of `pending`.
CREATE TABLE share_auto_accept (
    project_id   TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    from_project TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (project_id, from_project)
);
