//! [`MarketRepository`] over PostgreSQL.
//!
//! Races: a new listing locks its image row `FOR SHARE` (the image stays active until commit); a new
//! subscription locks its listing row `FOR SHARE`, and shelf changes and deletion lock it `FOR UPDATE`,
//! so a subscription never slips past an off-shelf change or a delisting that counted no subscribers.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{begin, commit, conflict_or_db, db_err, get, get_time, insert_audit, split_time};
use crate::market::{ListingFilter, MarketListing, MarketRepository, MarketSubscription};
use crate::{AuditEvent, CatalogError, Result};

const LISTING_COLUMNS: &str = "l.id, l.image_id, l.publisher, l.product_code, l.version, l.description, \
    l.offshelved, l.created_at, l.created_at_ns, l.updated_at, l.updated_at_ns";

/// The marketplace repository of a [`super::PostgresCatalog`].
#[derive(Clone)]
pub struct PostgresMarket {
    pool: PgPool,
}

impl PostgresMarket {
    pub(super) fn new(pool: PgPool) -> PostgresMarket {
        PostgresMarket { pool }
    }
}

fn listing_from_row(row: &PgRow) -> Result<MarketListing> {
    Ok(MarketListing {
        id: get(row, "id")?,
        image_id: get(row, "image_id")?,
        publisher: get(row, "publisher")?,
        product_code: get(row, "product_code")?,
        version: get(row, "version")?,
        description: get(row, "description")?,
        offshelved: get(row, "offshelved")?,
        created_at: get_time(row, "created_at")?,
        updated_at: get_time(row, "updated_at")?,
    })
}

