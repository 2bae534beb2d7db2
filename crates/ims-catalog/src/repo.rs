//! Repository traits: the only way the rest of IMS reaches the catalog.
//!
//! Every method is atomic: it either applies entirely or not at all. Methods that write take the
//! [`AuditEvent`] describing the change and store it in the same transaction.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{AuditEvent, Image, ImageQuery, ImageStatus, Member, MemberStatus, Project, Result, Role, Token, User};

#[async_trait]
pub trait ImageRepository: Send + Sync {
    /// Inserts `image` with its tags and properties. `Conflict` if an image with this id exists or ever
    /// existed (ids of deleted images are never reused).
    async fn create(&self, image: &Image, event: &AuditEvent) -> Result<()>;

    /// The image with this id, unless it is `deleted`: then, or if it never existed, `NotFound`.
    async fn get(&self, id: Uuid) -> Result<Image>;

    /// Replaces every stored field of the image (including tags, properties, status) with `image`'s,
    /// but only if the stored status is one of `expected`; otherwise `Conflict` and nothing changes.
    /// `NotFound` if the image is missing or deleted. `image.updated_at` is stored as given.
    /// This compare-and-set on status is how state transitions stay race-free across nodes.
    async fn save(&self, image: &Image, expected: &[ImageStatus], event: &AuditEvent) -> Result<()>;

    /// The images matching `query`, in its sort order, at most `query.limit` of them.
    /// `Invalid` if the marker is not an image the viewer can see.
    async fn list(&self, query: &ImageQuery) -> Result<Vec<Image>>;

    /// Number of non-deleted images owned by `project` and the sum of their `size` (0 when none).
    async fn usage(&self, project: &str) -> Result<ImageUsage>;

    /// Ids of every manifest referenced by a non-deleted image (for the chunk store's garbage collector).
    async fn live_manifests(&self) -> Result<Vec<String>>;
}

/// What a project's images occupy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageUsage {
    pub image_count: u64,
    pub total_size: u64,
    /// Images in `saving`/`uploading`/`importing`.
    pub uploading_count: u64,
}

#[async_trait]
pub trait MemberRepository: Send + Sync {
    /// Adds `member`. `Conflict` if that project is already a member of the image; `NotFound` if the
    /// image does not exist.
    async fn add(&self, member: &Member, event: &AuditEvent) -> Result<()>;

    /// The membership of `member` in `image_id`, or `NotFound`.
    async fn get(&self, image_id: Uuid, member: &str) -> Result<Member>;

    /// Every member of the image, ordered by creation time.
    async fn list(&self, image_id: Uuid) -> Result<Vec<Member>>;

    /// Sets the status (and `updated_at` to now) and returns the updated member; `NotFound` if missing.
    async fn set_status(&self, image_id: Uuid, member: &str, status: MemberStatus, event: &AuditEvent)
        -> Result<Member>;

    /// Removes the membership; `NotFound` if missing.
    async fn remove(&self, image_id: Uuid, member: &str, event: &AuditEvent) -> Result<()>;
}

#[async_trait]
pub trait IdentityRepository: Send + Sync {
    /// Inserts the project. `Conflict` if its id or name is taken.
    async fn create_project(&self, project: &Project, event: &AuditEvent) -> Result<()>;
    /// The project by id, or `NotFound`.
    async fn get_project(&self, id: &str) -> Result<Project>;
    /// The project by exact name, or `NotFound`.
    async fn find_project(&self, name: &str) -> Result<Project>;
    /// All projects ordered by name.
    async fn list_projects(&self) -> Result<Vec<Project>>;
    /// Deletes the project with its role assignments and tokens. `NotFound` if missing; `Conflict` if it
    /// still owns non-deleted images.
    async fn delete_project(&self, id: &str, event: &AuditEvent) -> Result<()>;

    /// Inserts the user. `Conflict` if its id or name is taken.
    async fn create_user(&self, user: &User, event: &AuditEvent) -> Result<()>;
    /// The user by id, or `NotFound`.
    async fn get_user(&self, id: &str) -> Result<User>;
    /// The user by exact name, or `NotFound`.
    async fn find_user(&self, name: &str) -> Result<User>;
    /// All users ordered by name.
    async fn list_users(&self) -> Result<Vec<User>>;

    /// Gives `user_id` the role `role` in `project_id`, replacing any role it had there (idempotent).
    /// `NotFound` if the user or project is missing.
    async fn assign_role(&self, user_id: &str, project_id: &str, role: Role, event: &AuditEvent) -> Result<()>;
    /// The user's role in the project, if any.
    async fn role_of(&self, user_id: &str, project_id: &str) -> Result<Option<Role>>;
    /// Every (project id, role) of a user.
    async fn roles_of_user(&self, user_id: &str) -> Result<Vec<(String, Role)>>;

    /// Stores a token. `Conflict` if its id or secret hash exists.
    async fn create_token(&self, token: &Token, event: &AuditEvent) -> Result<()>;
    /// The token whose secret hashes to `secret_hash`, revoked or not, or `NotFound`.
    async fn find_token(&self, secret_hash: &str) -> Result<Token>;
    /// Marks the token revoked (idempotent). `NotFound` if no token has this id.
    async fn revoke_token(&self, id: &str, event: &AuditEvent) -> Result<()>;
    /// Whether any project exists (first-start bootstrap runs when none does).
    async fn is_empty(&self) -> Result<bool>;
}
