//! The operations a round starts before the kill, chosen from what the service holds, and what each
//! leaves acknowledged: the promises a 2xx answer made, which must hold after the restart.

use std::collections::HashSet;
use std::path::PathBuf;

use ims_client::{Client, CreateImage, Image, ListParams, MemberStatus, PatchOp};
use serde_json::json;

use crate::content::{Content, Rng, Uploads};

/// The clients of a run: the owner of every image, a project images are shared with, and the admin.
#[derive(Clone)]
pub struct Actors {
    pub owner: Client,
    pub member: Client,
    pub member_project: String,
    pub admin: Client,
}

impl Actors {
    /// The same actors against a restarted server.
    pub fn at(&self, url: &str) -> Actors {
        let same = |c: &Client| Client::new(url, c.token().unwrap_or_default()).expect("client");
        Actors {
            owner: same(&self.owner),
            member: same(&self.member),
            member_project: self.member_project.clone(),
            admin: same(&self.admin),
        }
    }
}

/// The bucket exports are written to.
pub const EXPORT_BUCKET: &str = "crash-exports";

#[derive(Debug, Clone)]
pub enum Op {
    /// Glance create + `PUT /file`.
    Upload { name: String, content: Content },
    /// Glance create (qcow2) + stage + glance-direct import (converted to raw).
    GlanceImport { name: String, qcow2: PathBuf, raw: Content },
    /// glance-direct import of an image whose data is staged.
    ImportStaged { image: String },
    /// ExportImage of an active raw image into the export bucket, as raw.
    Export { image: String, md5: String, size: u64, key: String },
    /// CopyImageInRegion.
    Copy { image: String, name: String },
    /// `POST /admin/v1/store/gc` with a grace of two seconds, while the other operations write.
    Gc,
    AddMember { image: String },
    AcceptMember { image: String },
    RemoveMember { image: String },
    /// Deletion into the recycle bin.
    Delete { image: String },
    Restore { image: String },
    AddTag { image: String, tag: String },
    RemoveTag { image: String, tag: String },
    SetProperty { image: String, key: String, value: String },
}

/// A promise made by a 2xx answer before the kill.
#[derive(Debug, Clone)]
pub enum Acked {
    /// The image record exists (in whatever state recovery leaves it).
    Exists { image: String },
    /// The image is active (once the jobs settled) and holds exactly these bytes.
    ActiveWith { image: String, content: Content },
    /// Staged data is kept: the image is `uploading` with its size, or was imported meanwhile.
    Staged { image: String },
    /// The export job ends in SUCCESS and the object holds the image's bytes.
    ExportDone { job: String, key: String, md5: String, size: u64 },
    /// The copy job ends in SUCCESS with an active copy of the source's bytes.
    CopyDone { job: String, source: String },
    /// The member row of the member project is in this status (`None`: there is none).
    Member { image: String, status: Option<&'static str> },
    /// The image is gone from the image API and in the recycle bin.
    Binned { image: String },
    /// The image is back, not deleted.
    Restored { image: String },
    Tag { image: String, tag: String, present: bool },
    Property { image: String, key: String, value: String },
}

/// What the service holds when a round starts, as the owner sees it.
pub struct Holdings {
    pub images: Vec<Image>,
    pub binned: Vec<String>,
}

impl Holdings {
    pub async fn read(actors: &Actors) -> Holdings {
        let images = actors.owner.list_all_images(&ListParams::default()).await.expect("list images");
        let binned = actors.owner.recycle_bin(false).await.expect("list the recycle bin");
        Holdings { images, binned: binned.into_iter().map(|b| b.image.id).collect() }
    }

    fn active(&self) -> Vec<&Image> {
        self.images.iter().filter(|i| i.status == "active").collect()
    }
}

/// What a round may upload and import: fresh contents for uploads, and qcow2 sources of known raw contents.
pub struct Sources<'a> {
    pub uploads: &'a mut Uploads,
    pub imports: &'a [(PathBuf, Content)],
}

