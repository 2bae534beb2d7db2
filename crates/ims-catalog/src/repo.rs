//! Repository traits: the only way the rest of IMS reaches the catalog.
//!
//! Every method is atomic: it either applies entirely or not at all. Methods that write take the
//! [`AuditEvent`] describing the change and store it in the same transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    AccessKey, AuditEvent, Image, ImageChange, ImageQuery, ImageStatus, Job, JobFilter, JobOutcome, Member,
    MemberStatus, OsVersion, Project, ResourceTag, Result, Role, Token, User,
};

#[async_trait]
pub trait ImageRepository: Send + Sync {
    /// Inserts `image` with its tags and properties. `Conflict` if an image with this id exists or ever
    /// existed (ids of deleted images are never reused).
    async fn create(&self, image: &Image, event: &AuditEvent) -> Result<()>;

    /// Like [`ImageRepository::create`], but only if `image.owner` owns fewer than `max_owned`
    /// non-deleted images; otherwise `LimitExceeded` and nothing is stored. The count and the insert
    /// happen in one transaction, so concurrent creations never pass the limit together.
    async fn create_within_quota(&self, image: &Image, max_owned: u64, event: &AuditEvent) -> Result<()>;

    /// The image with this id, unless it is `deleted`: then, or if it never existed, `NotFound`.
    async fn get(&self, id: Uuid) -> Result<Image>;

    /// Replaces every stored field of the image (including tags, properties, status) with `image`'s,
    /// but only if the stored status is one of `expected`; otherwise `Conflict` and nothing changes.
    /// `NotFound` if the image is missing or deleted. `image.updated_at` is stored as given.
    /// This compare-and-set on status is how state transitions stay race-free across nodes. Saving an
    /// image as `deleted` (deleted for good; binning is the recycle bin's) also removes its members.
    async fn save(&self, image: &Image, expected: &[ImageStatus], event: &AuditEvent) -> Result<()>;

    /// Like [`ImageRepository::save`], but only if afterwards the non-deleted images of `image.owner`
    /// hold at most `max_total_size` bytes in all (the sum of their `size`, this image counted with
    /// `image.size`); otherwise `LimitExceeded` and nothing changes. The sum and the write happen in
    /// one transaction serialized with every other write of this method for the same owner, so
    /// concurrent activations never pass the limit together. Status mismatch and missing image as
    /// `save` (checked first).
    async fn save_within_size_quota(
        &self,
        image: &Image,
        expected: &[ImageStatus],
        max_total_size: u64,
        event: &AuditEvent,
    ) -> Result<()>;

    /// The images matching `query`, in its sort order, at most `query.limit` of them.
    /// `Invalid` if the marker is not an image the viewer can see.
    async fn list(&self, query: &ImageQuery) -> Result<Vec<Image>>;

    /// Number of non-deleted images owned by `project` and the sum of their `size` (0 when none).
    async fn usage(&self, project: &str) -> Result<ImageUsage>;

    /// Ids of every manifest referenced by an image not deleted (binned ones included) that the default
    /// store holds (`in_default_store`), for the default store's garbage collector. In id order, without
    /// repeats. Read-only.
    async fn live_manifests(&self) -> Result<Vec<String>>;

    /// Ids of the manifests of the images an extra store `store` holds a copy of: images not deleted, or
    /// in the recycle bin, whose `extra_stores` names `store` (for that store's garbage collector). In
    /// id order, without repeats; empty for a store no image names. Read-only.
    async fn live_manifests_in_store(&self, store: &str) -> Result<Vec<String>>;
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

    /// Like [`MemberRepository::add`], but only if the image has fewer than `max_members` members;
    /// otherwise `LimitExceeded` and nothing is stored. The count and the insert happen in one
    /// transaction, so concurrent additions to one image never pass the limit together.
    async fn add_within_limit(&self, member: &Member, max_members: u64, event: &AuditEvent) -> Result<()>;

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

    /// Stores an access key. `Conflict` if its id exists; `NotFound` if its user or project is missing.
    async fn create_access_key(&self, key: &AccessKey, event: &AuditEvent) -> Result<()>;
    /// The access key with this id, revoked or not, or `NotFound`.
    async fn get_access_key(&self, id: &str) -> Result<AccessKey>;
    /// Every access key (of `user_id` when given), ordered by creation time then id.
    async fn list_access_keys(&self, user_id: Option<&str>) -> Result<Vec<AccessKey>>;
    /// Marks the key revoked (idempotent). `NotFound` if no key has this id.
    async fn revoke_access_key(&self, id: &str, event: &AuditEvent) -> Result<()>;

