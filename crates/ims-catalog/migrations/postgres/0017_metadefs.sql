-- The metadata definitions catalog (Glance's metadefs). Objects, properties and tags share one shape: a
-- name unique within their namespace and a JSON body. Contents follow a namespace's renames and deletion.
-- Mirrors migrations/sqlite/0017.
CREATE TABLE metadef_namespaces (
    namespace     text COLLATE "C" NOT NULL PRIMARY KEY,
    display_name  text,
    description   text,
    visibility    text        NOT NULL CHECK (visibility IN ('public', 'private')),
    protected     boolean     NOT NULL,
    owner         text COLLATE "C" NOT NULL,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at    timestamptz NOT NULL,
    updated_at_ns smallint    NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999)
);

CREATE TABLE metadef_objects (
    namespace     text COLLATE "C" NOT NULL
                  REFERENCES metadef_namespaces (namespace) ON UPDATE CASCADE ON DELETE CASCADE,
    name          text COLLATE "C" NOT NULL,
    body          text        NOT NULL,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at    timestamptz NOT NULL,
    updated_at_ns smallint    NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999),
    PRIMARY KEY (namespace, name)
);

CREATE TABLE metadef_properties (LIKE metadef_objects INCLUDING ALL);
ALTER TABLE metadef_properties ADD FOREIGN KEY (namespace)
    REFERENCES metadef_namespaces (namespace) ON UPDATE CASCADE ON DELETE CASCADE;

CREATE TABLE metadef_tags (LIKE metadef_objects INCLUDING ALL);
ALTER TABLE metadef_tags ADD FOREIGN KEY (namespace)
    REFERENCES metadef_namespaces (namespace) ON UPDATE CASCADE ON DELETE CASCADE;

CREATE TABLE metadef_resource_types (
    name          text COLLATE "C" NOT NULL PRIMARY KEY,
    protected     boolean     NOT NULL,
    created_at    timestamptz NOT NULL,
    created_at_ns smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at    timestamptz NOT NULL,
    updated_at_ns smallint    NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999)
);

CREATE TABLE metadef_namespace_resource_types (
    namespace         text COLLATE "C" NOT NULL
                      REFERENCES metadef_namespaces (namespace) ON UPDATE CASCADE ON DELETE CASCADE,
    resource_type     text COLLATE "C" NOT NULL REFERENCES metadef_resource_types (name),
    prefix            text,
    properties_target text,
    created_at        timestamptz NOT NULL,
    created_at_ns     smallint    NOT NULL CHECK (created_at_ns BETWEEN 0 AND 999),
    updated_at        timestamptz NOT NULL,
    updated_at_ns     smallint    NOT NULL CHECK (updated_at_ns BETWEEN 0 AND 999),
    PRIMARY KEY (namespace, resource_type)
);

CREATE INDEX metadef_namespace_resource_types_type ON metadef_namespace_resource_types (resource_type);

-- The resource types of OpenStack's services, as Glance's definition files and dashboards name them.
INSERT INTO metadef_resource_types (name, protected, created_at, created_at_ns, updated_at, updated_at_ns)
SELECT name, true, date_trunc('second', now()), 0, date_trunc('second', now()), 0
FROM (VALUES ('OS::Glance::Image'), ('OS::Cinder::Volume'), ('OS::Nova::Flavor'), ('OS::Nova::Aggregate'),
             ('OS::Nova::Server')) AS standard (name);
