//! The metadata definitions catalog: namespaces with their contents, visibility filters, renames that carry
//! the contents along, duplicates, replacing tags, associations, and atomic creation.

use ims_catalog::metadef::{
    MetadefItem, MetadefItemKind, MetadefNamespace, NamespaceContents, NamespaceFilter, NamespaceVisibility,
    ResourceTypeAssociation,
};
use serde_json::json;

use crate::support::*;
use crate::Backend;

fn ev() -> ims_catalog::AuditEvent {
    event("metadef.update", "metadefs")
}

fn namespace(name: &str, owner: &str, visibility: NamespaceVisibility) -> MetadefNamespace {
    MetadefNamespace {
        namespace: name.into(),
        display_name: Some(format!("{name} display")),
        description: None,
        visibility,
        protected: false,
        owner: owner.into(),
        created_at: t(1),
        updated_at: t(1),
    }
}

fn item(name: &str, body: serde_json::Value) -> MetadefItem {
    MetadefItem { name: name.into(), body, created_at: t(2), updated_at: t(2) }
}

fn association(name: &str, prefix: Option<&str>) -> ResourceTypeAssociation {
    ResourceTypeAssociation {
        name: name.into(),
        prefix: prefix.map(Into::into),
        properties_target: None,
        created_at: t(3),
        updated_at: t(3),
    }
}

fn empty(ns: MetadefNamespace) -> NamespaceContents {
    NamespaceContents { namespace: ns, objects: vec![], properties: vec![], tags: vec![], associations: vec![] }
}

pub async fn check_metadef_namespace_lifecycle(b: &Backend) {
    let m = &b.catalog.metadefs;
    let ns = namespace("OS::Test::Cpu", "p1", NamespaceVisibility::Public);
    let contents = NamespaceContents {
        namespace: ns.clone(),
        objects: vec![item("Pinning", json!({"description": "d", "required": ["policy"], "properties": {"policy": {"type": "string"}}}))],
        properties: vec![item("cpu_policy", json!({"type": "string", "enum": ["shared", "dedicated"]}))],
        tags: vec![item("fast", json!({})), item("big", json!({}))],
        associations: vec![association("Test::Flavor", Some("hw:")), association("Test::Image", Some("hw_"))],
    };
    let standard = m.resource_types().await.unwrap();
    let before = b.audit.count().await;
    m.create_namespace(&contents, &ev()).await.unwrap();
    assert_eq!(b.audit.count().await, before + 1, "creation is one audited write");
    assert_eq!(m.namespace("OS::Test::Cpu").await.unwrap(), Some(ns.clone()));
    assert_eq!(m.namespace("OS::Test::Missing").await.unwrap(), None);
    assert_eq!(m.items(&ns.namespace, MetadefItemKind::Object).await.unwrap(), contents.objects);
    assert_eq!(m.items(&ns.namespace, MetadefItemKind::Property).await.unwrap(), contents.properties);
    let tags: Vec<String> =
        m.items(&ns.namespace, MetadefItemKind::Tag).await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(tags, ["big", "fast"], "ordered by name");
    assert_eq!(m.associations(&ns.namespace).await.unwrap(), contents.associations);
    let types = m.resource_types().await.unwrap();
    assert_eq!(types.len(), standard.len() + 2, "associations create their resource types");
    for name in ["Test::Flavor", "Test::Image"] {
        assert!(types.iter().any(|r| r.name == name && !r.protected), "{name}");
    }

    expect_conflict(m.create_namespace(&empty(ns.clone()), &ev()).await);

    let mut renamed = ns.clone();
    renamed.namespace = "OS::Test::Renamed".into();
    renamed.protected = true;
    renamed.updated_at = t(9);
    m.update_namespace(&ns.namespace, &renamed, &ev()).await.unwrap();
    assert_eq!(m.namespace("OS::Test::Renamed").await.unwrap(), Some(renamed.clone()));
    assert_eq!(m.namespace(&ns.namespace).await.unwrap(), None);
    assert_eq!(m.items("OS::Test::Renamed", MetadefItemKind::Property).await.unwrap(), contents.properties);
    assert_eq!(m.associations("OS::Test::Renamed").await.unwrap().len(), 2, "contents follow a rename");
    expect_not_found(m.update_namespace("OS::Test::Missing", &renamed, &ev()).await);
    m.create_namespace(&empty(namespace("OS::Other", "p1", NamespaceVisibility::Private)), &ev()).await.unwrap();
    let mut onto = renamed.clone();
    onto.namespace = "OS::Other".into();
    expect_conflict(m.update_namespace("OS::Test::Renamed", &onto, &ev()).await);

    m.delete_namespace("OS::Test::Renamed", &ev()).await.unwrap();
    expect_not_found(m.delete_namespace("OS::Test::Renamed", &ev()).await);
    assert!(m.items("OS::Test::Renamed", MetadefItemKind::Object).await.unwrap().is_empty());
    assert!(m.associations("OS::Test::Renamed").await.unwrap().is_empty());
    assert_eq!(m.resource_types().await.unwrap().len(), standard.len() + 2, "resource types outlive their namespaces");
}

