// The JSON APIs the console calls: the Images API v2 (/v2), the identity admin API (/identity/v1),
// the IMS API where it adds something (/v1/cloudimages/..., the recycle bin, the marketplace,
// capsules), jobs (/jobs/v1), buckets (/buckets/v1), the audit trail (/audit/v1), store statistics
// (/admin/v1) and master keys (/kms/v1). Every request
// asks for JSON (so that errors come back as {"message": ...} and not as an HTML page) and carries the
// session's credential in headers (a token, or a signature computed for that request).

import * as session from "./session.js";

export const PATCH_TYPE = "application/openstack-images-v2.1-json-patch";

/** An error answered by the server (status > 0) or a request that never got an answer (status 0). */
export class ApiError extends Error {
  constructor(status, message, detail) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

/** The message of an error body in any of the API's forms. */
export function messageOf(body, fallback) {
  if (body && typeof body === "object") {
    if (typeof body.message === "string" && body.message) return body.message;
    if (typeof body.error_msg === "string" && body.error_msg) return body.error_msg;
    if (body.error && typeof body.error.message === "string") return body.error.message;
  }
  if (typeof body === "string" && body.trim() && !body.trim().startsWith("<")) return body.trim();
  return fallback;
}

/** Plain words for an error, for people: the API's own message, with what the status means. */
export function explain(err) {
  if (!(err instanceof ApiError)) return err && err.message ? err.message : String(err);
  switch (err.status) {
    case 0:
      return "Could not reach the IMS server. Check that it is running and try again.";
    case 401:
      return `You are not signed in, or your token is no longer valid (unknown, revoked or expired). ${err.message}`;
    case 403:
      return `Not allowed: ${err.message}`;
    case 404:
      return `Not found: ${err.message}`;
    case 409:
      return `Conflict: ${err.message}`;
    case 413:
      return `Too large: ${err.message}`;
    default:
      return err.message;
  }
}

const listeners = new Set();

/** Calls `fn` when a signed-in request is refused with 401 (the token was revoked or expired). */
export function onUnauthorized(fn) {
  listeners.add(fn);
}

/**
 * Sends one request and returns the parsed JSON body (null when there is none).
 * Options: json (a body to send as JSON), body + contentType, credential (instead of the session's),
 * signal, raw (return the Response itself on success).
 */
export async function request(method, path, options = {}) {
  const cred = options.credential || session.credential();
  const headers = { Accept: "application/json" };
  let body;
  let contentType;
  if (options.json !== undefined) {
    contentType = options.contentType || "application/json";
    body = JSON.stringify(options.json);
  } else if (options.body !== undefined) {
    body = options.body;
    contentType = options.contentType;
  }
  if (contentType) headers["Content-Type"] = contentType;
  Object.assign(headers, await session.authHeaders(cred, { method, url: path, body, contentType }));
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal: options.signal, credentials: "omit", cache: "no-store" });
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiError(0, "The server could not be reached.", e);
  }
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    const err = new ApiError(response.status, messageOf(parsed, `${response.status} ${response.statusText}`), parsed);
    if (response.status === 401 && !options.credential) listeners.forEach((fn) => fn(err));
    throw err;
  }
  if (options.raw) return response;
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

const enc = encodeURIComponent;

// --- identity ---------------------------------------------------------------------------------

export const whoami = (credential) => request("GET", "/identity/v1/auth", { credential });
export const listProjects = () => request("GET", "/identity/v1/projects").then((d) => d.projects);
export const createProject = (name) => request("POST", "/identity/v1/projects", { json: { name } }).then((d) => d.project);
export const deleteProject = (id) => request("DELETE", `/identity/v1/projects/${enc(id)}`);
export const listUsers = () => request("GET", "/identity/v1/users").then((d) => d.users);
export const createUser = (name, project, role) => request("POST", "/identity/v1/users", { json: { name, project, role } });
export const createToken = (user, project) => request("POST", "/identity/v1/tokens", { json: { user, project } }).then((d) => d.token);
export const revokeToken = (id) => request("DELETE", `/identity/v1/tokens/${enc(id)}`);
export const listAccessKeys = () => request("GET", "/identity/v1/access-keys").then((d) => d.access_keys);
export const createAccessKey = (user, project, description) =>
  request("POST", "/identity/v1/access-keys", { json: { user, project: project || undefined, description: description || undefined } }).then(
    (d) => d.access_key,
  );