/// Chooses `count` operations, each on an image no other operation of the round touches.
pub async fn choose(rng: &mut Rng, count: usize, actors: &Actors, held: &Holdings, sources: &mut Sources<'_>, round: u64) -> Vec<Op> {
    let mut taken: HashSet<String> = HashSet::new();
    let mut ops = Vec::new();
    let mut gc_chosen = false;
    for n in 0..count {
        let free_active: Vec<&Image> = held.active().into_iter().filter(|i| !taken.contains(&i.id)).collect();
        let mut op = None;
        for _ in 0..6 {
            op = match rng.below(16) {
                0..=3 => {
                    let (name, content) = sources.uploads.next(rng);
                    Some(Op::Upload { name, content })
                }
                4 | 5 => {
                    let index = rng.below(sources.imports.len() as u64) as usize;
                    let (qcow2, raw) = sources.imports[index].clone();
                    Some(Op::GlanceImport { name: format!("import-{index}-r{round}n{n}"), qcow2, raw })
                }
                6 => held
                    .images
                    .iter()
                    .find(|i| i.status == "uploading" && i.size.is_some() && !taken.contains(&i.id))
                    .map(|i| Op::ImportStaged { image: i.id.clone() }),
                7 if !free_active.is_empty() => {
                    let image = *rng.pick(&free_active);
                    Some(Op::Export {
                        image: image.id.clone(),
                        md5: image.checksum.clone().unwrap_or_default(),
                        size: image.size.unwrap_or_default(),
                        key: format!("r{round}n{n}.raw"),
                    })
                }
                8 if !free_active.is_empty() => {
                    let image = *rng.pick(&free_active);
                    let base = image.name.clone().unwrap_or_default();
                    let base = base.split(" copy ").next().unwrap_or_default().to_string();
                    Some(Op::Copy { image: image.id.clone(), name: format!("{base} copy r{round}n{n}") })
                }
                9 if !gc_chosen => {
                    gc_chosen = true;
                    Some(Op::Gc)
                }
                10 | 11 if !free_active.is_empty() => {
                    // Mostly an image already shared, so that accepts and removals happen too.
                    let mut shared = None;
                    for image in &free_active {
                        let members = actors.owner.list_members(&image.id).await.expect("list members");
                        if let Some(m) = members.iter().find(|m| m.member_id == actors.member_project) {
                            shared = Some((image.id.clone(), Some(m.status.clone())));
                            break;
                        }
                    }
                    let (id, status) = match shared {
                        Some(found) if rng.percent(70) => found,
                        _ => {
                            let image = *rng.pick(&free_active);
                            let members = actors.owner.list_members(&image.id).await.expect("list members");
                            let status =
                                members.iter().find(|m| m.member_id == actors.member_project).map(|m| m.status.clone());
                            (image.id.clone(), status)
                        }
                    };
                    Some(match status.as_deref() {
                        None => Op::AddMember { image: id },
                        Some("pending") if rng.percent(70) => Op::AcceptMember { image: id },
                        Some(_) => Op::RemoveMember { image: id },
                    })
                }
                12 => {
                    let candidates: Vec<&Image> = held
                        .images
                        .iter()
                        .filter(|i| matches!(i.status.as_str(), "active" | "queued") && !taken.contains(&i.id))
                        .collect();
                    (!candidates.is_empty()).then(|| Op::Delete { image: rng.pick(&candidates).id.clone() })
                }
                13 => {
                    let candidates: Vec<&String> = held.binned.iter().filter(|id| !taken.contains(*id)).collect();
                    (!candidates.is_empty()).then(|| Op::Restore { image: (*rng.pick(&candidates)).clone() })
                }
                14 if !free_active.is_empty() => {
                    let image = *rng.pick(&free_active);
                    let id = image.id.clone();
                    Some(match image.tags.first() {
                        Some(tag) if rng.percent(40) => Op::RemoveTag { image: id, tag: tag.clone() },
                        _ => Op::AddTag { image: id, tag: format!("t-r{round}n{n}") },
                    })
                }
                15 if !free_active.is_empty() => {
                    let image = *rng.pick(&free_active);
                    Some(Op::SetProperty {
                        image: image.id.clone(),
                        key: format!("crash_p{}", rng.below(3)),
                        value: format!("r{round}n{n}"),
                    })
                }
                _ => None,
            };
            if op.is_some() {
                break;
            }
        }
        let op = op.unwrap_or_else(|| {
            let (name, content) = sources.uploads.next(rng);
            Op::Upload { name, content }
        });
        if let Some(id) = op.image() {
            taken.insert(id.to_string());
        }
        ops.push(op);
    }
    ops
}

