//! `ims admin store gc|verify|stats` against a real `ims serve`.

mod common;

use std::path::PathBuf;

use common::{disk_bytes, str_of, Server, ADMIN_TOKEN};

const MIB: usize = 1 << 20;

/// The stored object of the chunk at file offset 0 of the server's only image.
fn first_chunk_file(s: &Server) -> PathBuf {
    let store = s.dir.path().join("data").join("store");
    let manifests: Vec<_> = std::fs::read_dir(store.join("manifests"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .collect();
    assert_eq!(manifests.len(), 1, "one image, one manifest");
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(manifests[0].path()).unwrap()).unwrap();
    let chunk = manifest["extents"][0]["chunk"].as_str().unwrap().to_string();
    store.join("chunks").join(&chunk[..2]).join(chunk)
}

#[test]
fn store_gc_verify_and_stats() {
    let s = Server::start();
    let disk = s.path("disk.raw");
    std::fs::write(&disk, disk_bytes(4 * MIB, 3)).unwrap();
    let img = s.json(ADMIN_TOKEN, &["image", "create", "victim", "--file", disk.to_str().unwrap()]);
    let id = str_of(&img, "id");

    let stats = s.json(ADMIN_TOKEN, &["admin", "store", "stats"]);
    assert_eq!((stats["images"].as_u64(), stats["logical_bytes"].as_u64()), (Some(1), Some(4 * MIB as u64)), "{stats:#}");
    assert!(stats["physical_bytes"].as_u64().unwrap() >= 4 * MIB as u64, "random data does not compress: {stats:#}");
    let table = s.admin(&["admin", "store", "stats"]).ok().stdout();
    assert!(table.contains("| logical_bytes ") && table.contains(&(4 * MIB).to_string()), "{table}");

    let clean = s.json(ADMIN_TOKEN, &["admin", "store", "verify"]);
    assert_eq!(clean["chunk_problems"].as_array().map(Vec::len), Some(0), "{clean:#}");

    // Damage the first chunk: verify (JSON and table) names the image and the offset, and fails.
    let path = first_chunk_file(&s);
    let mut object = std::fs::read(&path).unwrap();
    object[10] ^= 0xff;
    std::fs::write(&path, object).unwrap();
    let run = s.admin(&["admin", "store", "verify", "--image", &id, "--output", "json"]);
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let report = run.json();
    let problem = &report["chunk_problems"][0];
    assert_eq!((problem["image_id"].as_str(), problem["offset"].as_u64()), (Some(id.as_str()), Some(0)), "{report:#}");
    assert_eq!(problem["kind"], "corrupt");
    let run = s.admin(&["admin", "store", "verify"]);
    assert_eq!(run.code(), Some(1));
    assert!(run.stdout().contains(&id) && run.stdout().contains("corrupt"), "{}", run.stdout());
    assert!(run.stderr().contains("1 problem"), "{}", run.stderr());
    let err = s.ims(Some(ADMIN_TOKEN), &["image", "download", &id, "-o", s.path("out").to_str().unwrap()]).fails();
    assert!(err.contains(&id) && err.contains("offset 0"), "{err}");

    // Delete the image and collect: everything goes, with the numbers reported.
    s.admin(&["image", "delete", "--force", &id]).ok();
    let kept = s.json(ADMIN_TOKEN, &["admin", "store", "gc"]);
    assert_eq!(kept["chunks_deleted"], 0, "the default grace keeps young garbage: {kept:#}");
    let report = s.json(ADMIN_TOKEN, &["admin", "store", "gc", "--grace", "0"]);
    assert!(report["chunks_deleted"].as_u64().unwrap() >= 1, "{report:#}");
    assert!(report["bytes_reclaimed"].as_u64().unwrap() >= 4 * MIB as u64, "{report:#}");
    let stats = s.json(ADMIN_TOKEN, &["admin", "store", "stats"]);
    assert_eq!((stats["chunks"].as_u64(), stats["images"].as_u64()), (Some(0), Some(0)), "{stats:#}");

    // Members are refused.
    let (_, token) = s.tenant("team", "bob");
    let err = s.ims(Some(&token), &["admin", "store", "gc", "--grace", "0"]).fails();
    assert!(err.contains("403"), "{err}");
}
