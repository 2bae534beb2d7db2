//! `ims bucket ls|put|get|rm`, `ims image export|copy --wait`, `ims job list|show|cancel` against a real server.

mod common;

use common::{disk_bytes, md5_hex, str_of, Server};

#[test]
fn buckets_exports_copies_and_jobs_from_the_command_line() {
    let server = Server::start();
    let (_, token) = server.tenant("cli", "alice");
    let ims = |args: &[&str]| server.ims(Some(&token), args);
    let json = |args: &[&str]| server.json(&token, args);

    // Buckets: put a file, list, get it back byte for byte, remove it.
    let data = disk_bytes(3 << 20, 5);
    let file = server.path("disk.raw");
    std::fs::write(&file, &data).unwrap();
    let stored = json(&["bucket", "put", file.to_str().unwrap(), "files:in/disk.raw"]);
    assert_eq!(stored["size"], data.len());
    let buckets = json(&["bucket", "ls"]);
    assert_eq!(buckets[0]["name"], "files");
    let objects = json(&["bucket", "ls", "files:in"]);
    assert_eq!((objects[0]["key"].as_str(), objects[0]["size"].as_u64()), (Some("in/disk.raw"), Some(data.len() as u64)));
    let back = server.path("back.raw");
    ims(&["bucket", "get", "files:in/disk.raw", back.to_str().unwrap()]).ok();
    assert_eq!(md5_hex(&std::fs::read(&back).unwrap()), md5_hex(&data));
    let err = ims(&["bucket", "get", "files:missing", back.to_str().unwrap()]).fails();
    assert!(err.contains("404"), "{err}");
    assert!(ims(&["bucket", "put", file.to_str().unwrap(), "no-key"]).fails().contains("BUCKET:KEY"));

    // An image imported from the bucket, exported back as qcow2 and copied, each waited for.
    let job = json(&["image", "import", "files:in/disk.raw", "--name", "from-bucket", "--wait"]);
    assert_eq!(job["status"], "SUCCESS", "{job}");
    let image_id = str_of(&job["result"], "image_id");
    let job = json(&["image", "export", &image_id, "files:out/disk.qcow2", "-O", "qcow2", "--wait"]);
    assert_eq!((job["status"].as_str(), job["result"]["file_format"].as_str()), (Some("SUCCESS"), Some("qcow2")));
    let job = json(&["image", "copy", &image_id, "--name", "the-copy", "--wait"]);
    let copy_id = str_of(&job["result"], "image_id");
    assert_ne!(copy_id, image_id);
    let failed = ims(&["image", "export", &image_id, "files:x.bin", "-O", "vdi", "--wait"]).fails();
    assert!(failed.contains("file_format"), "{failed}");

    // Jobs: listed newest first, shown, and a finished job cannot be cancelled.
    let jobs = json(&["job", "list"]);
    let types: Vec<&str> = jobs.as_array().unwrap().iter().map(|j| j["job_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["copyImageInRegion", "exportImage", "createImageByFile"]);
    let done = json(&["job", "list", "--status", "SUCCESS"]);
    assert_eq!(done.as_array().unwrap().len(), 3);
    let first = str_of(&jobs[2], "id");
    assert_eq!(json(&["job", "show", &first])["progress"], 100.0);
    assert!(ims(&["job", "cancel", &first]).fails().contains("409"));
    assert!(ims(&["job", "list", "--all-projects"]).fails().contains("403"), "admins only");
}
