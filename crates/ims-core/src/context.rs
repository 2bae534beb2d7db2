use ims_catalog::{AuditEvent, Role, Viewer};

/// An authenticated caller: a user acting in one project with one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub user_name: String,
    pub project_id: String,
    pub project_name: String,
    pub role: Role,
}

impl Caller {
    /// Admins may act on every project's resources (the `admin` role, as in Glance's default policy).
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// Readers may look but not change anything.
    pub fn can_write(&self) -> bool {
        self.role >= Role::Member
    }
}

/// Everything a use case needs to know about the request it serves.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `req-<uuid>`, echoed in responses and recorded in audit events.
    pub request_id: String,
    /// `None` for an anonymous request.
    pub caller: Option<Caller>,
    /// The network address the request came from, when known; recorded in audit events.
    pub source_address: Option<String>,
}

impl RequestContext {
    pub fn new(request_id: String, caller: Option<Caller>) -> RequestContext {
        RequestContext { request_id, caller, source_address: None }
    }

    /// The same context, recording `address` as where the request came from.
    pub fn with_source_address(mut self, address: Option<String>) -> RequestContext {
        self.source_address = address;
        self
    }

    pub fn is_admin(&self) -> bool {
        self.caller.as_ref().is_some_and(Caller::is_admin)
    }

    pub fn project_id(&self) -> Option<&str> {
        self.caller.as_ref().map(|c| c.project_id.as_str())
    }

    pub fn viewer(&self) -> Viewer {
        Viewer { project_id: self.project_id().map(str::to_string), is_admin: self.is_admin() }
    }

    /// An audit event for `action` on `resource`, attributed to this request's caller.
    pub fn event(&self, action: &str, resource: String) -> AuditEvent {
        let mut event = AuditEvent::new(&self.request_id, action, resource);
        if let Some(c) = &self.caller {
            event.project_id = Some(c.project_id.clone());
            event.user_id = Some(c.user_id.clone());
        }
        event.source_address = self.source_address.clone();
        event
    }
}