    /// The project's own quota for `resource`, if an admin set one.
    async fn project_quota(&self, project_id: &str, resource: &str) -> Result<Option<i64>>;
    /// Sets (`Some`) or clears (`None`: back to the default) the project's quota for `resource`
    /// (idempotent). `NotFound` if the project is missing.
    async fn set_project_quota(&self, project_id: &str, resource: &str, quota: Option<i64>, event: &AuditEvent)
        -> Result<()>;

    /// The OS versions operators added, ordered by platform then key.
    async fn list_os_versions(&self) -> Result<Vec<OsVersion>>;
    /// Adds or replaces (by key) an OS version of the catalogue.
    async fn put_os_version(&self, version: &OsVersion, event: &AuditEvent) -> Result<()>;
}

/// The IMS API's key/value tags of images.
#[async_trait]
pub trait ResourceTagRepository: Send + Sync {
    /// The image's tags ordered by key (empty for an image without tags or an unknown image).
    async fn list(&self, image_id: Uuid) -> Result<Vec<ResourceTag>>;

    /// Adds `put` (replacing the value of a key the image already has) and removes the keys `remove`
    /// (keys it does not have are ignored), in one transaction, removals first. `NotFound` if the image
    /// is missing or deleted. Returns the image's tags afterwards, ordered by key.
    async fn change(&self, image_id: Uuid, put: &[ResourceTag], remove: &[String], event: &AuditEvent)
        -> Result<Vec<ResourceTag>>;

    /// Every non-deleted image owned by `project` with its tags ordered by key (images without tags
    /// included, with none), ordered by image creation time then id.
    async fn of_project(&self, project: &str) -> Result<Vec<(Image, Vec<ResourceTag>)>>;
}

/// Durable jobs (DESIGN section 5): a queue any node's workers claim from.
///
/// Life of a job: `create` (or `create_with_image`) stores it in `INIT`; a worker `claim_next`s it
/// (`RUNNING`, held by that worker), `heartbeat`s while it works, and `finish`es it: `SUCCESS`, `FAIL`, or
/// back to `INIT` for a retry after a backoff. A running job whose holder stopped heartbeating is handed
/// back to `INIT` by `take_over_stale`, so another worker claims it. Every write is atomic; the ones that
/// act for a worker (`heartbeat`, `finish`) only apply while that worker still holds the job, so a worker
/// that was presumed dead and comes back cannot overwrite its successor's work.
#[async_trait]
pub trait JobRepository: Send + Sync {
    /// Enqueues the job as given (normally `INIT`). `Conflict` if its id exists; `NotFound` if its
    /// `parent_id` names no job.
    async fn create(&self, job: &Job, event: &AuditEvent) -> Result<()>;

