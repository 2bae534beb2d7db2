//! [`MarketRepository`] over SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use uuid::Uuid;

use super::{begin_write, commit, conflict_or_db, db_err, fmt_time, get, insert_audit, parse_time, parse_uuid};
use crate::market::{ListingFilter, MarketListing, MarketRepository, MarketSubscription};
use crate::{AuditEvent, CatalogError, Result};

const LISTING_COLUMNS: &str = "l.id, l.image_id, l.publisher, l.product_code, l.version, l.description, \
    l.offshelved, l.created_at, l.updated_at";

/// The marketplace repository of a [`super::SqliteCatalog`].
#[derive(Clone)]
pub struct SqliteMarket {
    pool: SqlitePool,
}

impl SqliteMarket {
    pub(super) fn new(pool: SqlitePool) -> SqliteMarket {
        SqliteMarket { pool }
    }
}

fn listing_from_row(row: &SqliteRow) -> Result<MarketListing> {
    Ok(MarketListing {
        id: parse_uuid(&get::<String>(row, "id")?)?,
        image_id: parse_uuid(&get::<String>(row, "image_id")?)?,
        publisher: get(row, "publisher")?,
        product_code: get(row, "product_code")?,
        version: get(row, "version")?,
        description: get(row, "description")?,
        offshelved: get::<i64>(row, "offshelved")? != 0,
        created_at: parse_time(&get::<String>(row, "created_at")?)?,
        updated_at: parse_time(&get::<String>(row, "updated_at")?)?,
    })
}

