//! The OS version catalogue of `GET /v1/cloudimages/os_version`: a built-in list (below, documented in
//! `docs/ims-api.md`) that admins extend with `POST /v1/cloudimages/os_version` (stored in the catalog;
//! an added key replaces a built-in one).

use std::collections::BTreeMap;

use ims_catalog::OsVersion;

use crate::images::ImageService;
use crate::{CoreError, Policy, RequestContext, Result};

/// `(platform, version, bits)` of the built-in catalogue; the key and display name are
/// `"{platform} {version} {bits}bit"`, the type is Windows for the Windows platform, else Linux.
const BUILT_IN: &[(&str, &str, i64)] = &[
    ("AlmaLinux", "8.8", 64),
    ("AlmaLinux", "9.2", 64),
    ("CentOS", "7.9", 64),
    ("CentOS", "8.2", 64),
    ("CentOS Stream", "9", 64),
    ("Debian", "11.1.0", 64),
    ("Debian", "12.0.0", 64),
    ("EulerOS", "2.9", 64),
    ("EulerOS", "2.10", 64),
    ("Fedora", "38", 64),
    ("openEuler", "20.03", 64),
    ("openEuler", "22.03", 64),
    ("OpenSUSE", "15.5", 64),
    ("Oracle Linux", "8.8", 64),
    ("Red Hat", "8.8", 64),
    ("Rocky", "8.8", 64),
    ("Rocky", "9.2", 64),
    ("SUSE", "15 SP5", 64),
    ("Ubuntu", "20.04 server", 64),
    ("Ubuntu", "22.04 server", 64),
    ("Ubuntu", "24.04 server", 64),
    ("Windows", "Server 2016 Datacenter", 64),
    ("Windows", "Server 2019 Datacenter", 64),
    ("Windows", "Server 2022 Datacenter", 64),
    ("Other", "Linux", 64),
    ("Other", "Linux", 32),
    ("Other", "Windows", 64),
];

/// The built-in catalogue.
pub fn built_in() -> Vec<OsVersion> {
    BUILT_IN
        .iter()
        .map(|(platform, version, bits)| {
            let key = format!("{platform} {version} {bits}bit");
            let os_type =
                if *platform == "Windows" || (*platform == "Other" && *version == "Windows") { "Windows" } else { "Linux" };
            OsVersion {
                os_version_key: key.clone(),
                platform: platform.to_string(),
                os_version: key,
                os_bit: *bits,
                os_type: os_type.into(),
            }
        })
        .collect()
}

impl ImageService {
    /// The catalogue: built-in entries and admins' additions, grouped by platform (sorted), each
    /// platform's versions sorted by key.
    pub async fn os_versions(&self, _ctx: &RequestContext) -> Result<Vec<(String, Vec<OsVersion>)>> {
        let mut by_key: BTreeMap<String, OsVersion> =
            built_in().into_iter().map(|v| (v.os_version_key.clone(), v)).collect();
        for v in self.catalog.identity.list_os_versions().await? {
            by_key.insert(v.os_version_key.clone(), v);
        }
        let mut platforms: BTreeMap<String, Vec<OsVersion>> = BTreeMap::new();
        for v in by_key.into_values() {
            platforms.entry(v.platform.clone()).or_default().push(v);
        }
        Ok(platforms.into_iter().collect())
    }

    /// The catalogue entry of an `__os_version` key, if any.
    pub async fn os_version(&self, ctx: &RequestContext, key: &str) -> Result<Option<OsVersion>> {
        Ok(self.os_versions(ctx).await?.into_iter().flat_map(|(_, v)| v).find(|v| v.os_version_key == key))
    }

    /// Adds (or replaces) an entry of the catalogue. Admin.
    pub async fn put_os_version(&self, ctx: &RequestContext, version: OsVersion) -> Result<()> {
        Policy::check_admin(ctx)?;
        for (what, s) in [("os_version_key", &version.os_version_key), ("platform", &version.platform), ("os_version", &version.os_version)] {
            if s.is_empty() || s.chars().count() > 255 {
                return Err(CoreError::Invalid(format!("{what} must have 1 to 255 characters")));
            }
        }
        let event = ctx.event("os_version.put", format!("os_version:{}", version.os_version_key));
        Ok(self.catalog.identity.put_os_version(&version, &event).await?)
    }
}

/// Checks the OS metadata properties whose values are a closed set: `__os_bit` (`32` or `64`),
/// `__os_type` (`Linux` or `Windows`) and `hw_firmware_type` (`bios` or `uefi`). Absent ones are fine
/// (the IMS API shows their defaults); other OS properties (`__platform`, `__os_version`,
/// `architecture`) are free text, as operators extend the catalogue.
pub fn check_os_metadata(properties: &BTreeMap<String, String>) -> Result<()> {
    const CLOSED: [(&str, &[&str]); 3] =
        [("__os_bit", &["32", "64"]), ("__os_type", &["Linux", "Windows"]), ("hw_firmware_type", &["bios", "uefi"])];
    for (key, allowed) in CLOSED {
        if let Some(value) = properties.get(key) {
            if !allowed.contains(&value.as_str()) {
                return Err(CoreError::Invalid(format!(
                    "Invalid {key} {value:?}: use {}",
                    allowed.join(" or ")
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod os_metadata_tests {
    use super::*;

    #[test]
    fn closed_os_metadata_values_are_checked() {
        let props = |k: &str, v: &str| BTreeMap::from([(k.to_string(), v.to_string())]);
        assert!(check_os_metadata(&BTreeMap::new()).is_ok());
        assert!(check_os_metadata(&props("__os_bit", "64")).is_ok());
        assert!(check_os_metadata(&props("__os_bit", "16")).is_err());
        assert!(check_os_metadata(&props("__os_type", "Windows")).is_ok());
        assert!(check_os_metadata(&props("__os_type", "BeOS")).is_err());
        assert!(check_os_metadata(&props("hw_firmware_type", "uefi")).is_ok());
        assert!(check_os_metadata(&props("hw_firmware_type", "efi")).is_err());
        assert!(check_os_metadata(&props("__platform", "Anything")).is_ok());
    }
}
