//! What only the SQLite backend promises: files persist across opens, migrations run once, in-memory
//! catalogs are private.

use ims_catalog::sqlite::SqliteCatalog;
use ims_catalog::{AuditEvent, Catalog, Project};

fn project(id: &str) -> Project {
    Project { id: id.into(), name: id.into(), created_at: chrono::Utc::now() }
}

fn ev() -> AuditEvent {
    AuditEvent::new("req-test", "project.create", "project:p".into())
}

#[tokio::test]
async fn a_file_catalog_keeps_its_data_across_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("ims.db");
    let url = format!("sqlite://{}", path.display());
    {
        let catalog = Catalog::connect(&url).await.unwrap();
        catalog.identity.create_project(&project("p1"), &ev()).await.unwrap();
    }
    assert!(path.exists(), "the file and its directory are created");
    let db = SqliteCatalog::connect(&url).await.unwrap();
    assert_eq!(db.audit_count().await.unwrap(), 1);
    let catalog = db.into_catalog();
    assert_eq!(catalog.identity.get_project("p1").await.unwrap().id, "p1");
    // Two catalogs on one file see each other's writes.
    let other = Catalog::connect(&url).await.unwrap();
    other.identity.create_project(&project("p2"), &ev()).await.unwrap();
    assert_eq!(catalog.identity.list_projects().await.unwrap().len(), 2);
}

#[tokio::test]
async fn in_memory_catalogs_are_private() {
    let a = Catalog::connect("sqlite::memory:").await.unwrap();
    let b = Catalog::connect("sqlite::memory:").await.unwrap();
    a.identity.create_project(&project("p1"), &ev()).await.unwrap();
    assert!(!a.identity.is_empty().await.unwrap());
    assert!(b.identity.is_empty().await.unwrap());
}

#[tokio::test]
async fn recent_audit_events_are_newest_first() {
    let db = SqliteCatalog::connect("sqlite::memory:").await.unwrap();
    let catalog = db.clone().into_catalog();
    for id in ["p1", "p2", "p3"] {
        let e = AuditEvent::new("req-test", "project.create", format!("project:{id}"));
        catalog.identity.create_project(&project(id), &e).await.unwrap();
    }
    let recent = db.recent_audit_events(2).await.unwrap();
    let resources: Vec<&str> = recent.iter().map(|e| e.resource.as_str()).collect();
    assert_eq!(resources, ["project:p3", "project:p2"]);
}
