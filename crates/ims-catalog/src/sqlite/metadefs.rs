//! [`MetadefRepository`] over SQLite.

use async_trait::async_trait;
use sqlx::sqlite::SqliteRow;
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::{begin_write, commit, conflict_or_db, db_err, fmt_time, get, insert_audit, parse_stored, parse_time};
use crate::metadef::{
    MetadefItem, MetadefItemKind, MetadefNamespace, MetadefRepository, MetadefResourceType, NamespaceContents,
    NamespaceFilter, ResourceTypeAssociation,
};
use crate::{AuditEvent, CatalogError, Result};

/// The metadata definitions repository of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteMetadefs {
    pool: SqlitePool,
}

impl SqliteMetadefs {
    pub(super) fn new(pool: SqlitePool) -> SqliteMetadefs {
        SqliteMetadefs { pool }
    }
}

fn table(kind: MetadefItemKind) -> &'static str {
    match kind {
        MetadefItemKind::Object => "metadef_objects",
        MetadefItemKind::Property => "metadef_properties",
        MetadefItemKind::Tag => "metadef_tags",
    }
}

const NAMESPACE_COLUMNS: &str =
    "namespace, display_name, description, visibility, protected, owner, created_at, updated_at";

fn namespace_from_row(row: &SqliteRow) -> Result<MetadefNamespace> {
    Ok(MetadefNamespace {
        namespace: get(row, "namespace")?,
        display_name: get(row, "display_name")?,
        description: get(row, "description")?,
        visibility: parse_stored(&get::<String>(row, "visibility")?)?,
        protected: get(row, "protected")?,
        owner: get(row, "owner")?,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
    })
}

fn item_from_row(row: &SqliteRow) -> Result<MetadefItem> {
    let body: String = get(row, "body")?;
    Ok(MetadefItem {
        name: get(row, "name")?,
        body: serde_json::from_str(&body).map_err(|e| CatalogError::Database(format!("bad metadef body: {e}")))?,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
    })
}

fn association_from_row(row: &SqliteRow) -> Result<ResourceTypeAssociation> {
    Ok(ResourceTypeAssociation {
        name: get(row, "resource_type")?,
        prefix: get(row, "prefix")?,
        properties_target: get(row, "properties_target")?,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
    })
}

/// `NotFound` unless `namespace` exists.
async fn require_namespace(tx: &mut Transaction<'static, Sqlite>, namespace: &str) -> Result<()> {
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM metadef_namespaces WHERE namespace = ?)")
        .bind(namespace)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
    if exists {
        Ok(())
    } else {
        Err(CatalogError::NotFound(format!("metadata definition namespace {namespace}")))
    }
}