/// The listing `id` whose image is not deleted, read inside `conn` with the row lock `lock`
/// (`FOR SHARE`, `FOR UPDATE` or nothing).
async fn live_listing(conn: &mut PgConnection, id: Uuid, lock: &str) -> Result<MarketListing> {
    let lock = if lock.is_empty() { String::new() } else { format!(" {lock} OF l") };
    let row = sqlx::query(&format!(
        "SELECT {LISTING_COLUMNS} FROM market_listings l JOIN images i ON i.id = l.image_id \
         WHERE l.id = $1 AND i.deleted_at IS NULL{lock}"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(db_err)?
    .ok_or_else(|| CatalogError::NotFound(format!("market listing {id}")))?;
    listing_from_row(&row)
}

#[async_trait]
impl MarketRepository for PostgresMarket {
    async fn create_listing(&self, listing: &MarketListing, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM images WHERE id = $1 AND deleted_at IS NULL FOR SHARE")
                .bind(listing.image_id)
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
        let publisher: Option<i32> = sqlx::query_scalar("SELECT 1 FROM projects WHERE id = $1 FOR SHARE")
            .bind(&listing.publisher)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if publisher.is_none() {
            return Err(CatalogError::NotFound(format!("project {}", listing.publisher)));
        }
        let listed: Option<String> = sqlx::query_scalar("SELECT product_code FROM market_listings WHERE image_id = $1")
            .bind(listing.image_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if let Some(code) = listed {
            return Err(CatalogError::Conflict(format!(
                "image {} is already listed as product {code}",
                listing.image_id
            )));
        }
        let (created, created_ns) = split_time(&listing.created_at);
        let (updated, updated_ns) = split_time(&listing.updated_at);
        sqlx::query(
            "INSERT INTO market_listings (id, image_id, publisher, product_code, version, description, \
             offshelved, created_at, created_at_ns, updated_at, updated_at_ns) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(listing.id)
        .bind(listing.image_id)
        .bind(&listing.publisher)
        .bind(&listing.product_code)
        .bind(&listing.version)
        .bind(&listing.description)
        .bind(listing.offshelved)
        .bind(created)
        .bind(created_ns)
        .bind(updated)
        .bind(updated_ns)
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
        live_listing(&mut conn, id, "").await
    }

    async fn listings_of_images(&self, image_ids: &[Uuid]) -> Result<Vec<MarketListing>> {
        if image_ids.is_empty() {
            return Ok(vec![]);
        }
        let rows = sqlx::query(&format!(
            "SELECT {LISTING_COLUMNS} FROM market_listings l JOIN images i ON i.id = l.image_id \
             WHERE i.deleted_at IS NULL AND l.image_id = ANY($1)"
        ))
        .bind(image_ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter().map(listing_from_row).collect()
    }

    async fn list_listings(&self, filter: &ListingFilter) -> Result<Vec<MarketListing>> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {LISTING_COLUMNS} FROM market_listings l JOIN images i ON i.id = l.image_id \
             WHERE i.deleted_at IS NULL"
        ));
        if filter.on_shelf_only {
            qb.push(" AND NOT l.offshelved");
        }
        if let Some(publisher) = &filter.publisher {
            qb.push(" AND l.publisher = ").push_bind(publisher.clone());
        }
        if let Some(subscriber) = &filter.subscriber {
            qb.push(" AND EXISTS (SELECT 1 FROM market_subscriptions s WHERE s.listing_id = l.id AND s.project_id = ")
                .push_bind(subscriber.clone())
                .push(")");
        }
        qb.push(" ORDER BY l.created_at DESC, l.created_at_ns DESC, l.id");
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
        let mut tx = begin(&self.pool).await?;
        let mut listing = live_listing(&mut tx, id, "FOR UPDATE").await?;
        if listing.offshelved == offshelved {
            return Ok(listing);
        }
        let (updated, updated_ns) = split_time(&at);
        sqlx::query("UPDATE market_listings SET offshelved = $1, updated_at = $2, updated_at_ns = $3 WHERE id = $4")
            .bind(offshelved)
            .bind(updated)
            .bind(updated_ns)
            .bind(id)
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
        let mut tx = begin(&self.pool).await?;
        let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM market_listings WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if exists.is_none() {
            return Err(CatalogError::NotFound(format!("market listing {id}")));
        }
        let subscribers: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM market_subscriptions WHERE listing_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if subscribers > 0 && !force {
            return Err(CatalogError::Conflict(format!("market listing {id} has {subscribers} subscriber project(s)")));
        }
        sqlx::query("DELETE FROM market_subscriptions WHERE listing_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        sqlx::query("DELETE FROM market_listings WHERE id = $1").bind(id).execute(&mut *tx).await.map_err(db_err)?;
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
        let mut tx = begin(&self.pool).await?;
        let listing = live_listing(&mut tx, listing_id, "FOR SHARE").await?;
        let project: Option<i32> = sqlx::query_scalar("SELECT 1 FROM projects WHERE id = $1 FOR SHARE")
            .bind(project_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
        if project.is_none() {
            return Err(CatalogError::NotFound(format!("project {project_id}")));
        }
        let subscribed: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM market_subscriptions WHERE listing_id = $1 AND project_id = $2")
                .bind(listing_id)
                .bind(project_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if subscribed.is_some() {
            return Ok(false);
        }
        if listing.offshelved {
            return Err(CatalogError::Conflict(format!("market listing {listing_id} is off shelf")));
        }
        let (at, at_ns) = split_time(&since);
        // Two first subscriptions of one project can race past the check above; the loser of the primary
        // key sees the winner's row, which is the idempotent outcome.
        let inserted = sqlx::query(
            "INSERT INTO market_subscriptions (listing_id, project_id, since, since_ns) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (listing_id, project_id) DO NOTHING",
        )
        .bind(listing_id)
        .bind(project_id)
        .bind(at)
        .bind(at_ns)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        insert_audit(&mut tx, event).await?;
        commit(tx).await?;
        Ok(true)
    }

    async fn unsubscribe(&self, listing_id: Uuid, project_id: &str, event: &AuditEvent) -> Result<()> {
        let mut tx = begin(&self.pool).await?;
        let removed = sqlx::query("DELETE FROM market_subscriptions WHERE listing_id = $1 AND project_id = $2")
            .bind(listing_id)
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
            "SELECT listing_id, project_id, since, since_ns FROM market_subscriptions WHERE listing_id = $1 \
             ORDER BY since, since_ns, project_id",
        )
        .bind(listing_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.iter()
            .map(|row| {
                Ok(MarketSubscription {
                    listing_id: get(row, "listing_id")?,
                    project_id: get(row, "project_id")?,
                    since: get_time(row, "since")?,
                })
            })
            .collect()
    }

    async fn is_subscribed(&self, image_id: Uuid, project_id: &str) -> Result<bool> {
        sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM market_subscriptions s JOIN market_listings l ON l.id = s.listing_id \
             WHERE l.image_id = $1 AND s.project_id = $2)",
        )
        .bind(image_id)
        .bind(project_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }
}
