// The signed-in session: the credential (kept in sessionStorage, so it lives as long as the tab and
// never appears in a URL) and who it stands for (from GET /identity/v1/auth).
//
// A credential is an object with a `kind`:
// - {kind: "token", token}: sent as X-Auth-Token;
// - {kind: "access-key", access, secret, project}: every request signed with SDK-HMAC-SHA256
//   (js/signer.js); `project` (an ID, or null for the key's own) goes in X-Project-Id.

import { signRequest } from "./signer.js";

const KEY = "ims.console.credential";
const PROJECTS_KEY = "ims.console.projects";

let whoami = null;

/** The stored credential, or null. */
export function credential() {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

/** Stores a credential and who it is, after the server accepted it. */
export function signIn(cred, who) {
  sessionStorage.setItem(KEY, JSON.stringify(cred));
  whoami = who;
  if (cred.kind === "access-key") rememberProject(who.project);
}

/** Forgets the credential and the projects seen with it. */
export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(PROJECTS_KEY);
  whoami = null;
}

/** Who the session stands for ({user, project, role, is_admin}), once known. */
export function who() {
  return whoami;
}

export function setWho(who) {
  whoami = who;
}

/**
 * The headers that authenticate one request made with `cred`. `req`: {method, url, body (a
 * string or undefined), contentType, unsignedPayload, size} (see signer.js). A promise: signing
 * hashes with WebCrypto.
 */
export async function authHeaders(cred, req = {}) {
  if (!cred) return {};
  switch (cred.kind) {
    case "token":
      return { "X-Auth-Token": cred.token };
    case "access-key": {
      const signed = {};
      if (req.contentType) signed["content-type"] = req.contentType;
      if (cred.project) signed["x-project-id"] = cred.project;
      const headers = await signRequest({ access: cred.access, secret: cred.secret, method: req.method || "GET", url: req.url || "/", body: req.body, unsignedPayload: req.unsignedPayload, size: req.size, headers: signed });
      if (cred.project) headers["X-Project-Id"] = cred.project;
      return headers;
    }
    default:
      return {};
  }
}

export function isAdmin() {
  return Boolean(whoami && whoami.is_admin);
}

export function projectId() {
  return whoami ? whoami.project.id : null;
}

/** Projects this tab's access key was used in ({id, name}), for the project switcher. */
export function knownProjects() {
  try {
    return JSON.parse(sessionStorage.getItem(PROJECTS_KEY) || "[]");
  } catch {
    return [];
  }
}

export function rememberProject(project) {
  const list = knownProjects().filter((p) => p.id !== project.id);
  list.push({ id: project.id, name: project.name });
  list.sort((a, b) => a.name.localeCompare(b.name));
  sessionStorage.setItem(PROJECTS_KEY, JSON.stringify(list));
}