/// The listing `id` whose image is not deleted, read inside `conn`.
async fn live_listing(conn: &mut SqliteConnection, id: Uuid) -> Result<MarketListing> {
    let row = sqlx::query(&format!(
        "SELECT {LISTING_COLUMNS} FROM market_listings l JOIN images i ON i.id = l.image_id \
         WHERE l.id = ? AND i.deleted_at IS NULL"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?
    .ok_or_else(|| CatalogError::NotFound(format!("market listing {id}")))?;
    listing_from_row(&row)
}

#[async_trait]
impl MarketRepository for SqliteMarket {
    async fn create_listing(&self, listing: &MarketListing, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM images WHERE id = ? AND deleted_at IS NULL")
                .bind(listing.image_id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        match status.as_deref() {
            None => return Err(CatalogError::NotFound(format!("image {}", listing.image_id))),
            Some("active") => {}
            Some(other) => {
                return Err(CatalogError::Invalid(format!(
                    "image {} is {other}; only active images can be listed",
                    listing.image_id
                )))
            }
        }
        let publisher: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?)")
            .bind(&listing.publisher)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !publisher {
            return Err(CatalogError::NotFound(format!("project {}", listing.publisher)));
        }
        let listed: Option<String> = sqlx::query_scalar("SELECT product_code FROM market_listings WHERE image_id = ?")
            .bind(listing.image_id.to_string())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if let Some(code) = listed {
            return Err(CatalogError::Conflict(format!(
                "image {} is already listed as product {code}",
                listing.image_id
            )));
        }
        sqlx::query(
            "INSERT INTO market_listings (id, image_id, publisher, product_code, version, description, \
             offshelved, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(listing.id.to_string())
        .bind(listing.image_id.to_string())
        .bind(&listing.publisher)
        .bind(&listing.product_code)
        .bind(&listing.version)
        .bind(&listing.description)
        .bind(i64::from(listing.offshelved))
        .bind(fmt_time(&listing.created_at))
        .bind(fmt_time(&listing.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(conflict_or_db(|| {
            format!("a listing with id {} or product code {:?} exists", listing.id, listing.product_code)
        }))?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn get_listing(&self, id: Uuid) -> Result<MarketListing> {
        let mut conn = self.pool.acquire().await.map_err(db_err)?;
        live_listing(&mut conn, id).await
    }

    async fn listings_of_images(&self, image_ids: &[Uuid]) -> Result<Vec<MarketListing>> {
        if image_ids.is_empty() {
            return Ok(vec![]);
        }
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {LISTING_COLUMNS} FROM market_listings l JOIN images i ON i.id = l.image_id \
             WHERE i.deleted_at IS NULL AND l.image_id IN ("
        ));
        let mut ids = qb.separated(", ");
        for id in image_ids {
            ids.push_bind(id.to_string());
        }
        ids.push_unseparated(")");
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(listing_from_row).collect()
    }

    async fn list_listings(&self, filter: &ListingFilter) -> Result<Vec<MarketListing>> {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {LISTING_COLUMNS} FROM market_listings l JOIN images i ON i.id = l.image_id \
             WHERE i.deleted_at IS NULL"
        ));
        if filter.on_shelf_only {
            qb.push(" AND l.offshelved = 0");
        }
        if let Some(publisher) = &filter.publisher {
            qb.push(" AND l.publisher = ").push_bind(publisher.clone());
        }
        if let Some(subscriber) = &filter.subscriber {
            qb.push(" AND EXISTS (SELECT 1 FROM market_subscriptions s WHERE s.listing_id = l.id AND s.project_id = ")
                .push_bind(subscriber.clone())
                .push(")");
        }
        qb.push(" ORDER BY l.created_at DESC, l.id");
        let rows = qb.build().fetch_all(&self.pool).await.map_err(db_err)?;
        rows.iter().map(listing_from_row).collect()
    }

    async fn set_offshelved(
        &self,
        id: Uuid,
        offshelved: bool,
        at: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<MarketListing> {
        let mut tx = begin_write(&self.pool).await?;
        let mut listing = live_listing(&mut tx, id).await?;
        if listing.offshelved == offshelved {
            return Ok(listing);
        }
        sqlx::query("UPDATE market_listings SET offshelved = ?, updated_at = ? WHERE id = ?")
            .bind(i64::from(offshelved))
            .bind(fmt_time(&at))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        listing.offshelved = offshelved;
        listing.updated_at = at;
        Ok(listing)
    }

    async fn delete_listing(&self, id: Uuid, force: bool, event: &AuditEvent) -> Result<u64> {
        let mut tx = begin_write(&self.pool).await?;
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM market_listings WHERE id = ?)")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !exists {
            return Err(CatalogError::NotFound(format!("market listing {id}")));
        }
        let subscribers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM market_subscriptions WHERE listing_id = ?")
            .bind(id.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if subscribers > 0 && !force {
            return Err(CatalogError::Conflict(format!("market listing {id} has {subscribers} subscriber project(s)")));
        }
        sqlx::query("DELETE FROM market_subscriptions WHERE listing_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM market_listings WHERE id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(u64::try_from(subscribers).unwrap_or(0))
    }

    async fn subscribe(
        &self,
        listing_id: Uuid,
        project_id: &str,
        since: DateTime<Utc>,
        event: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = begin_write(&self.pool).await?;
        let listing = live_listing(&mut tx, listing_id).await?;
        let project: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM projects WHERE id = ?)")
            .bind(project_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if !project {
            return Err(CatalogError::NotFound(format!("project {project_id}")));
        }
        let subscribed: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM market_subscriptions WHERE listing_id = ? AND project_id = ?)",
        )
        .bind(listing_id.to_string())
        .bind(project_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if subscribed {
            return Ok(false);
        }
        if listing.offshelved {
            return Err(CatalogError::Conflict(format!("market listing {listing_id} is off shelf")));
        }
        sqlx::query("INSERT INTO market_subscriptions (listing_id, project_id, since) VALUES (?, ?, ?)")
            .bind(listing_id.to_string())
            .bind(project_id)
            .bind(fmt_time(&since))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn unsubscribe(&self, listing_id: Uuid, project_id: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin_write(&self.pool).await?;
        let removed = sqlx::query("DELETE FROM market_subscriptions WHERE listing_id = ? AND project_id = ?")
            .bind(listing_id.to_string())
            .bind(project_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?
            .rows_affected();
        if removed == 0 {
            return Err(CatalogError::NotFound(format!(
                "subscription of project {project_id} to market listing {listing_id}"
            )));
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await
    }

    async fn subscriptions(&self, listing_id: Uuid) -> Result<Vec<MarketSubscription>> {
        let rows = sqlx::query(
            "SELECT listing_id, project_id, since FROM market_subscriptions WHERE listing_id = ? \
             ORDER BY since, project_id",
        )
        .bind(listing_id.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(MarketSubscription {
                    listing_id: parse_uuid(&get::<String>(row, "listing_id")?)?,
                    project_id: get(row, "project_id")?,
                    since: parse_time(&get::<String>(row, "since")?)?,
                })
            })
            .collect()
    }

    async fn is_subscribed(&self, image_id: Uuid, project_id: &str) -> Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM market_subscriptions s JOIN market_listings l ON l.id = s.listing_id \
             WHERE l.image_id = ? AND s.project_id = ?)",
        )
        .bind(image_id.to_string())
        .bind(project_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }
}