export const revokeAccessKey = (access) => request("DELETE", `/identity/v1/access-keys/${enc(access)}`);
/** A project by id or name, for any signed-in caller (Glance's tenant lookup). */
export const lookupProject = (idOrName) => request("GET", `/v2/tenants/${enc(idOrName)}`).then((d) => d.tenant);

// --- images -----------------------------------------------------------------------------------

/** A page of images: `query` is an object of list parameters, or a `next` link from a previous page. */
export function listImages(query) {
  if (typeof query === "string") return request("GET", query);
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === "") continue;
    for (const item of Array.isArray(v) ? v : [v]) params.append(k, item);
  }
  const qs = params.toString();
  return request("GET", qs ? `/v2/images?${qs}` : "/v2/images");
}

export const getImage = (id) => request("GET", `/v2/images/${enc(id)}`);
export const createImage = (fields) => request("POST", "/v2/images", { json: fields });
export const patchImage = (id, ops) => request("PATCH", `/v2/images/${enc(id)}`, { json: ops, contentType: PATCH_TYPE });
export const deleteImage = (id) => request("DELETE", `/v2/images/${enc(id)}`);
export const addTag = (id, tag) => request("PUT", `/v2/images/${enc(id)}/tags/${enc(tag)}`);
export const removeTag = (id, tag) => request("DELETE", `/v2/images/${enc(id)}/tags/${enc(tag)}`);
export const deactivate = (id) => request("POST", `/v2/images/${enc(id)}/actions/deactivate`);
export const reactivate = (id) => request("POST", `/v2/images/${enc(id)}/actions/reactivate`);
export const listMembers = (id) => request("GET", `/v2/images/${enc(id)}/members`).then((d) => d.members);
export const getMember = (id, member) => request("GET", `/v2/images/${enc(id)}/members/${enc(member)}`);
export const addMember = (id, member) => request("POST", `/v2/images/${enc(id)}/members`, { json: { member } });
export const removeMember = (id, member) => request("DELETE", `/v2/images/${enc(id)}/members/${enc(member)}`);
export const setMemberStatus = (id, member, status) =>
  request("PUT", `/v2/images/${enc(id)}/members/${enc(member)}`, { json: { status } });
export const usage = () => request("GET", "/v2/info/usage").then((d) => d.usage);
export const stores = () => request("GET", "/v2/info/stores").then((d) => d.stores);
/** The project's private-image quota from the IMS API ({type, used, quota, min, max}). */
export const imageQuota = () =>
  request("GET", "/v1/cloudimages/quota").then((d) => (d.quotas.resources || []).find((r) => r.type === "image") || null);

/** A fetch of the image's file (the caller reads the body as a stream). */
export const fetchImageFile = (id, signal) => request("GET", `/v2/images/${enc(id)}/file`, { raw: true, signal });

/**
 * The headers a streamed upload of `size` bytes made outside `request` (with XMLHttpRequest) must
 * carry, Content-Type included.
 */
export async function uploadHeaders(method, url, size) {
  const contentType = "application/octet-stream";
  const auth = await session.authHeaders(session.credential(), { method, url, contentType, unsignedPayload: true, size });
  return { Accept: "application/json", "Content-Type": contentType, ...auth };
}

const projectNames = new Map();

/** The name of project `id` (looked up once per page load), or null when it cannot be found. */
export function projectName(id) {
  if (!id) return Promise.resolve(null);
  if (!projectNames.has(id)) projectNames.set(id, lookupProject(id).then((t) => t.name).catch(() => null));
  return projectNames.get(id);
}