impl Op {
    /// The existing image the operation works on.
    pub fn image(&self) -> Option<&str> {
        match self {
            Op::Upload { .. } | Op::GlanceImport { .. } | Op::Gc => None,
            Op::ImportStaged { image }
            | Op::Export { image, .. }
            | Op::Copy { image, .. }
            | Op::AddMember { image }
            | Op::AcceptMember { image }
            | Op::RemoveMember { image }
            | Op::Delete { image }
            | Op::Restore { image }
            | Op::AddTag { image, .. }
            | Op::RemoveTag { image, .. }
            | Op::SetProperty { image, .. } => Some(image),
        }
    }

    /// Runs the operation until it is done or the server dies; returns what was acknowledged.
    pub async fn run(self, actors: Actors) -> Vec<Acked> {
        let mut acked = Vec::new();
        let owner = &actors.owner;
        match self {
            Op::Upload { name, content } => {
                let Ok(image) = owner.create_image(&raw_image(&name, "raw")).await else { return acked };
                acked.push(Acked::Exists { image: image.id.clone() });
                if owner.upload_file(&image.id, &content.path).await.is_ok() {
                    acked.push(Acked::ActiveWith { image: image.id, content });
                }
            }
            Op::GlanceImport { name, qcow2, raw } => {
                let Ok(image) = owner.create_image(&raw_image(&name, "qcow2")).await else { return acked };
                acked.push(Acked::Exists { image: image.id.clone() });
                let Ok(file) = tokio::fs::File::open(&qcow2).await else { return acked };
                let size = file.metadata().await.expect("qcow2 size").len();
                let body = ims_client::reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
                if owner.stage(&image.id, body, Some(size)).await.is_err() {
                    return acked;
                }
                acked.push(Acked::Staged { image: image.id.clone() });
                if owner.import_image(&image.id, &json!({"method": {"name": "glance-direct"}})).await.is_ok() {
                    acked.push(Acked::ActiveWith { image: image.id, content: raw });
                }
            }
            Op::ImportStaged { image } => {
                if owner.import_image(&image, &json!({"method": {"name": "glance-direct"}})).await.is_ok() {
                    acked.push(Acked::Exists { image });
                }
            }
            Op::Export { image, md5, size, key } => {
                if let Ok(job) = owner.export_image(&image, &format!("{EXPORT_BUCKET}:{key}"), "raw").await {
                    acked.push(Acked::ExportDone { job, key, md5, size });
                }
            }
            Op::Copy { image, name } => {
                if let Ok(job) = owner.copy_image(&image, &name, None).await {
                    acked.push(Acked::CopyDone { job, source: image });
                }
            }
            Op::Gc => {
                let _ = actors.admin.store_gc(Some(2)).await;
            }
            Op::AddMember { image } => {
                if owner.add_member(&image, &actors.member_project).await.is_ok() {
                    acked.push(Acked::Member { image, status: Some("pending") });
                }
            }
            Op::AcceptMember { image } => {
                let answer = actors.member.update_member_status(&image, &actors.member_project, MemberStatus::Accepted).await;
                if answer.is_ok() {
                    acked.push(Acked::Member { image, status: Some("accepted") });
                }
            }
            Op::RemoveMember { image } => {
                if owner.remove_member(&image, &actors.member_project).await.is_ok() {
                    acked.push(Acked::Member { image, status: None });
                }
            }
            Op::Delete { image } => {
                if owner.delete_image(&image).await.is_ok() {
                    acked.push(Acked::Binned { image });
                }
            }
            Op::Restore { image } => {
                if owner.restore_image(&image).await.is_ok() {
                    acked.push(Acked::Restored { image });
                }
            }
            Op::AddTag { image, tag } => {
                if owner.add_tag(&image, &tag).await.is_ok() {
                    acked.push(Acked::Tag { image, tag, present: true });
                }
            }
            Op::RemoveTag { image, tag } => {
                if owner.remove_tag(&image, &tag).await.is_ok() {
                    acked.push(Acked::Tag { image, tag, present: false });
                }
            }
            Op::SetProperty { image, key, value } => {
                let patch = [PatchOp::add(&key, value.clone())];
                if owner.update_image(&image, &patch).await.is_ok() {
                    acked.push(Acked::Property { image, key, value });
                }
            }
        }
        acked
    }
}

fn raw_image(name: &str, disk_format: &str) -> CreateImage {
    CreateImage {
        name: Some(name.to_string()),
        disk_format: Some(disk_format.to_string()),
        container_format: Some("bare".to_string()),
        ..CreateImage::default()
    }
}
