//! The invariants checked after every restart. Each check returns the violations it found, as sentences.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use ims_client::{Client, Image, ListParams};

use crate::content::{Content, Digests};
use crate::node::JOB_STALE_AFTER;
use crate::ops::{Acked, Actors, EXPORT_BUCKET};

/// How long after the restart every image must be at rest and every job final.
const SETTLE_BOUND: Duration = Duration::from_secs(40);

/// Statuses an image may rest in; `uploading` only with its staged data (a size).
fn at_rest(image: &Image) -> bool {
    match image.status.as_str() {
        "queued" | "active" | "deactivated" | "killed" => true,
        "uploading" => image.size.is_some(),
        _ => false,
    }
}

/// Waits until every image rests and every job is final. A job still running on a worker of the killed
/// process past the takeover time (plus the reaper's period and a margin) is a violation, and so is anything
/// not settled within [`SETTLE_BOUND`].
pub async fn settle(actors: &Actors, address: &str, restarted: Instant) -> Vec<String> {
    let mut violations = Vec::new();
    let takeover_by = restarted + JOB_STALE_AFTER * 3 + Duration::from_secs(2);
    let give_up = restarted + SETTLE_BOUND;
    loop {
        let images = actors.owner.list_all_images(&ListParams::default()).await.expect("list images");
        let jobs = actors.admin.list_jobs(Some("INIT,RUNNING"), true, Some(1000)).await.expect("list jobs");
        let restless: Vec<String> =
            images.iter().filter(|i| !at_rest(i)).map(|i| format!("{} {:?} ({})", i.id, i.name, i.status)).collect();
        if restless.is_empty() && jobs.is_empty() {
            return violations;
        }
        if Instant::now() > takeover_by && violations.is_empty() {
            let nodes = actors.admin.list_nodes().await.expect("list nodes");
            let this = nodes.iter().find(|n| n.address == address).map(|n| n.id.clone()).expect("this node is listed");
            for job in jobs.iter().filter(|j| j.status == "RUNNING") {
                let worker = job.worker.clone().unwrap_or_default();
                if !worker.starts_with(&format!("{this}/")) {
                    violations.push(format!(
                        "job {} ({}) still RUNNING on the dead worker {worker:?} {:?} after the restart",
                        job.id,
                        job.job_type,
                        restarted.elapsed()
                    ));
                }
            }
        }
        if Instant::now() > give_up {
            let jobs: Vec<String> = jobs
                .iter()
                .map(|j| format!("{} {} {} attempts={} worker={:?}", j.id, j.job_type, j.status, j.attempts, j.worker))
                .collect();
            violations.push(format!(
                "not settled {SETTLE_BOUND:?} after the restart: images {restless:?}, unfinished jobs {jobs:?}"
            ));
            return violations;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged write survived.
pub async fn acknowledged(actors: &Actors, acked: &[Acked]) -> Vec<String> {
    let mut violations = Vec::new();
    let owner = &actors.owner;
    for promise in acked {
        let problem = match promise {
            Acked::Exists { image } => owner.get_image(image).await.err().map(|e| format!("is gone: {e}")),
            Acked::ActiveWith { image, content } => match owner.get_image(image).await {
                Ok(found) => holds(&found, content),
                Err(e) => Some(format!("is gone: {e}")),
            },
            Acked::Staged { image } => match owner.get_image(image).await {
                Ok(found) if found.status == "active" || (found.status == "uploading" && found.size.is_some()) => None,
                Ok(found) => Some(format!("lost its staged data: {} size {:?}", found.status, found.size)),
                Err(e) => Some(format!("is gone: {e}")),
            },
            Acked::ExportDone { job, key, md5, size } => match succeeded(owner, job).await {
                Err(problem) => Some(problem),
                Ok(_) => exported(owner, key, md5, *size).await,
            },
            Acked::CopyDone { job, source } => match succeeded(owner, job).await {
                Err(problem) => Some(problem),
                Ok(copy) => copied(owner, &copy, source).await,
            },
            Acked::Member { image, status } => match owner.list_members(image).await {
                Ok(members) => {
                    let found = members.iter().find(|m| m.member_id == actors.member_project).map(|m| m.status.as_str());
                    (found != *status).then(|| format!("member status {found:?}, acknowledged {status:?}"))
                }
                Err(e) => Some(format!("members unreadable: {e}")),
            },
            Acked::Binned { image } => match (owner.get_image(image).await, owner.binned_image(image).await) {
                (Err(e), Ok(_)) if e.is_not_found() => None,
                (shown, binned) => Some(format!(
                    "acknowledged deletion: image API {:?}, recycle bin {:?}",
                    shown.map(|i| i.status),
                    binned.map(|b| b.image.status)
                )),
            },
            Acked::Restored { image } => match owner.get_image(image).await {
                Ok(found) if found.status != "deleted" => None,
                Ok(found) => Some(format!("acknowledged restore, but {}", found.status)),
                Err(e) => Some(format!("acknowledged restore, but {e}")),
            },
            Acked::Tag { image, tag, present } => match owner.get_image(image).await {
                Ok(found) => (found.tags.contains(tag) != *present)
                    .then(|| format!("tag {tag:?} present={} but acknowledged present={present}", !present)),
                Err(e) => Some(format!("is gone: {e}")),
            },
            Acked::Property { image, key, value } => match owner.get_image(image).await {
                Ok(found) => (found.property(key) != Some(value.as_str()))
                    .then(|| format!("property {key}={:?}, acknowledged {value:?}", found.property(key))),
                Err(e) => Some(format!("is gone: {e}")),
            },
        };
        if let Some(problem) = problem {
            violations.push(format!("{promise:?}: {problem}"));
        }
    }
    violations
}

/// Whether an image is active and records exactly `content`.
fn holds(image: &Image, content: &Content) -> Option<String> {
    let recorded = (image.status.as_str(), image.checksum.as_deref(), image.os_hash_value.as_deref(), image.size);
    let expected = ("active", Some(content.md5.as_str()), Some(content.sha512.as_str()), Some(content.size));
    (recorded != expected).then(|| format!("records {recorded:?}, expected {expected:?}"))
}

/// The job's state once final; a problem unless it is SUCCESS.
async fn succeeded(client: &Client, job: &str) -> Result<ims_client::JobInfo, String> {
    match client.get_job(job).await {
        Ok(info) if info.status == "SUCCESS" => Ok(info),
        Ok(info) => Err(format!("job {} {:?}: {:?}", info.status, info.error_code, info.fail_reason)),
        Err(e) => Err(format!("job unreadable: {e}")),
    }
}

async fn exported(owner: &Client, key: &str, md5: &str, size: u64) -> Option<String> {
    let (_, mut stream) = match owner.get_object(EXPORT_BUCKET, key).await {
        Ok(found) => found,
        Err(e) => return Some(format!("exported object unreadable: {e}")),
    };
    let mut digests = Digests::default();
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(data) => digests.update(&data),
            Err(e) => return Some(format!("exported object unreadable: {e}")),
        }
    }
    let got = digests.size;
    let (got_md5, _) = digests.finish();
    (got_md5 != md5 || got != size).then(|| format!("exported {got} bytes md5 {got_md5}, the image {size} bytes md5 {md5}"))
}

async fn copied(owner: &Client, job: &ims_client::JobInfo, source: &str) -> Option<String> {
    let Some(copy) = job.entities["image_id"].as_str() else {
        return Some(format!("no copy in the job's entities {}", job.entities));
    };
    let (copy, source) = match (owner.get_image(copy).await, owner.get_image(source).await) {
        (Ok(copy), Ok(source)) => (copy, source),
        (copy, source) => return Some(format!("copy {:?}, source {:?}", copy.err(), source.err())),
    };
    (copy.status != "active" || copy.checksum != source.checksum || copy.os_hash_value != source.os_hash_value)
        .then(|| format!("copy {} {:?} of source {:?}", copy.status, copy.checksum, source.checksum))
}

/// A garbage collection with no grace (nothing writes now), then: every active image downloads whole with
/// its recorded size, md5 and sha512, which are those of the bytes it was given (`expected` by name), and
/// the store verification finds nothing wrong.
pub async fn data(actors: &Actors, expected: &dyn Fn(&str) -> Option<Content>) -> Vec<String> {
    let mut violations = Vec::new();
    if let Err(e) = actors.admin.store_gc(Some(0)).await {
        violations.push(format!("garbage collection after the restart failed: {e}"));
    }
    let images = actors.owner.list_all_images(&ListParams::default()).await.expect("list images");
    for image in images.iter().filter(|i| i.status == "active") {
        let name = image.name.clone().unwrap_or_default();
        if let Some(content) = expected(&name) {
            if let Some(problem) = holds(image, &content) {
                violations.push(format!("image {} {name:?} {problem}", image.id));
            }
        }
        if let Some(problem) = downloads(&actors.owner, image).await {
            violations.push(format!("image {} {name:?}: {problem}", image.id));
        }
    }
    match actors.admin.store_verify(None).await {
        Ok(report) if report.is_clean() => {}
        Ok(report) => violations.push(format!("store verification: {report:?}")),
        Err(e) => violations.push(format!("store verification failed: {e}")),
    }
    violations
}

/// Downloads the image whole; a problem unless the bytes have the recorded size and hashes.
async fn downloads(owner: &Client, image: &Image) -> Option<String> {
    let download = match owner.download(&image.id, None).await {
        Ok(download) => download,
        Err(e) => return Some(format!("download failed: {e}")),
    };
    let mut stream = download.into_stream();
    let mut digests = Digests::default();
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(data) => digests.update(&data),
            Err(e) => return Some(format!("download broke after {} bytes: {e}", digests.size)),
        }
    }
    let size = digests.size;
    let (md5, sha512) = digests.finish();
    let got = (Some(size), Some(md5), Some(sha512));
    let recorded = (image.size, image.checksum.clone(), image.os_hash_value.clone());
    (got != recorded).then(|| format!("downloaded {got:?}, recorded {recorded:?}"))
}