// --- IMS image actions, jobs ------------------------------------------------------------------

/** ExportImage: the image written as `fileFormat` into `bucket:key`; resolves to the job id. */
export const exportImage = (id, bucketUrl, fileFormat) =>
  request("POST", `/v1/cloudimages/${enc(id)}/file`, { json: { bucket_url: bucketUrl, file_format: fileFormat } }).then((d) => d.job_id);
/** CopyImageInRegion; resolves to the job id. */
export const copyImage = (id, name, description, cmkId) =>
  request("POST", `/v1/cloudimages/${enc(id)}/copy`, { json: { name, description: description || undefined, cmk_id: cmkId || undefined } }).then((d) => d.job_id);
/** The regions images can be copied to (names). */
export const listRegions = () => request("GET", "/v1/cloudimages/regions").then((d) => d.regions.map((r) => r.name));
/** CopyImageCrossRegion; `projectName` empty keeps the caller's project name; resolves to the job id. */
export const copyImageToRegion = (id, region, name, description, projectName) =>
  request("POST", `/v1/cloudimages/${enc(id)}/cross_region_copy`, {
    json: { region, name, description: description || undefined, project_name: projectName || undefined },
  }).then((d) => d.job_id);
/** CreateImage from a bucket file (`image_url` is `bucket:key`); resolves to the job id. */
export const importImage = (fields) => request("POST", "/v2/cloudimages/action", { json: fields }).then((d) => d.job_id);
export const listFavorites = () => request("GET", "/v1/cloudimages/favorites").then((d) => d.favorites);
export const addFavorite = (id) => request("POST", "/v1/cloudimages/favorites", { json: { image_id: id } });
export const removeFavorite = (id) => request("DELETE", `/v1/cloudimages/favorites/${enc(id)}`);

// --- recycle bin, lineage, marketplace, capsules ---------------------------------------------------------------------

/**
 * A page of the project's binned images (every project's for an administrator asking `allProjects`),
 * oldest binned first, after `marker`, at most `limit`: `{images, next_marker}` (`next_marker` when the
 * page is full).
 */
export const listBin = ({ allProjects, marker, limit } = {}) =>
  request("GET", `/v1/recycle-bin/images${queryString({ all_projects: allProjects ? "true" : "", marker, limit })}`);
/** Brings a binned image back (same id, data and checksums); resolves to its IMS record. */
export const restoreImage = (id) => request("POST", `/v1/recycle-bin/images/${enc(id)}/restore`);
/** Purges a binned image for good. */
export const purgeImage = (id) => request("DELETE", `/v1/recycle-bin/images/${enc(id)}`);
/** The image's ancestry: `{image_id, ancestry: [link], complete, stopped}`, the image first. */
export const ancestry = (id) => request("GET", `/v1/cloudimages/${enc(id)}/ancestry`);

/** Marketplace listings (`scope`: on_shelf, published, subscribed or all), each with its image. */
export const listListings = (scope) => request("GET", `/v1/marketplace/listings${queryString({ scope })}`).then((d) => d.listings);
/** Subscribes the project to a listing (the image becomes readable); resolves to the subscription. */
export const subscribeListing = (id) => request("POST", `/v1/marketplace/listings/${enc(id)}/subscriptions`).then((d) => d.subscription);

/** The first page (up to 100) of the capsules the project can see, newest first. */
export const listCapsules = () => request("GET", "/v1/capsules?limit=100").then((d) => d.capsules);
/** A capsule with its parts: `{image, base_image, app_images, user_data}`. */
export const getCapsule = (id) => request("GET", `/v1/capsules/${enc(id)}`).then((d) => d.capsule);

/** Creates a capsule `{name, base_image_id, app_image_ids, user_data (base64)?}`; resolves to `{image, base_image, app_images, user_data}`. */
export const createCapsule = (fields) => request("POST", "/v1/capsules", { json: fields }).then((d) => d.capsule);