pub async fn check_metadef_creation_is_atomic(b: &Backend) {
    let m = &b.catalog.metadefs;
    let mut contents = empty(namespace("OS::Dup", "p1", NamespaceVisibility::Public));
    contents.tags = vec![item("same", json!({})), item("same", json!({}))];
    contents.associations = vec![association("Test::New", None)];
    let standard = m.resource_types().await.unwrap();
    let before = b.audit.count().await;
    expect_conflict(m.create_namespace(&contents, &ev()).await);
    assert_eq!(m.namespace("OS::Dup").await.unwrap(), None, "nothing is stored");
    assert_eq!(b.audit.count().await, before, "and nothing is audited");
    assert_eq!(m.resource_types().await.unwrap(), standard, "no resource type is created either");
}

pub async fn check_metadef_listing_filters(b: &Backend) {
    let m = &b.catalog.metadefs;
    let mut a = empty(namespace("A::Public", "p1", NamespaceVisibility::Public));
    a.associations = vec![association("OS::Glance::Image", None)];
    let mut bb = empty(namespace("B::Private1", "p1", NamespaceVisibility::Private));
    bb.associations = vec![association("OS::Cinder::Volume", None)];
    let c = empty(namespace("C::Private2", "p2", NamespaceVisibility::Private));
    for contents in [&c, &a, &bb] {
        m.create_namespace(contents, &ev()).await.unwrap();
    }
    let names = |list: Vec<MetadefNamespace>| list.into_iter().map(|n| n.namespace).collect::<Vec<_>>();
    let all = NamespaceFilter::default();
    assert_eq!(names(m.list_namespaces(&all).await.unwrap()), ["A::Public", "B::Private1", "C::Private2"]);
    let p1 = NamespaceFilter { visible_to: Some("p1".into()), ..Default::default() };
    assert_eq!(names(m.list_namespaces(&p1).await.unwrap()), ["A::Public", "B::Private1"]);
    let p3 = NamespaceFilter { visible_to: Some("p3".into()), ..Default::default() };
    assert_eq!(names(m.list_namespaces(&p3).await.unwrap()), ["A::Public"]);
    let private = NamespaceFilter { visibility: Some(NamespaceVisibility::Private), ..Default::default() };
    assert_eq!(names(m.list_namespaces(&private).await.unwrap()), ["B::Private1", "C::Private2"]);
    let by_type = NamespaceFilter {
        resource_types: vec!["OS::Cinder::Volume".into(), "OS::Glance::Image".into()],
        ..Default::default()
    };
    assert_eq!(names(m.list_namespaces(&by_type).await.unwrap()), ["A::Public", "B::Private1"]);
    let by_type_p2 = NamespaceFilter { visible_to: Some("p2".into()), ..by_type };
    assert_eq!(names(m.list_namespaces(&by_type_p2).await.unwrap()), ["A::Public"]);
}

