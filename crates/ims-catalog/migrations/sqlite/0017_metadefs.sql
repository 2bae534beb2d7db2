-- The metadata definitions catalog (Glance's metadefs). Objects, properties and tags share one shape: a
-- name unique within their namespace and a JSON body. Contents follow a namespace's renames and deletion.
-- Mirrors migrations/postgres/0017.
CREATE TABLE metadef_namespaces (
    namespace    TEXT    NOT NULL PRIMARY KEY,
    display_name TEXT,
    description  TEXT,
    visibility   TEXT    NOT NULL CHECK (visibility IN ('public', 'private')),
    protected    INTEGER NOT NULL CHECK (protected IN (0, 1)),
    owner        TEXT    NOT NULL,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL
);

CREATE TABLE metadef_objects (
    namespace  TEXT NOT NULL REFERENCES metadef_namespaces (namespace) ON UPDATE CASCADE ON DELETE CASCADE,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE metadef_properties (
    namespace  TEXT NOT NULL REFERENCES metadef_namespaces (namespace) ON UPDATE CASCADE ON DELETE CASCADE,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE metadef_tags (
    namespace  TEXT NOT NULL REFERENCES metadef_namespaces (namespace) ON UPDATE CASCADE ON DELETE CASCADE,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE metadef_resource_types (
    name       TEXT    NOT NULL PRIMARY KEY,
    protected  INTEGER NOT NULL CHECK (protected IN (0, 1)),
    created_at TEXT    NOT NULL,
    updated_at TEXT    NOT NULL
);

CREATE TABLE metadef_namespace_resource_types (
    namespace         TEXT NOT NULL REFERENCES metadef_namespaces (namespace) ON UPDATE CASCADE ON DELETE CASCADE,
    resource_type     TEXT NOT NULL REFERENCES metadef_resource_types (name),
    prefix            TEXT,
    properties_target TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (namespace, resource_type)
);

CREATE INDEX metadef_namespace_resource_types_type ON metadef_namespace_resource_types (resource_type);

-- The resource types of OpenStack's services, as Glance's definition files and dashboards name them.
INSERT INTO metadef_resource_types (name, protected, created_at, updated_at)
SELECT name, 1, strftime('%Y-%m-%dT%H:%M:%S.000000000Z', 'now'), strftime('%Y-%m-%dT%H:%M:%S.000000000Z', 'now')
FROM (SELECT 'OS::Glance::Image' AS name UNION ALL SELECT 'OS::Cinder::Volume' UNION ALL SELECT 'OS::Nova::Flavor'
      UNION ALL SELECT 'OS::Nova::Aggregate' UNION ALL SELECT 'OS::Nova::Server');