// --- compute: servers and volumes ----------------------------------------------------------------

/** The project's servers (every project's for an administrator asking `allProjects`), oldest first. */
export const listServers = (allProjects) => request("GET", `/compute/v1/servers${queryString({ all_projects: allProjects ? "true" : "" })}`).then((d) => d.servers);
/** A server with its volumes. */
export const getServer = (id) => request("GET", `/compute/v1/servers/${enc(id)}`).then((d) => d.server);
/** Creates a server (`{name, type, vcpus, ram_mb, image_id | capsule_id, system_volume_size?, data_volumes?}`); resolves to it with its volumes. */
export const createServer = (fields) => request("POST", "/compute/v1/servers", { json: { server: fields } }).then((d) => d.server);
/** Deletes a server and, unless `keepVolumes`, its volumes. */
export const deleteServer = (id, keepVolumes) => request("DELETE", `/compute/v1/servers/${enc(id)}${queryString({ keep_volumes: keepVolumes ? "true" : "" })}`);
/** The project's volumes, or those of one server. */
export const listVolumes = (serverId) => request("GET", `/compute/v1/volumes${queryString({ server_id: serverId })}`).then((d) => d.volumes);
/** CreateImage from a server: a system disk image of its system volume; resolves to the job id. */
export const imageFromServer = (serverId, name, description) =>
  request("POST", "/v2/cloudimages/action", { json: { name, instance_id: serverId, description: description || undefined } }).then((d) => d.job_id);
/** CreateWholeImage from a server: every disk; resolves to the job id. */
export const wholeImageFromServer = (serverId, name, description) =>
  request("POST", "/v1/cloudimages/wholeimages/action", { json: { name, instance_id: serverId, description: description || undefined } }).then((d) => d.job_id);

export const listJobs = (query = {}) => request("GET", `/jobs/v1${queryString(query)}`).then((d) => d.jobs);
export const getJob = (id) => request("GET", `/jobs/v1/${enc(id)}`).then((d) => d.job);
export const cancelJob = (id) => request("POST", `/jobs/v1/${enc(id)}/cancel`).then((d) => d.job);

// --- buckets ------------------------------------------------------------------------------------

export const listBuckets = () => request("GET", "/buckets/v1").then((d) => d.buckets);
export const createBucket = (name) => request("PUT", `/buckets/v1/${enc(name)}`).then((d) => d.bucket);
export const listObjects = (bucket, prefix) => request("GET", `/buckets/v1/${enc(bucket)}/objects${queryString({ prefix })}`).then((d) => d.objects);
export const deleteObject = (bucket, key) => request("DELETE", objectPath(bucket, key));
/** The path of an object: each segment of the key encoded, its slashes kept. */
export const objectPath = (bucket, key) => `/buckets/v1/${enc(bucket)}/objects/${key.split("/").map(enc).join("/")}`;

// --- administration: audit, store, keys ----------------------------------------------------------

/** A page of audit events: `query` an object of filters, or a `next` link. */
export const listAuditEvents = (query) => request("GET", typeof query === "string" ? query : `/audit/v1/events${queryString(query)}`);
export const storeStats = () => request("GET", "/admin/v1/store/stats");
export const listKeys = () => request("GET", "/kms/v1/keys").then((d) => d.keys);
export const createKey = (alias, description) => request("POST", "/kms/v1/keys", { json: { alias, description: description || undefined } }).then((d) => d.key);
export const setKeyEnabled = (id, enabled) => request("POST", `/kms/v1/keys/${enc(id)}/${enabled ? "enable" : "disable"}`).then((d) => d.key);

/** `?a=1&b=2` from an object (empty values left out), or "" when nothing is left. */
export function queryString(query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") params.append(k, v);
  const qs = params.toString();
  return qs ? `?${qs}` : "";
}
