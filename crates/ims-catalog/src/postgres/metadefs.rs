//! [`MetadefRepository`] over PostgreSQL.

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Postgres, Transaction};

use super::{begin, commit, conflict_or_db, db_err, get, get_time, insert_audit, parse_stored, split_time};
use crate::metadef::{
    MetadefItem, MetadefItemKind, MetadefNamespace, MetadefRepository, MetadefResourceType, NamespaceContents,
    NamespaceFilter, ResourceTypeAssociation,
};
use crate::{AuditEvent, CatalogError, Result};

/// The metadata definitions repository of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresMetadefs {
    pool: PgPool,
}

impl PostgresMetadefs {
    pub(super) fn new(pool: PgPool) -> PostgresMetadefs {
        PostgresMetadefs { pool }
    }
}

fn table(kind: MetadefItemKind) -> &'static str {
    match kind {
        MetadefItemKind::Object => "metadef_objects",
        MetadefItemKind::Property => "metadef_properties",
        MetadefItemKind::Tag => "metadef_tags",
    }
}

const NAMESPACE_COLUMNS: &str = "namespace, display_name, description, visibility, protected, owner, \
     created_at, created_at_ns, updated_at, updated_at_ns";

fn namespace_from_row(row: &PgRow) -> Result<MetadefNamespace> {
    Ok(MetadefNamespace {
        namespace: get(row, "namespace")?,
        display_name: get(row, "display_name")?,
        description: get(row, "description")?,
        visibility: parse_stored(&get::<String>(row, "visibility")?)?,
        protected: get(row, "protected")?,
        owner: get(row, "owner")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

fn item_from_row(row: &PgRow) -> Result<MetadefItem> {
    let body: String = get(row, "body")?;
    Ok(MetadefItem {
        name: get(row, "name")?,
        body: serde_json::from_str(&body).map_err(|e| CatalogError::Database(format!("bad metadef body: {e}")))?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

fn association_from_row(row: &PgRow) -> Result<ResourceTypeAssociation> {
    Ok(ResourceTypeAssociation {
        name: get(row, "resource_type")?,
        prefix: get(row, "prefix")?,
        properties_target: get(row, "properties_target")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

/// `NotFound` unless `namespace` exists.
async fn require_namespace(tx: &mut Transaction<'static, Postgres>, namespace: &str) -> Result<()> {
    // The lock keeps the namespace from being deleted or renamed until the caller's transaction ends.
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM metadef_namespaces WHERE namespace = $1 FOR KEY SHARE")
        .bind(namespace)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db_err)?;
    if exists.is_some() {
        Ok(())
    } else {
        Err(CatalogError::NotFound(format!("metadata definition namespace {namespace}")))
    }
}

async fn insert_item(
    tx: &mut Transaction<'static, Postgres>,
    namespace: &str,
    kind: MetadefItemKind,
    item: &MetadefItem,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO {} (namespace, name, body, created_at, created_at_ns, updated_at, updated_at_ns) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        table(kind)
    ))
    .bind(namespace)
    .bind(&item.name)
    .bind(item.body.to_string())
    .bind(split_time(&item.created_at).0)
    .bind(split_time(&item.created_at).1)
    .bind(split_time(&item.updated_at).0)
    .bind(split_time(&item.updated_at).1)
    .execute(&mut **tx)
    .await
    .map_err(conflict_or_db(|| format!("{} {} already exists in namespace {namespace}", kind.noun(), item.name)))?;
    Ok(())
}

async fn insert_association(
    tx: &mut Transaction<'static, Postgres>,
    namespace: &str,
    association: &ResourceTypeAssociation,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO metadef_resource_types (name, protected, created_at, created_at_ns, updated_at, updated_at_ns) \
         VALUES ($1, false, $2, $3, $2, $3) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&association.name)
    .bind(split_time(&association.created_at).0)
    .bind(split_time(&association.created_at).1)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO metadef_namespace_resource_types \
         (namespace, resource_type, prefix, properties_target, created_at, created_at_ns, updated_at, updated_at_ns) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(namespace)
    .bind(&association.name)
    .bind(&association.prefix)
    .bind(&association.properties_target)
    .bind(split_time(&association.created_at).0)
    .bind(split_time(&association.created_at).1)
    .bind(split_time(&association.updated_at).0)
    .bind(split_time(&association.updated_at).1)
    .execute(&mut **tx)
    .await
    .map_err(conflict_or_db(|| {
        format!("namespace {namespace} is already associated with resource type {}", association.name)
    }))?;
    Ok(())
}

#[async_trait]
impl MetadefRepository for PostgresMetadefs {
    async fn create_namespace(&self, contents: &NamespaceContents, event: &AuditEvent) -> Result<()> {
        let ns = &contents.namespace;
        let mut tx = begin(&self.pool).await?;
        sqlx::query(&format!(
            "INSERT INTO metadef_namespaces ({NAMESPACE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
            .bind(&ns.namespace)
            .bind(&ns.display_name)
            .bind(&ns.description)
            .bind(ns.visibility.as_str())
            .bind(ns.protected)
            .bind(&ns.owner)
            .bind(split_time(&ns.created_at).0)
            .bind(split_time(&ns.created_at).1)
            .bind(split_time(&ns.updated_at).0)
            .bind(split_time(&ns.updated_at).1)
            .execute(&mut *tx)
            .await
            .map_err(conflict_or_db(|| format!("namespace {} already exists", ns.namespace)))?;
        for (kind, items) in [
            (MetadefItemKind::Object, &contents.objects),
            (MetadefItemKind::Property, &contents.properties),
            (MetadefItemKind::Tag, &contents.tags),
        ] {
            for item in items {
                insert_item(&mut tx, &ns.namespace, kind, item).await?;
            }
        }
        for association in &contents.associations {
            insert_association(&mut tx, &ns.namespace, association).await?;
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn namespace(&self, namespace: &str) -> Result<Option<MetadefNamespace>> {
        let row = sqlx::query(&format!("SELECT {NAMESPACE_COLUMNS} FROM metadef_namespaces WHERE namespace = $1"))
            .bind(namespace)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(namespace_from_row).transpose()
    }

    async fn list_namespaces(&self, filter: &NamespaceFilter) -> Result<Vec<MetadefNamespace>> {
        let mut sql = format!("SELECT {NAMESPACE_COLUMNS} FROM metadef_namespaces n WHERE 1 = 1");
        let mut binds = 0;
        if filter.visible_to.is_some() {
            binds += 1;
            sql.push_str(&format!(" AND (n.visibility = 'public' OR n.owner = ${binds})"));
        }
        if filter.visibility.is_some() {
            binds += 1;
            sql.push_str(&format!(" AND n.visibility = ${binds}"));
        }
        if !filter.resource_types.is_empty() {
            let marks: Vec<String> = (0..filter.resource_types.len()).map(|i| format!("${}", binds + 1 + i)).collect();
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM metadef_namespace_resource_types a \
                 WHERE a.namespace = n.namespace AND a.resource_type IN ({}))",
                marks.join(", ")
            ));
        }
        sql.push_str(" ORDER BY n.namespace");
        let mut query = sqlx::query(&sql);
        if let Some(project) = &filter.visible_to {
            query = query.bind(project);
        }
        if let Some(visibility) = filter.visibility {
            query = query.bind(visibility.as_str());
        }
        for resource_type in &filter.resource_types {
            query = query.bind(resource_type);
        }
        let rows = query.fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(namespace_from_row).collect()
    }

    async fn update_namespace(&self, old_name: &str, new: &MetadefNamespace, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let updated = sqlx::query(
            "UPDATE metadef_namespaces SET namespace = $1, display_name = $2, description = $3, visibility = $4, \
             protected = $5, owner = $6, updated_at = $7, updated_at_ns = $8 WHERE namespace = $9",
        )
        .bind(&new.namespace)
        .bind(&new.display_name)
        .bind(&new.description)
        .bind(new.visibility.as_str())
        .bind(new.protected)
        .bind(&new.owner)
        .bind(split_time(&new.updated_at).0)
        .bind(split_time(&new.updated_at).1)
        .bind(old_name)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or_db(|| format!("namespace {} already exists", new.namespace)))?
        .rows_affected();
        if updated == 0 {
            return Err(CatalogError::NotFound(format!("metadata definition namespace {old_name}")));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn delete_namespace(&self, namespace: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let deleted = sqlx::query("DELETE FROM metadef_namespaces WHERE namespace = $1")
            .bind(namespace)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if deleted == 0 {
            return Err(CatalogError::NotFound(format!("metadata definition namespace {namespace}")));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn items(&self, namespace: &str, kind: MetadefItemKind) -> Result<Vec<MetadefItem>> {
        let rows = sqlx::query(&format!(
            "SELECT name, body, created_at, created_at_ns, updated_at, updated_at_ns FROM {} WHERE namespace = $1 \
             ORDER BY name",
            table(kind)
        ))
        .bind(namespace)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(item_from_row).collect()
    }

    async fn item(&self, namespace: &str, kind: MetadefItemKind, name: &str) -> Result<Option<MetadefItem>> {
        let row = sqlx::query(&format!(
            "SELECT name, body, created_at, created_at_ns, updated_at, updated_at_ns FROM {} \
             WHERE namespace = $1 AND name = $2",
            table(kind)
        ))
        .bind(namespace)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        row.as_ref().map(item_from_row).transpose()
    }

    async fn create_items(
        &self,
        namespace: &str,
        kind: MetadefItemKind,
        items: &[MetadefItem],
        replace: bool,
        event: &AuditEvent,
    ) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        require_namespace(&mut tx, namespace).await?;
        if replace {
            sqlx::query(&format!("DELETE FROM {} WHERE namespace = $1", table(kind)))
                .bind(namespace)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        for item in items {
            insert_item(&mut tx, namespace, kind, item).await?;
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn update_item(
        &self,
        namespace: &str,
        kind: MetadefItemKind,
        old_name: &str,
        item: &MetadefItem,
        event: &AuditEvent,
    ) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let updated = sqlx::query(&format!(
            "UPDATE {} SET name = $1, body = $2, updated_at = $3, updated_at_ns = $4 WHERE namespace = $5 AND name = $6",
            table(kind)
        ))
        .bind(&item.name)
        .bind(item.body.to_string())
        .bind(split_time(&item.updated_at).0)
        .bind(split_time(&item.updated_at).1)
        .bind(namespace)
        .bind(old_name)
        .execute(&mut *tx)
        .await
        .map_err(conflict_or_db(|| format!("{} {} already exists in namespace {namespace}", kind.noun(), item.name)))?
        .rows_affected();
        if updated == 0 {
            return Err(CatalogError::NotFound(format!("{} {old_name} in namespace {namespace}", kind.noun())));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn delete_item(&self, namespace: &str, kind: MetadefItemKind, name: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let deleted = sqlx::query(&format!("DELETE FROM {} WHERE namespace = $1 AND name = $2", table(kind)))
            .bind(namespace)
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if deleted == 0 {
            return Err(CatalogError::NotFound(format!("{} {name} in namespace {namespace}", kind.noun())));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn delete_items(&self, namespace: &str, kind: MetadefItemKind, event: &AuditEvent) -> Result<u64> {
        let mut tx = begin(&self.pool).await?;
        require_namespace(&mut tx, namespace).await?;
        let deleted = sqlx::query(&format!("DELETE FROM {} WHERE namespace = $1", table(kind)))
            .bind(namespace)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(deleted)
    }

    async fn resource_types(&self) -> Result<Vec<MetadefResourceType>> {
        let rows = sqlx::query(
            "SELECT name, protected, created_at, created_at_ns, updated_at, updated_at_ns \
             FROM metadef_resource_types ORDER BY name",
        )
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(MetadefResourceType {
                    name: get(row, "name")?,
                    protected: get(row, "protected")?,
                    created_at: get_time(row, "created_at")?,
                    updated_at: get_time(row, "updated_at")?,
                })
            })
            .collect()
    }

    async fn associations(&self, namespace: &str) -> Result<Vec<ResourceTypeAssociation>> {
        let rows = sqlx::query(
            "SELECT resource_type, prefix, properties_target, created_at, created_at_ns, updated_at, updated_at_ns \
             FROM metadef_namespace_resource_types WHERE namespace = $1 ORDER BY resource_type",
        )
        .bind(namespace)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(association_from_row).collect()
    }

    async fn create_association(
        &self,
        namespace: &str,
        association: &ResourceTypeAssociation,
        event: &AuditEvent,
    ) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        require_namespace(&mut tx, namespace).await?;
        insert_association(&mut tx, namespace, association).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn delete_association(&self, namespace: &str, resource_type: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let deleted =
            sqlx::query("DELETE FROM metadef_namespace_resource_types WHERE namespace = $1 AND resource_type = $2")
                .bind(namespace)
                .bind(resource_type)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?
                .rows_affected();
        if deleted == 0 {
            return Err(CatalogError::NotFound(format!(
                "association of namespace {namespace} with resource type {resource_type}"
            )));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }
}