    /// Enqueues the job and applies `change` to an image in one transaction: either both are stored or
    /// neither (so a job exists iff the change that asked for it does). Errors as
    /// [`JobRepository::create`] and as the image write (`Conflict` on a status mismatch or a taken id,
    /// `NotFound` for a missing image).
    async fn create_with_image(&self, job: &Job, change: ImageChange<'_>, event: &AuditEvent) -> Result<()>;

    /// The job, or `NotFound`.
    async fn get(&self, id: &str) -> Result<Job>;

    /// The jobs matching `filter`, newest first (then by id), at most `filter.limit`.
    async fn list(&self, filter: &JobFilter) -> Result<Vec<Job>>;

    /// Stores the job's status, progress, entities, error, attempts, times and `updated_at` as given
    /// (for jobs run outside the runner). `NotFound` if missing; `Conflict` (and nothing changes) if the
    /// stored status is final.
    async fn update(&self, job: &Job) -> Result<()>;

    /// Atomically claims the oldest `INIT` job whose type is one of `job_types` and whose `run_after` is
    /// unset or not after `now`: it becomes `RUNNING`, held by `worker`, with one more attempt, its
    /// heartbeat at `now` and `begin_time` set if it had none. Returns it, or `None` when no job is
    /// claimable. Two workers never claim the same job.
    async fn claim_next(&self, worker: &str, job_types: &[&str], now: DateTime<Utc>) -> Result<Option<Job>>;

    /// Records that `worker` still works on the job: heartbeat at `now`, plus the progress percent and
    /// entities when given. Returns whether a cancellation was requested. `Conflict` (and nothing
    /// changes) if the job is not `RUNNING` under `worker` any more; `NotFound` if missing.
    async fn heartbeat(
        &self,
        id: &str,
        worker: &str,
        progress: Option<f64>,
        entities: Option<&serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// Ends `worker`'s hold of the job with `outcome` (see [`JobOutcome`]) and returns the stored job.
    /// `Conflict` (and nothing changes) if the job is not `RUNNING` under `worker`; `NotFound` if missing.
    async fn finish(&self, id: &str, worker: &str, outcome: &JobOutcome, now: DateTime<Utc>) -> Result<Job>;

    /// Cancels the job and its unfinished sub-jobs: a waiting (`INIT`) one fails at once with `code` and
    /// `reason`; a running one is flagged (`cancel_requested`), and its worker fails it at its next
    /// heartbeat. Returns the job afterwards. Idempotent on a running job; `Conflict` if the job is
    /// already final; `NotFound` if missing.
    async fn request_cancel(&self, id: &str, code: &str, reason: &str, now: DateTime<Utc>) -> Result<Job>;

    /// Hands every `RUNNING` job whose heartbeat is older than `stale_before` back to `INIT` (claimable at
    /// once, attempts kept) and returns their ids. Idempotent; safe to run on every node at once.
    async fn take_over_stale(&self, stale_before: DateTime<Utc>, now: DateTime<Utc>) -> Result<Vec<String>>;
}

/// Encryption at rest: the master keys of the built-in KMS, the wrapped data key of each encryption
/// domain (one per project and master key), and the domain of each encrypted image.
#[async_trait]
pub trait EncryptionRepository: Send + Sync {
    /// Stores a new master key. `Conflict` (and nothing is stored) if its id or alias is taken.
    async fn create_key(&self, key: &crate::StoredKmsKey, event: &AuditEvent) -> Result<()>;
    /// The master key with this id, or `NotFound`.
    async fn get_key(&self, id: &str) -> Result<crate::StoredKmsKey>;
    /// Every master key, oldest first (then by id).
    async fn list_keys(&self) -> Result<Vec<crate::StoredKmsKey>>;
    /// Sets the key's state and `updated_at` (idempotent for the state) and returns the key afterwards.
    /// `NotFound` if missing.
    async fn set_key_state(
        &self,
        id: &str,
        state: crate::KeyState,
        at: chrono::DateTime<chrono::Utc>,
        event: &AuditEvent,
    ) -> Result<crate::StoredKmsKey>;

    /// Sets whether images encrypted under the key may be shared, and `updated_at` (idempotent for the
    /// flag); returns the key afterwards. `NotFound` (and nothing changes) if missing. Images already
    /// shared keep their members when the flag is cleared; new shares are refused.
    async fn set_key_shareable(
        &self,
        id: &str,
        shareable: bool,
        at: chrono::DateTime<chrono::Utc>,
        event: &AuditEvent,
    ) -> Result<crate::StoredKmsKey>;

    /// The wrapped data key of the domain (`project_id`, `key_id`), if the domain exists.
    async fn domain_key(&self, project_id: &str, key_id: &str) -> Result<Option<String>>;
    /// Creates the domain with `wrapped` as its data key unless it exists, and returns the domain's stored
    /// wrapped key: `wrapped` if this call created it, else the existing one (so concurrent creators all
    /// end up using the first key stored). A domain's key never changes once stored.
    async fn add_domain_key(
        &self,
        project_id: &str,
        key_id: &str,
        wrapped: &str,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<String>;

    /// Records (or replaces) the domain an image's data is written in. `NotFound` if the image never existed.
    async fn set_image_encryption(&self, record: &crate::ImageEncryption) -> Result<()>;
    /// The domain the image's data was written in; `None` for an image stored in plaintext.
    async fn image_encryption(&self, image_id: Uuid) -> Result<Option<crate::ImageEncryption>>;
}

/// The audit trail as a whole: events that accompany no other change, queries, and the chain check.
/// Events written with a change (the `event` argument of the other repositories' methods) are chained
/// exactly like those written by [`AuditRepository::record`].
#[async_trait]
pub trait AuditRepository: Send + Sync {
    /// Appends `event` on its own (an outcome that changes nothing else: a refused request, a job's end)
    /// and returns it as chained. Atomic; concurrent appends, from any node, get distinct consecutive
    /// positions, each linked to the one before.
    async fn record(&self, event: &AuditEvent) -> Result<crate::AuditRecord>;

    /// The chained events matching `query`, by position (oldest first unless `query.newest_first`), at
    /// most `query.limit` of them. Events of transactions not yet committed are never returned.
    async fn list(&self, query: &crate::AuditQuery) -> Result<Vec<crate::AuditRecord>>;

    /// Walks the whole chain in position order and reports the first event that does not continue it
    /// (see [`crate::audit_chain`]). Read-only; safe while events are being appended (those appended
    /// after the walk began may or may not be included).
    async fn verify(&self) -> Result<crate::ChainVerification> {
        const PAGE: u32 = 1000;
        let mut check = crate::ChainCheck::default();
        let mut marker = None;
        loop {
            let page = self.list(&crate::AuditQuery { marker, ..crate::AuditQuery::all(PAGE) }).await?;
            for record in &page {
                if !check.push(record) {
                    return Ok(check.finish());
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => marker = Some(last.position),
                _ => return Ok(check.finish()),
            }
        }
    }
}
