use serde::{Deserialize, Serialize};

/// A key/value tag of the IMS API (`ResourceTag`), kept apart from Glance's plain-string tags.
/// An image has at most one value per key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ResourceTag {
    pub key: String,
    pub value: String,
}

impl ResourceTag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> ResourceTag {
        ResourceTag { key: key.into(), value: value.into() }
    }
}

/// One entry an operator added to the OS version catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsVersion {
    /// The key images carry in `__os_version` (e.g. `Ubuntu 22.04 server 64bit`).
    pub os_version_key: String,
    /// `Ubuntu`, `Windows`, `CentOS`, ...
    pub platform: String,
    /// The version as displayed (e.g. `Ubuntu 22.04 server 64bit`).
    pub os_version: String,
    /// 32 or 64.
    pub os_bit: i64,
    /// `Linux`, `Windows` or `Other`.
    pub os_type: String,
}