pub async fn check_metadef_items(b: &Backend) {
    let m = &b.catalog.metadefs;
    m.create_namespace(&empty(namespace("NS", "p1", NamespaceVisibility::Public)), &ev()).await.unwrap();
    let kind = MetadefItemKind::Property;
    let size = item("size", json!({"type": "integer", "minimum": 1}));
    m.create_items("NS", kind, std::slice::from_ref(&size), false, &ev()).await.unwrap();
    expect_conflict(m.create_items("NS", kind, std::slice::from_ref(&size), false, &ev()).await);
    expect_not_found(m.create_items("Missing", kind, std::slice::from_ref(&size), false, &ev()).await);
    m.create_items("NS", MetadefItemKind::Object, std::slice::from_ref(&size), false, &ev())
        .await
        .expect("each kind has its own names");
    assert_eq!(m.item("NS", kind, "size").await.unwrap(), Some(size.clone()));
    assert_eq!(m.item("NS", kind, "other").await.unwrap(), None);

    let mut bigger = item("disk_size", json!({"type": "integer", "minimum": 10}));
    bigger.updated_at = t(7);
    m.update_item("NS", kind, "size", &bigger, &ev()).await.unwrap();
    let stored = m.item("NS", kind, "disk_size").await.unwrap().unwrap();
    assert_eq!((stored.body, stored.created_at, stored.updated_at), (bigger.body.clone(), t(2), t(7)));
    assert_eq!(m.item("NS", kind, "size").await.unwrap(), None);
    expect_not_found(m.update_item("NS", kind, "size", &bigger, &ev()).await);
    m.create_items("NS", kind, &[item("ram", json!({"type": "integer"}))], false, &ev()).await.unwrap();
    expect_conflict(m.update_item("NS", kind, "ram", &bigger, &ev()).await);

    m.delete_item("NS", kind, "ram", &ev()).await.unwrap();
    expect_not_found(m.delete_item("NS", kind, "ram", &ev()).await);
    assert_eq!(m.delete_items("NS", kind, &ev()).await.unwrap(), 1);
    assert!(m.items("NS", kind).await.unwrap().is_empty());
    assert_eq!(m.items("NS", MetadefItemKind::Object).await.unwrap().len(), 1, "other kinds stay");
    expect_not_found(m.delete_items("Missing", kind, &ev()).await);
}

pub async fn check_metadef_tags_replace_or_append(b: &Backend) {
    let m = &b.catalog.metadefs;
    m.create_namespace(&empty(namespace("NS", "p1", NamespaceVisibility::Public)), &ev()).await.unwrap();
    let tag = MetadefItemKind::Tag;
    let names = |list: Vec<MetadefItem>| list.into_iter().map(|t| t.name).collect::<Vec<_>>();
    m.create_items("NS", tag, &[item("a", json!({})), item("b", json!({}))], true, &ev()).await.unwrap();
    m.create_items("NS", tag, &[item("c", json!({}))], false, &ev()).await.unwrap();
    assert_eq!(names(m.items("NS", tag).await.unwrap()), ["a", "b", "c"]);
    m.create_items("NS", tag, &[item("a", json!({})), item("d", json!({}))], true, &ev()).await.unwrap();
    assert_eq!(names(m.items("NS", tag).await.unwrap()), ["a", "d"], "replacing drops the old tags");
    expect_conflict(m.create_items("NS", tag, &[item("x", json!({})), item("a", json!({}))], false, &ev()).await);
    assert_eq!(names(m.items("NS", tag).await.unwrap()), ["a", "d"], "a failed append changes nothing");
    expect_conflict(m.create_items("NS", tag, &[item("y", json!({})), item("y", json!({}))], true, &ev()).await);
    assert_eq!(names(m.items("NS", tag).await.unwrap()), ["a", "d"], "a failed replacement changes nothing");
}

pub async fn check_metadef_associations(b: &Backend) {
    let m = &b.catalog.metadefs;
    m.create_namespace(&empty(namespace("NS", "p1", NamespaceVisibility::Public)), &ev()).await.unwrap();
    let standard = m.resource_types().await.unwrap();
    let names: Vec<&str> = standard.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["OS::Cinder::Volume", "OS::Glance::Image", "OS::Nova::Aggregate", "OS::Nova::Flavor", "OS::Nova::Server"],
        "the standard resource types exist from the start"
    );
    assert!(standard.iter().all(|r| r.protected));
    let image = association("OS::Glance::Image", Some("img_"));
    m.create_association("NS", &image, &ev()).await.unwrap();
    expect_conflict(m.create_association("NS", &image, &ev()).await);
    expect_not_found(m.create_association("Missing", &image, &ev()).await);
    assert_eq!(m.associations("NS").await.unwrap(), vec![image.clone()]);
    assert_eq!(m.resource_types().await.unwrap(), standard, "an existing resource type is reused");
    let widget = association("Test::Widget", None);
    m.create_association("NS", &widget, &ev()).await.unwrap();
    let types = m.resource_types().await.unwrap();
    assert_eq!(types.len(), standard.len() + 1);
    assert!(types.iter().any(|r| r.name == "Test::Widget" && !r.protected), "a new one is created unprotected");
    m.delete_association("NS", "OS::Glance::Image", &ev()).await.unwrap();
    expect_not_found(m.delete_association("NS", "OS::Glance::Image", &ev()).await);
    assert_eq!(m.associations("NS").await.unwrap(), vec![widget]);
    assert_eq!(m.resource_types().await.unwrap().len(), standard.len() + 1, "resource types stay");
}
