/// Limits every image must respect, configurable by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest file accepted for one image, in bytes (Glance's `image_size_cap`, default 1 TiB).
    pub max_image_size: u64,
    /// Extra properties per image (Glance's `image_property_quota`).
    pub max_properties: usize,
    /// Tags per image (`image_tag_quota`).
    pub max_tags: usize,
    /// Members per image added through the Glance API (`image_member_quota`, Glance's 128).
    pub max_members: usize,
    /// Members per system or data disk image added through the IMS batch API (IMS's 256).
    pub max_ims_members: usize,
    /// Members per whole-server image added through the IMS batch API (IMS's 10).
    pub max_whole_image_members: usize,
    /// Images a project may own unless an admin set its own quota (IMS's private image quota, 50).
    /// Callers with the admin role are not limited.
    pub private_image_quota: u64,
    /// Longest time the format inspection of one uploaded or staged file may take (default 10 minutes);
    /// an inspection still running then fails the upload.
    pub inspection_timeout: std::time::Duration,
}

impl Default for ImageLimits {
    fn default() -> ImageLimits {
        ImageLimits {
            max_image_size: 1 << 40,
            max_properties: 128,
            max_tags: 128,
            max_members: 128,
            max_ims_members: 256,
            max_whole_image_members: 10,
            private_image_quota: 50,
            inspection_timeout: std::time::Duration::from_secs(600),
        }
    }
}

/// Longest name, tag, property key or property value accepted.
pub const MAX_STRING: usize = 255;

/// `disk_format` values accepted (Glance's, plus the IMS formats).
pub const DISK_FORMATS: &[&str] = &[
    "ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop", "zvhd", "zvhd2", "qcow", "qed",
];

/// `container_format` values accepted.
pub const CONTAINER_FORMATS: &[&str] = &["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"];

/// Property keys that belong to the service (Glance reserves `os_glance_`).
pub const RESERVED_PREFIX: &str = "os_glance_";

/// Name of the private image quota in project quotas.
pub const PRIVATE_IMAGES: &str = "private_images";
/// Largest private image quota an admin may set.
pub const MAX_PRIVATE_IMAGE_QUOTA: i64 = 10_000;
/// Name of the members-per-image quota in project quotas: how many projects one of the project's images
/// may be shared with, through either API (whole-server images never more than
/// [`ImageLimits::max_whole_image_members`]).
pub const MEMBERS_PER_IMAGE: &str = "members_per_image";
/// Name of the byte quota in project quotas: the total logical bytes (the sum of `size`) of the images a
/// project owns, checked when an image's data is activated. Unlimited unless an admin sets it.
pub const IMAGE_BYTES: &str = "image_bytes";
/// Largest byte quota an admin may set (1 EiB).
pub const MAX_IMAGE_BYTES_QUOTA: i64 = 1 << 60;
/// Largest members-per-image quota an admin may set.
pub const MAX_MEMBERS_PER_IMAGE_QUOTA: i64 = 1_000;
