//! Moving a SQLite catalog into PostgreSQL (`ims_catalog::transfer`): the table list covers both
//! dialects' schemas exactly, rows arrive with their values (times to the nanosecond), a rerun inserts
//! nothing more, identity columns move on, and a target of another deployment is refused.
//! Needs PostgreSQL (`IMS_TEST_POSTGRES_URL`, or a private server the testkit starts).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use ims_catalog::postgres::PostgresCatalog;
use ims_catalog::sqlite::SqliteCatalog;
use ims_catalog::transfer::{self, target_columns, TABLES, NOT_COPIED};
use ims_catalog::{AuditEvent, CatalogError, Image, Job, Project};
use ims_testkit::postgres::PostgresCluster;
use sqlx::Connection;
use uuid::Uuid;

fn event(action: &str) -> AuditEvent {
    AuditEvent::new("req-test", action, "test".into())
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

async fn sqlite(dir: &tempfile::TempDir, name: &str) -> (String, SqliteCatalog) {
    let url = format!("sqlite://{}", dir.path().join(name).display());
    let db = SqliteCatalog::connect(&url).await.unwrap();
    (url, db)
}

async fn postgres() -> (PostgresCluster, String, PostgresCatalog) {
    let server = PostgresCluster::shared_or_start().await.expect("a PostgreSQL server");
    let url = server.fresh_database().await.expect("a fresh database");
    let db = PostgresCatalog::connect(&url).await.unwrap();
    (server, url, db)
}

#[tokio::test]
async fn the_table_list_covers_both_schemas_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _db) = sqlite(&dir, "ims.db").await;
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let listed: BTreeSet<&str> = TABLES.iter().map(|t| t.name).chain(NOT_COPIED.iter().map(|(n, _)| *n)).collect();
    let found: BTreeSet<&str> = tables.iter().map(String::as_str).collect();
    assert_eq!(listed, found, "every SQLite table is copied or listed as not copied");
    for table in TABLES {
        let columns: Vec<String> = sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{}')", table.name))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let want: BTreeSet<&str> = table.columns.iter().map(|c| c.name).collect();
        let have: BTreeSet<&str> = columns.iter().map(String::as_str).collect();
        assert_eq!(want, have, "SQLite columns of {}", table.name);
    }

    let (_server, pg_url, _pg) = postgres().await;
    let mut pg = sqlx::PgConnection::connect(&pg_url).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns WHERE table_schema = 'public'",
    )
    .fetch_all(&mut pg)
    .await
    .unwrap();
    let mut by_table: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (table, column) in rows {
        by_table.entry(table).or_default().insert(column);
    }
    let pg_tables: BTreeSet<&str> = by_table.keys().map(String::as_str).collect();
    assert_eq!(listed, pg_tables, "every PostgreSQL table is copied or listed as not copied");
    for table in TABLES {
        let want: BTreeSet<String> = target_columns(table).into_iter().collect();
        assert_eq!(want, by_table[table.name], "PostgreSQL columns of {}", table.name);
    }
}

#[tokio::test]
async fn rows_arrive_exactly_and_a_rerun_inserts_nothing_more() {
    let dir = tempfile::tempdir().unwrap();
    let (_, source) = sqlite(&dir, "ims.db").await;
    let catalog = source.clone().into_catalog();
    let created = at("2024-01-02T03:04:05.123456789Z");
    let project = Project { id: "p1".into(), name: "team".into(), created_at: created };
    catalog.identity.create_project(&project, &event("project.create")).await.unwrap();
    let mut image = Image::new(Uuid::new_v4(), "p1", created);
    image.name = Some("base".into());
    image.protected = true;
    image.tags = ["a".to_string(), "b".to_string()].into();
    image.properties.insert("__os_version".into(), "Ubuntu 24.04".into());
    catalog.images.create(&image, &event("image.create")).await.unwrap();
    let parent = Job::new("job-1".into(), "import", "p1", serde_json::json!({"n": 1}), created);
    catalog.jobs.create(&parent, &event("job.create")).await.unwrap();
    let mut child = Job::new("job-2".into(), "import", "p1", serde_json::json!({}), created);
    child.parent_id = Some("job-1".into());
    catalog.jobs.create(&child, &event("job.create")).await.unwrap();

    let (_server, pg_url, target) = postgres().await;
    transfer::check_target(&source, &target).await.unwrap();
    let report = transfer::copy_catalog(&source, &target, &mut |_| {}).await.unwrap();
    let count = |name: &str| report.iter().find(|t| t.table == name).unwrap().clone();
    assert_eq!((count("images").rows_read, count("images").rows_inserted), (1, 1));
    assert_eq!(count("image_tags").rows_inserted, 2);
    assert_eq!(count("jobs").rows_inserted, 2, "the sub-job after its parent");
    let audit_rows = count("audit_events").rows_inserted;
    assert!(audit_rows >= 4, "{report:?}");

    let copied = PostgresCatalog::connect(&pg_url).await.unwrap().into_catalog();
    let back = copied.images.get(image.id).await.unwrap();
    assert_eq!(back.created_at, created, "nanoseconds survive");
    assert_eq!((back.name, back.protected, back.tags, back.properties), (image.name, true, image.tags, image.properties));
    assert_eq!(copied.jobs.get("job-2").await.unwrap().parent_id.as_deref(), Some("job-1"));
    assert!(copied.audit.verify().await.unwrap().is_intact(), "the copied hash chain verifies");
    // New audit events continue the chain after the copied ones.
    copied.identity.create_project(&Project { id: "p2".into(), name: "other".into(), created_at: Utc::now() }, &event("project.create")).await.unwrap();
    assert!(copied.audit.verify().await.unwrap().is_intact());

    // A rerun (an interrupted run resumed) finds everything there.
    transfer::check_target(&source, &target).await.unwrap();
    let again = transfer::copy_catalog(&source, &target, &mut |_| {}).await.unwrap();
    assert_eq!(again.iter().map(|t| t.rows_inserted).sum::<u64>(), 0, "{again:?}");

    // Another deployment's catalog (its own project named "team") is refused before anything is written.
    let (_, other) = sqlite(&dir, "other.db").await;
    let stranger = Project { id: "p9".into(), name: "team".into(), created_at: created };
    other.clone().into_catalog().identity.create_project(&stranger, &event("project.create")).await.unwrap();
    let err = transfer::check_target(&other, &target).await.unwrap_err();
    assert!(matches!(&err, CatalogError::Conflict(m) if m.contains("projects") && m.contains("team")), "{err}");
}
