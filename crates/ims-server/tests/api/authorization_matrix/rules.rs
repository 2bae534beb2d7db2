//! Expected outcomes of calls on one image, per kind of image (rows, in `VARIANTS` order) and principal
//! (columns, in `PRINCIPALS` order). Every image is owned by project A; B is the share member and the
//! marketplace subscriber.

/// One line per variant: `anonymous reader member owner other admin`.
pub type ImageRule = [&'static str; 9];

/// Reading the record (and what anyone who sees it may read: tasks, tags, ancestry, members list):
/// visibility, membership in any status and subscription decide; a deleted image is gone for everyone.
pub const SHOW: ImageRule = [
    "401 2xx 2xx 2xx 404 2xx", // private
    "401 2xx 2xx 2xx 2xx 2xx", // public
    "401 2xx 2xx 2xx 2xx 2xx", // community
    "401 2xx 2xx 2xx 2xx 2xx", // shared, pending
    "401 2xx 2xx 2xx 2xx 2xx", // shared, accepted
    "401 2xx 2xx 2xx 2xx 2xx", // shared, rejected
    "401 2xx 2xx 2xx 2xx 2xx", // marketplace
    "401 2xx 2xx 2xx 404 2xx", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Reading the data: like `SHOW`, but a deactivated image's data is for admins only.
pub const DOWNLOAD: ImageRule = [
    "401 2xx 2xx 2xx 404 2xx", // private
    "401 2xx 2xx 2xx 2xx 2xx", // public
    "401 2xx 2xx 2xx 2xx 2xx", // community
    "401 2xx 2xx 2xx 2xx 2xx", // shared, pending
    "401 2xx 2xx 2xx 2xx 2xx", // shared, accepted
    "401 2xx 2xx 2xx 2xx 2xx", // shared, rejected
    "401 2xx 2xx 2xx 2xx 2xx", // marketplace
    "401 403 403 403 404 2xx", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Changing metadata or tags, deactivating or reactivating (a no-op when the image is in that state
/// already), or deleting: the owner project with a writing role, or an admin; a visible image of another
/// project is 403, a hidden one 404.
pub const MODIFY: ImageRule = [
    "401 403 2xx 2xx 404 2xx", // private
    "401 403 2xx 2xx 403 2xx", // public
    "401 403 2xx 2xx 403 2xx", // community
    "401 403 2xx 2xx 403 2xx", // shared, pending
    "401 403 2xx 2xx 403 2xx", // shared, accepted
    "401 403 2xx 2xx 403 2xx", // shared, rejected
    "401 403 2xx 2xx 403 2xx", // marketplace
    "401 403 2xx 2xx 404 2xx", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Copying into the caller's project (in this region or to another): the owner project's writers and
/// admins, and marketplace subscribers; only active images (409 otherwise).
pub const COPY: ImageRule = [
    "401 403 2xx 2xx 404 2xx", // private
    "401 403 2xx 2xx 403 2xx", // public
    "401 403 2xx 2xx 403 2xx", // community
    "401 403 2xx 2xx 403 2xx", // shared, pending
    "401 403 2xx 2xx 403 2xx", // shared, accepted
    "401 403 2xx 2xx 403 2xx", // shared, rejected
    "401 403 2xx 2xx 2xx 2xx", // marketplace
    "401 403 409 409 404 409", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Writing data into an image that already has it: refused by policy first (403/404), then by state (409).
pub const WRITE_DATA: ImageRule = [
    "401 403 409 409 404 409", // private
    "401 403 409 409 403 409", // public
    "401 403 409 409 403 409", // community
    "401 403 409 409 403 409", // shared, pending
    "401 403 409 409 403 409", // shared, accepted
    "401 403 409 409 403 409", // shared, rejected
    "401 403 409 409 403 409", // marketplace
    "401 403 409 409 404 409", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Adding a member: the owner or an admin, and only to shared images.
pub const ADD_MEMBER: ImageRule = [
    "401 403 403 403 404 403", // private
    "401 403 403 403 403 403", // public
    "401 403 403 403 403 403", // community
    "401 403 2xx 2xx 403 2xx", // shared, pending
    "401 403 2xx 2xx 403 2xx", // shared, accepted
    "401 403 2xx 2xx 403 2xx", // shared, rejected
    "401 403 403 403 403 403", // marketplace
    "401 403 403 403 404 403", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Showing B's membership: the owner project, B and admins, where B is a member.
pub const SHOW_MEMBER: ImageRule = [
    "401 404 404 404 404 404", // private
    "401 404 404 404 404 404", // public
    "401 404 404 404 404 404", // community
    "401 2xx 2xx 2xx 2xx 2xx", // shared, pending
    "401 2xx 2xx 2xx 2xx 2xx", // shared, accepted
    "401 2xx 2xx 2xx 2xx 2xx", // shared, rejected
    "401 404 404 404 404 404", // marketplace
    "401 404 404 404 404 404", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Answering B's share: B itself with a writing role, nobody else (not even an admin).
pub const ANSWER_SHARE: ImageRule = [
    "401 404 404 404 404 404", // private
    "401 404 404 404 404 404", // public
    "401 404 404 404 404 404", // community
    "401 403 403 403 2xx 403", // shared, pending
    "401 403 403 403 2xx 403", // shared, accepted
    "401 403 403 403 2xx 403", // shared, rejected
    "401 404 404 404 404 404", // marketplace
    "401 404 404 404 404 404", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Removing B's membership: the owner or an admin.
pub const REMOVE_MEMBER: ImageRule = [
    "401 403 404 404 404 404", // private
    "401 403 404 404 403 404", // public
    "401 403 404 404 403 404", // community
    "401 403 2xx 2xx 403 2xx", // shared, pending
    "401 403 2xx 2xx 403 2xx", // shared, accepted
    "401 403 2xx 2xx 403 2xx", // shared, rejected
    "401 403 404 404 403 404", // marketplace
    "401 403 404 404 404 404", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// The recycle bin, reading: the owner project and admins see their deleted images; nothing else is in it.
pub const BIN_SHOW: ImageRule = [
    "401 404 404 404 404 404", // private
    "401 404 404 404 404 404", // public
    "401 404 404 404 404 404", // community
    "401 404 404 404 404 404", // shared, pending
    "401 404 404 404 404 404", // shared, accepted
    "401 404 404 404 404 404", // shared, rejected
    "401 404 404 404 404 404", // marketplace
    "401 404 404 404 404 404", // deactivated
    "401 2xx 2xx 2xx 404 2xx", // deleted
];

/// The recycle bin, restoring or purging: the owner project with a writing role, and admins.
pub const BIN_CHANGE: ImageRule = [
    "401 404 404 404 404 404", // private
    "401 404 404 404 404 404", // public
    "401 404 404 404 404 404", // community
    "401 404 404 404 404 404", // shared, pending
    "401 404 404 404 404 404", // shared, accepted
    "401 404 404 404 404 404", // shared, rejected
    "401 404 404 404 404 404", // marketplace
    "401 404 404 404 404 404", // deactivated
    "401 403 2xx 2xx 404 2xx", // deleted
];

/// Removing an image's copy from one store: the owner project's writers and admins; the only copy of an
/// image stays (409).
pub const STORE_DELETE: ImageRule = [
    "401 403 409 409 404 409", // private
    "401 403 409 409 403 409", // public
    "401 403 409 409 403 409", // community
    "401 403 409 409 403 409", // shared, pending
    "401 403 409 409 403 409", // shared, accepted
    "401 403 409 409 403 409", // shared, rejected
    "401 403 409 409 403 409", // marketplace
    "401 403 409 409 404 409", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Exporting into a bucket of project A: like `COPY`; a subscriber in B may export, but not into A's
/// bucket, which it cannot see.
pub const EXPORT: ImageRule = [
    "401 403 2xx 2xx 404 2xx", // private
    "401 403 2xx 2xx 403 2xx", // public
    "401 403 2xx 2xx 403 2xx", // community
    "401 403 2xx 2xx 403 2xx", // shared, pending
    "401 403 2xx 2xx 403 2xx", // shared, accepted
    "401 403 2xx 2xx 403 2xx", // shared, rejected
    "401 403 2xx 2xx 404 2xx", // marketplace
    "401 403 409 409 404 409", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Minting an NBD export of the guest disk: who may download the image, and only while it is active.
pub const NBD_EXPORT: ImageRule = [
    "401 2xx 2xx 2xx 404 2xx", // private
    "401 2xx 2xx 2xx 2xx 2xx", // public
    "401 2xx 2xx 2xx 2xx 2xx", // community
    "401 2xx 2xx 2xx 2xx 2xx", // shared, pending
    "401 2xx 2xx 2xx 2xx 2xx", // shared, accepted
    "401 2xx 2xx 2xx 2xx 2xx", // shared, rejected
    "401 2xx 2xx 2xx 2xx 2xx", // marketplace
    "401 403 403 403 404 409", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Revoking an export name that was never minted: 404 for whoever may download the image.
pub const NBD_REVOKE_UNKNOWN: ImageRule = [
    "401 404 404 404 404 404", // private
    "401 404 404 404 404 404", // public
    "401 404 404 404 404 404", // community
    "401 404 404 404 404 404", // shared, pending
    "401 404 404 404 404 404", // shared, accepted
    "401 404 404 404 404 404", // shared, rejected
    "401 404 404 404 404 404", // marketplace
    "401 403 403 403 404 404", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Removing a favourite (each caller added the image before, where it could).
pub const UNFAVOURITE: ImageRule = SHOW;

/// Listing an image on the marketplace: the owner project's writers or an admin, active images only, once.
pub const PUBLISH: ImageRule = [
    "401 403 2xx 2xx 404 2xx", // private
    "401 403 2xx 2xx 403 2xx", // public
    "401 403 2xx 2xx 403 2xx", // community
    "401 403 2xx 2xx 403 2xx", // shared, pending
    "401 403 2xx 2xx 403 2xx", // shared, accepted
    "401 403 2xx 2xx 403 2xx", // shared, rejected
    "401 403 409 409 403 409", // marketplace
    "401 403 400 400 404 400", // deactivated
    "401 404 404 404 404 404", // deleted
];

/// Listing the stores that hold an image (its locations): admins only, refused before any lookup.
pub const LOCATIONS_LIST: ImageRule = [
    "401 403 403 403 403 2xx", // private
    "401 403 403 403 403 2xx", // public
    "401 403 403 403 403 2xx", // community
    "401 403 403 403 403 2xx", // shared, pending
    "401 403 403 403 403 2xx", // shared, accepted
    "401 403 403 403 403 2xx", // shared, rejected
    "401 403 403 403 403 2xx", // marketplace
    "401 403 403 403 403 2xx", // deactivated
    "401 403 403 403 403 404", // deleted
];

/// IMS batch share changes (`/v1/cloudimages/members`) answer with a job: the call is refused (403/404)
/// when the caller may not change the image; the shared-only and membership rules fail the job instead.
pub const BATCH_SHARE: ImageRule = MODIFY;

/// IMS batch answers to shares: refused unless the caller's project is the member named in the body.
pub const BATCH_ANSWER: ImageRule = [
    "401 403 403 403 404 403", // private
    "401 403 403 403 404 403", // public
    "401 403 403 403 404 403", // community
    "401 403 403 403 2xx 403", // shared, pending
    "401 403 403 403 2xx 403", // shared, accepted
    "401 403 403 403 2xx 403", // shared, rejected
    "401 403 403 403 404 403", // marketplace
    "401 403 403 403 404 403", // deactivated
    "401 403 403 403 404 403", // deleted
];
