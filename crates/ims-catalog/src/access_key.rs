use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An access key (AK/SK) of a user, for `SDK-HMAC-SHA256` signed requests.
///
/// The catalog never sees the secret in clear: `sealed_secret` is what the service's secret sealer
/// produced from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// The access key id (AK).
    pub id: String,
    pub user_id: String,
    /// The only project the key is valid in; `None`: every project where the user has a role.
    pub project_id: Option<String>,
    /// The sealed secret (SK), base64.
    pub sealed_secret: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked: bool,
}
