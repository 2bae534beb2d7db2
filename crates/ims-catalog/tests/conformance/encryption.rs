//! Checks of the encryption repository: master keys, encryption domains, encrypted images.

use ims_catalog::{ImageEncryption, KeyState, StoredKmsKey};
use uuid::Uuid;

use crate::support::{create, event, expect_conflict, expect_not_found, image, t, Backend};

fn key(id: &str, alias: &str, secs: i64) -> StoredKmsKey {
    StoredKmsKey {
        id: id.into(),
        alias: alias.into(),
        description: (secs % 2 == 0).then(|| format!("key {id}")),
        state: KeyState::Enabled,
        shareable: id == "k2",
        sealed_material: format!("v1:sealed-{id}"),
        created_at: t(secs),
        updated_at: t(secs),
    }
}

pub async fn check_kms_keys(b: &Backend) {
    let enc = &b.catalog.encryption;
    assert!(enc.list_keys().await.unwrap().is_empty());
    let k2 = key("k2", "second", 2);
    let k1 = key("k1", "first", 1);
    let before = b.audit.count().await;
    enc.create_key(&k2, &event("kms.key.create", "kms-key:k2")).await.unwrap();
    enc.create_key(&k1, &event("kms.key.create", "kms-key:k1")).await.unwrap();
    assert_eq!(b.audit.count().await, before + 2, "creations are audited");
    expect_conflict(enc.create_key(&key("k1", "other", 3), &event("kms.key.create", "x")).await);
    expect_conflict(enc.create_key(&key("k3", "first", 3), &event("kms.key.create", "x")).await);
    assert_eq!(b.audit.count().await, before + 2, "refused creations store nothing");

    assert_eq!(enc.get_key("k2").await.unwrap(), k2);
    expect_not_found(enc.get_key("k9").await);
    assert_eq!(enc.list_keys().await.unwrap(), vec![k1.clone(), k2.clone()], "oldest first");

    let disabled = enc.set_key_state("k1", KeyState::Disabled, t(10), &event("kms.key.disable", "kms-key:k1")).await.unwrap();
    assert_eq!((disabled.state, disabled.updated_at, disabled.created_at), (KeyState::Disabled, t(10), t(1)));
    assert_eq!(enc.get_key("k1").await.unwrap(), disabled);
    assert_eq!(enc.get_key("k2").await.unwrap().state, KeyState::Enabled, "only that key");
    let again = enc.set_key_state("k1", KeyState::Disabled, t(11), &event("kms.key.disable", "kms-key:k1")).await.unwrap();
    assert_eq!(again.state, KeyState::Disabled, "idempotent");
    let enabled = enc.set_key_state("k1", KeyState::Enabled, t(12), &event("kms.key.enable", "kms-key:k1")).await.unwrap();
    assert_eq!(enabled.state, KeyState::Enabled);
    expect_not_found(enc.set_key_state("k9", KeyState::Enabled, t(13), &event("kms.key.enable", "kms-key:k9")).await);

    assert!(enc.get_key("k2").await.unwrap().shareable, "the flag round-trips");
    let before = b.audit.count().await;
    let shared = enc.set_key_shareable("k1", true, t(14), &event("kms.key.update", "kms-key:k1")).await.unwrap();
    assert_eq!((shared.shareable, shared.state, shared.updated_at), (true, KeyState::Enabled, t(14)));
    assert_eq!(enc.get_key("k1").await.unwrap(), shared);
    let again = enc.set_key_shareable("k1", true, t(15), &event("kms.key.update", "kms-key:k1")).await.unwrap();
    assert!(again.shareable, "idempotent");
    let private = enc.set_key_shareable("k1", false, t(16), &event("kms.key.update", "kms-key:k1")).await.unwrap();
    assert!(!private.shareable);
    assert!(enc.get_key("k2").await.unwrap().shareable, "only that key");
    assert_eq!(b.audit.count().await, before + 3, "changes are audited");
    expect_not_found(enc.set_key_shareable("k9", true, t(17), &event("kms.key.update", "kms-key:k9")).await);
    assert_eq!(b.audit.count().await, before + 3, "a refused change stores nothing");
}

pub async fn check_encryption_domains_and_images(b: &Backend) {
    let enc = &b.catalog.encryption;
    assert_eq!(enc.domain_key("p1", "k1").await.unwrap(), None);
    assert_eq!(enc.add_domain_key("p1", "k1", "wrapped-a", t(1)).await.unwrap(), "wrapped-a");
    assert_eq!(enc.add_domain_key("p1", "k1", "wrapped-b", t(2)).await.unwrap(), "wrapped-a", "the first key stays");
    assert_eq!(enc.domain_key("p1", "k1").await.unwrap().as_deref(), Some("wrapped-a"));
    assert_eq!(enc.add_domain_key("p2", "k1", "wrapped-c", t(3)).await.unwrap(), "wrapped-c", "one domain per project");
    assert_eq!(enc.add_domain_key("p1", "k2", "wrapped-d", t(4)).await.unwrap(), "wrapped-d", "and per key");

    let img = image("p1", "encrypted");
    create(&b.catalog, &img).await;
    assert_eq!(enc.image_encryption(img.id).await.unwrap(), None);
    let record = ImageEncryption { image_id: img.id, key_id: "k1".into(), wrapped_data_key: "wrapped-a".into() };
    enc.set_image_encryption(&record).await.unwrap();
    assert_eq!(enc.image_encryption(img.id).await.unwrap(), Some(record.clone()));
    let replaced = ImageEncryption { key_id: "k2".into(), wrapped_data_key: "wrapped-d".into(), ..record };
    enc.set_image_encryption(&replaced).await.unwrap();
    assert_eq!(enc.image_encryption(img.id).await.unwrap(), Some(replaced));

    let never = ImageEncryption { image_id: Uuid::new_v4(), key_id: "k1".into(), wrapped_data_key: "w".into() };
    expect_not_found(enc.set_image_encryption(&never).await);
    assert_eq!(enc.image_encryption(never.image_id).await.unwrap(), None);
}