/// Member rows: none for an image deleted for good (binned images keep theirs for a restore), none for an
/// image without record, statuses valid. Read from the catalog file itself.
pub fn members(database: &Path) -> Vec<String> {
    let queries = [
        (
            "members of images deleted for good",
            "SELECT m.image_id || ' ' || m.member FROM image_members m JOIN images i ON i.id = m.image_id \
             WHERE i.status = 'deleted' AND i.binned_status IS NULL",
        ),
        (
            "members of images without record",
            "SELECT image_id || ' ' || member FROM image_members WHERE image_id NOT IN (SELECT id FROM images)",
        ),
        (
            "members with an invalid status",
            "SELECT image_id || ' ' || member || ' ' || status FROM image_members \
             WHERE status NOT IN ('pending', 'accepted', 'rejected')",
        ),
    ];
    let mut violations = Vec::new();
    for (what, sql) in queries {
        let out = Command::new("sqlite3").arg("-readonly").arg(database).arg(sql).output().expect("sqlite3 is installed");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            violations.push(format!("{what}: sqlite3 failed: {}", String::from_utf8_lossy(&out.stderr)));
        } else if !stdout.trim().is_empty() {
            violations.push(format!("{what}: {}", stdout.trim().replace('\n', ", ")));
        }
    }
    violations
}

/// The audit hash chain verifies.
pub async fn audit(actors: &Actors) -> Vec<String> {
    match actors.admin.verify_audit_trail().await {
        Ok(v) if v.intact => Vec::new(),
        Ok(v) => vec![format!("audit chain broken: {v:?}")],
        Err(e) => vec![format!("audit verification failed: {e}")],
    }
}