async fn insert_item(
    tx: &mut Transaction<'static, Sqlite>,
    namespace: &str,
    kind: MetadefItemKind,
    item: &MetadefItem,
) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO {} (namespace, name, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
        table(kind)
    ))
    .bind(namespace)
    .bind(&item.name)
    .bind(item.body.to_string())
    .bind(fmt_time(&item.created_at))
    .bind(fmt_time(&item.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(conflict_or_db(|| format!("{} {} already exists in namespace {namespace}", kind.noun(), item.name)))?;
    Ok(())
}

async fn insert_association(
    tx: &mut Transaction<'static, Sqlite>,
    namespace: &str,
    association: &ResourceTypeAssociation,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO metadef_resource_types (name, protected, created_at, updated_at) VALUES (?, 0, ?, ?) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(&association.name)
    .bind(fmt_time(&association.created_at))
    .bind(fmt_time(&association.created_at))
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query(
        "INSERT INTO metadef_namespace_resource_types \
         (namespace, resource_type, prefix, properties_target, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(namespace)
    .bind(&association.name)
    .bind(&association.prefix)
    .bind(&association.properties_target)
    .bind(fmt_time(&association.created_at))
    .bind(fmt_time(&association.updated_at))
    .execute(&mut **tx)
    .await
    .map_err(conflict_or_db(|| {
        format!("namespace {namespace} is already associated with resource type {}", association.name)
    }))?;
    Ok(())
}

#[async_trait]
impl MetadefRepository for SqliteMetadefs {
    async fn create_namespace(&self, contents: &NamespaceContents, event: &AuditEvent) -> Result<()> {
        let ns = &contents.namespace;
        let mut tx = begin_write(&self.pool).await?;
        sqlx::query(&format!("INSERT INTO metadef_namespaces ({NAMESPACE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"))
            .bind(&ns.namespace)
            .bind(&ns.display_name)
            .bind(&ns.description)
            .bind(ns.visibility.as_str())
            .bind(ns.protected)
            .bind(&ns.owner)
            .bind(fmt_time(&ns.created_at))
            .bind(fmt_time(&ns.updated_at))
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
        let row = sqlx::query(&format!("SELECT {NAMESPACE_COLUMNS} FROM metadef_namespaces WHERE namespace = ?"))
            .bind(namespace)
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)?;
        row.as_ref().map(namespace_from_row).transpose()
    }

    async fn list_namespaces(&self, filter: &NamespaceFilter) -> Result<Vec<MetadefNamespace>> {
        let mut sql = format!("SELECT {NAMESPACE_COLUMNS} FROM metadef_namespaces n WHERE 1 = 1");
        if filter.visible_to.is_some() {
            sql.push_str(" AND (n.visibility = 'public' OR n.owner = ?)");
        }
        if filter.visibility.is_some() {
            sql.push_str(" AND n.visibility = ?");
        }
        if !filter.resource_types.is_empty() {
            let marks = vec!["?"; filter.resource_types.len()].join(", ");
            sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM metadef_namespace_resource_types a \
                 WHERE a.namespace = n.namespace AND a.resource_type IN ({marks}))"
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
        let mut tx = begin_write(&self.pool).await?;
        let updated = sqlx::query(
            "UPDATE metadef_namespaces SET namespace = ?, display_name = ?, description = ?, visibility = ?, \
             protected = ?, owner = ?, updated_at = ? WHERE namespace = ?",
        )
        .bind(&new.namespace)
        .bind(&new.display_name)
        .bind(&new.description)
        .bind(new.visibility.as_str())
        .bind(new.protected)
        .bind(&new.owner)
        .bind(fmt_time(&new.updated_at))
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
        let mut tx = begin_write(&self.pool).await?;
        let deleted = sqlx::query("DELETE FROM metadef_namespaces WHERE namespace = ?")
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
            "SELECT name, body, created_at, updated_at FROM {} WHERE namespace = ? ORDER BY name",
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
            "SELECT name, body, created_at, updated_at FROM {} WHERE namespace = ? AND name = ?",
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
        let mut tx = begin_write(&self.pool).await?;
        require_namespace(&mut tx, namespace).await?;
        if replace {
            sqlx::query(&format!("DELETE FROM {} WHERE namespace = ?", table(kind)))
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
        let mut tx = begin_write(&self.pool).await?;
        let updated = sqlx::query(&format!(
            "UPDATE {} SET name = ?, body = ?, updated_at = ? WHERE namespace = ? AND name = ?",
            table(kind)
        ))
        .bind(&item.name)
        .bind(item.body.to_string())
        .bind(fmt_time(&item.updated_at))
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
        let mut tx = begin_write(&self.pool).await?;
        let deleted = sqlx::query(&format!("DELETE FROM {} WHERE namespace = ? AND name = ?", table(kind)))
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
        let mut tx = begin_write(&self.pool).await?;
        require_namespace(&mut tx, namespace).await?;
        let deleted = sqlx::query(&format!("DELETE FROM {} WHERE namespace = ?", table(kind)))
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
        let rows = sqlx::query("SELECT name, protected, created_at, updated_at FROM metadef_resource_types ORDER BY name")
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(MetadefResourceType {
                    name: get(row, "name")?,
                    protected: get(row, "protected")?,
                    created_at: parse_time(&get::<String>(row, "created_at")?)?,
                    updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
                })
            })
            .collect()
    }

    async fn associations(&self, namespace: &str) -> Result<Vec<ResourceTypeAssociation>> {
        let rows = sqlx::query(
            "SELECT resource_type, prefix, properties_target, created_at, updated_at \
             FROM metadef_namespace_resource_types WHERE namespace = ? ORDER BY resource_type",
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
        let mut tx = begin_write(&self.pool).await?;
        require_namespace(&mut tx, namespace).await?;
        insert_association(&mut tx, namespace, association).await?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn delete_association(&self, namespace: &str, resource_type: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let deleted =
            sqlx::query("DELETE FROM metadef_namespace_resource_types WHERE namespace = ? AND resource_type = ?")
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
