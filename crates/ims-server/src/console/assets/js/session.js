// The signed-in session: the credential (kept in sessionStorage, so it lives as long as the tab and
// never appears in a URL) and who it stands for (from GET /identity/v1/auth).
//
// A credential is an object with a `kind` and what that kind needs. Only bearer tokens exist now
// ({kind: "token", token}); access keys (AK/SK, signed requests) will be another kind whose
// `authHeaders` signs the request instead of naming a token.

const KEY = "ims.console.credential";

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
}

/** Forgets the credential. */
export function signOut() {
  sessionStorage.removeItem(KEY);
  whoami = null;
}

/** Who the session stands for ({user, project, role, is_admin}), once known. */
export function who() {
  return whoami;
}

export function setWho(who) {
  whoami = who;
}

/** The headers that authenticate a request made with `cred`. */
export function authHeaders(cred) {
  if (!cred) return {};
  switch (cred.kind) {
    case "token":
      return { "X-Auth-Token": cred.token };
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
