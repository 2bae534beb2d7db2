use ims_catalog::Project;
use ims_core::IssuedToken;
use serde_json::{json, Value};

use crate::glance_timestamp as timestamp;

pub fn project(p: &Project) -> Value {
    json!({"id": p.id, "name": p.name, "created_at": timestamp(&p.created_at)})
}

/// A token with its secret: shown once, when issued.
pub fn issued_token(t: &IssuedToken) -> Value {
    json!({
        "id": t.token.id,
        "token": t.secret,
        "user_id": t.token.user_id,
        "project_id": t.token.project_id,
        "created_at": timestamp(&t.token.created_at),
        "expires_at": t.token.expires_at.as_ref().map(timestamp),
    })
}
