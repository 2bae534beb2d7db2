//! Tampering with stored audit rows is detected, on each dialect; many PostgreSQL nodes appending at once
//! build one linear chain; rows from before the chain existed are chained when the catalog opens.

use std::str::FromStr;

use ims_catalog::postgres::PostgresCatalog;
use ims_catalog::sqlite::SqliteCatalog;
use ims_catalog::{AuditEvent, AuditQuery, Catalog};
use ims_testkit::postgres::PostgresCluster;
use sqlx::Executor;

fn event(i: usize) -> AuditEvent {
    let mut e = AuditEvent::new(&format!("req-{i}"), "image.update", format!("image:{i}"));
    e.project_id = Some("p1".into());
    e
}

async fn write_events(catalog: &Catalog, n: usize) {
    for i in 0..n {
        catalog.audit.record(&event(i)).await.expect("record");
    }
}

/// (statement, position where the chain must break)
const TAMPERING: [(&str, u64); 4] = [
    ("UPDATE audit_events SET result = 'failure' WHERE chain_position = 3", 3),
    ("UPDATE audit_events SET project_id = 'p2' WHERE chain_position = 5", 5),
    ("DELETE FROM audit_events WHERE chain_position = 2", 2),
    ("UPDATE audit_events SET chain_position = chain_position + 10 WHERE chain_position = 4", 4),
];

async fn sqlite_trail() -> (tempfile::TempDir, String, Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("ims.db").display());
    let catalog = SqliteCatalog::connect(&url).await.unwrap().into_catalog();
    write_events(&catalog, 5).await;
    assert!(catalog.audit.verify().await.unwrap().is_intact());
    (dir, url, catalog)
}

#[tokio::test]
async fn sqlite_tampering_is_detected() {
    for (statement, position) in TAMPERING {
        let (_dir, url, catalog) = sqlite_trail().await;
        let raw = sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::from_str(&url).unwrap())
            .await
            .unwrap();
        raw.execute(statement).await.unwrap();
        let v = catalog.audit.verify().await.unwrap();
        let broken = v.broken.unwrap_or_else(|| panic!("{statement} went unnoticed"));
        assert_eq!(broken.position, position, "{statement}: {}", broken.reason);
        assert_eq!(v.events, position - 1);
    }
}

#[tokio::test]
async fn sqlite_rows_from_before_the_chain_are_chained_on_open() {
    let (_dir, url, catalog) = sqlite_trail().await;
    drop(catalog);
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    // Two rows as an older version wrote them: no chain columns.
    for i in 0..2 {
        sqlx::query(
            "INSERT INTO audit_events (at, request_id, action, resource, result) \
             VALUES ('2024-01-01T00:00:00.000000000Z', ?, 'image.create', 'image:old', 'success')",
        )
        .bind(format!("req-old-{i}"))
        .execute(&raw)
        .await
        .unwrap();
    }
    let catalog = SqliteCatalog::connect(&url).await.unwrap().into_catalog();
    let v = catalog.audit.verify().await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.events, 7);
    let newest = catalog.audit.list(&AuditQuery { newest_first: true, ..AuditQuery::all(1) }).await.unwrap();
    assert_eq!(newest[0].event.request_id, "req-old-1");
}

#[tokio::test]
async fn postgres_tampering_is_detected() {
    let server = PostgresCluster::shared_or_start().await.expect("a PostgreSQL server");
    for (statement, position) in TAMPERING {
        let url = server.fresh_database().await.unwrap();
        let catalog = PostgresCatalog::connect(&url).await.unwrap().into_catalog();
        write_events(&catalog, 5).await;
        assert!(catalog.audit.verify().await.unwrap().is_intact());
        let raw = sqlx::PgPool::connect(&url).await.unwrap();
        raw.execute(statement).await.unwrap();
        let v = catalog.audit.verify().await.unwrap();
        let broken = v.broken.unwrap_or_else(|| panic!("{statement} went unnoticed"));
        assert_eq!(broken.position, position, "{statement}: {}", broken.reason);
    }
}

#[tokio::test]
async fn postgres_nodes_appending_together_build_one_chain() {
    const NODES: usize = 6;
    const EACH: usize = 15;
    let server = PostgresCluster::shared_or_start().await.expect("a PostgreSQL server");
    let url = server.fresh_database().await.unwrap();
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        nodes.push(Catalog::connect(&url).await.unwrap());
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (n, node) in nodes.into_iter().enumerate() {
        tasks.spawn(async move {
            for i in 0..EACH {
                let id = uuid::Uuid::new_v4();
                let mut image = ims_catalog::Image::new(id, "p1", chrono::Utc::now());
                image.name = Some(format!("n{n}-{i}"));
                if i % 2 == 0 {
                    node.images.create(&image, &event(i)).await.unwrap();
                } else {
                    node.audit.record(&event(i)).await.unwrap();
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let catalog = Catalog::connect(&url).await.unwrap();
    let v = catalog.audit.verify().await.unwrap();
    assert!(v.is_intact(), "{v:?}");
    assert_eq!(v.events, (NODES * EACH) as u64);
}
