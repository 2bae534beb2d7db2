// The console's shell: session start-up, the navigation bar and the hash router.
//
// Routes live after the `#` (`#/images?tab=private`, `#/images/<id>`, ...) so that the server
// serves one page for all of them. The credential is never part of a route.

import * as api from "./api.js";
import * as session from "./session.js";
import { h, replace } from "./dom.js";
import { renderSignIn } from "./views/signin.js";
import { renderImages } from "./views/images.js";
import { renderImage } from "./views/image.js";
import { renderCreate } from "./views/create.js";
import { renderUsage } from "./views/usage.js";
import { renderAdmin } from "./views/admin.js";
import { renderJobs, renderJob } from "./views/jobs.js";
import { renderBuckets, renderBucket } from "./views/buckets.js";
import { renderSwitchProject } from "./views/switch-project.js";
import { renderAudit } from "./views/audit.js";
import { renderStoreStats } from "./views/store-stats.js";
import { renderKeys } from "./views/keys.js";
import { renderRecycleBin } from "./views/recycle-bin.js";
import { renderServers, renderServer } from "./views/servers.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const who = document.getElementById("who");

/** Every page: its pattern, what it renders, whether only admins see it. */
const ROUTES = [
  { pattern: /^\/signin$/, render: renderSignIn, title: "Sign in", open: true },
  { pattern: /^\/images$/, render: renderImages, title: "Images", nav: "images" },
  { pattern: /^\/images\/([^/]+)$/, render: renderImage, title: "Image", nav: "images" },
  { pattern: /^\/create$/, render: renderCreate, title: "Create image", nav: "create" },
  { pattern: /^\/usage$/, render: renderUsage, title: "Quotas and usage", nav: "usage" },
  { pattern: /^\/jobs$/, render: renderJobs, title: "Jobs", nav: "jobs" },
  { pattern: /^\/jobs\/([^/]+)$/, render: renderJob, title: "Job", nav: "jobs" },
  { pattern: /^\/buckets$/, render: renderBuckets, title: "Buckets", nav: "buckets" },
  { pattern: /^\/buckets\/([^/]+)$/, render: renderBucket, title: "Bucket", nav: "buckets" },
  { pattern: /^\/recycle-bin$/, render: renderRecycleBin, title: "Recycle bin", nav: "recycle-bin" },
  { pattern: /^\/switch-project$/, render: renderSwitchProject, title: "Switch project" },
  { pattern: /^\/admin\/(projects|users|tokens|access-keys)$/, render: renderAdmin, title: "Administration", nav: "admin", admin: true },
  { pattern: /^\/admin\/audit$/, render: renderAudit, title: "Audit trail", nav: "admin", admin: true },
  { pattern: /^\/admin\/store$/, render: renderStoreStats, title: "Store statistics", nav: "admin", admin: true },
  { pattern: /^\/admin\/keys$/, render: renderKeys, title: "Master keys", nav: "admin", admin: true },
  { pattern: /^\/servers$/, render: renderServers, title: "Servers", nav: "servers" },
  { pattern: /^\/servers\/([^/]+)$/, render: renderServer, title: "Server", nav: "servers" },
];

const NAV = [
  { id: "images", href: "#/images", label: "Images" },
  { id: "create", href: "#/create", label: "Create image" },
  { id: "jobs", href: "#/jobs", label: "Jobs" },
  { id: "buckets", href: "#/buckets", label: "Buckets" },
  { id: "servers", href: "#/servers", label: "Servers" },
  { id: "recycle-bin", href: "#/recycle-bin", label: "Recycle bin" },
  { id: "usage", href: "#/usage", label: "Quotas & usage" },
  { id: "admin", href: "#/admin/projects", label: "Administration", admin: true },
];

/** The current route: path and query of the hash. */
export function currentRoute() {
  const raw = location.hash.startsWith("#/") ? location.hash.slice(1) : "/images";
  const q = raw.indexOf("?");
  return { path: q < 0 ? raw : raw.slice(0, q), query: new URLSearchParams(q < 0 ? "" : raw.slice(q + 1)) };
}

/** Goes to `path` (with an optional query object), adding a history entry. */
export function navigate(path, query) {
  const qs = query ? new URLSearchParams(Object.entries(query).filter(([, v]) => v !== "" && v !== undefined && v !== null)).toString() : "";
  const hash = `#${path}${qs ? `?${qs}` : ""}`;
  if (location.hash === hash) render();
  else location.hash = hash;
}

let renderSeq = 0;
let pageAbort = null;

async function render() {
  const seq = ++renderSeq;
  if (pageAbort) pageAbort.abort();
  pageAbort = new AbortController();
  const route = currentRoute();
  const match = ROUTES.map((r) => [r, route.path.match(r.pattern)]).find(([, m]) => m);
  if (!session.credential() && !(match && match[0].open)) {
    const back = location.hash && location.hash !== "#/signin" ? location.hash : "";
    if (back) sessionStorage.setItem("ims.console.after-signin", back);
    location.replace("#/signin");
    return;
  }
  if (session.credential() && !session.who()) {
    try {
      session.setWho(await api.whoami());
    } catch (e) {
      if (seq !== renderSeq) return;
      if (e.status === 401) {
        session.signOut();
        location.replace("#/signin");
        return;
      }
      replace(main, h("h1", { tabindex: "-1", text: "IMS console" }), h("div", { class: "msg msg-error", role: "alert", text: api.explain(e) }));
      return;
    }
  }
  if (seq !== renderSeq) return;
  drawChrome(match && match[0]);
  if (!match) {
    replace(main, h("h1", { tabindex: "-1", text: "Page not found" }), h("p", {}, "There is no console page here. ", h("a", { href: "#/images", text: "Go to the images" }), "."));
    focusHeading();
    return;
  }
  const [r, m] = match;
  if (r.admin && !session.isAdmin()) {
    replace(main, h("h1", { tabindex: "-1", text: "Administrators only" }), h("p", { text: "This page is for administrators of IMS." }));
    focusHeading();
    return;
  }
  document.title = `${r.title} · IMS console`;
  // Re-rendering the same page (after a save, or a change of filters) keeps the keyboard's place.
  const focusedId = route.path === lastPath && main.contains(document.activeElement) ? document.activeElement.id : null;
  main.setAttribute("aria-busy", "true");
  try {
    await r.render(main, { params: m.slice(1), query: route.query, signal: pageAbort.signal, navigate });
  } catch (e) {
    if (e && e.name === "AbortError") return;
    if (seq !== renderSeq) return;
    replace(main, h("h1", { tabindex: "-1", text: r.title }), h("div", { class: "msg msg-error", role: "alert", text: api.explain(e) }));
  } finally {
    if (seq === renderSeq) main.removeAttribute("aria-busy");
  }
  if (seq !== renderSeq) return;
  const again = focusedId && document.getElementById(focusedId);
  if (again && !again.disabled) again.focus();
  else focusHeading();
}

let lastPath = null;

/**
 * Moves focus to the page heading after a change of page inside the console (not after a change of
 * filters, and not on the first load, where the browser starts at the top of the page).
 */
function focusHeading() {
  const path = currentRoute().path;
  if (path === lastPath) return;
  const first = lastPath === null;
  lastPath = path;
  if (first) return; // a page load: focus starts at the top, as on any page
  const active = document.activeElement;
  if (active && active !== main && main.contains(active) && active.tagName !== "H1") return; // the page chose
  const h1 = main.querySelector("h1");
  if (h1) {
    h1.setAttribute("tabindex", "-1");
    h1.focus({ preventScroll: false });
  }
}

function drawChrome(route) {
  const me = session.who();
  const signedIn = Boolean(session.credential() && me);
  document.body.classList.toggle("signed-in", signedIn);
  if (!signedIn) {
    replace(nav);
    replace(who);
    return;
  }
  replace(
    nav,
    h(
      "ul",
      {},
      NAV.filter((n) => !n.admin || session.isAdmin()).map((n) =>
        h("li", {}, h("a", { href: n.href, "aria-current": route && route.nav === n.id ? "page" : null, text: n.label, id: `nav-${n.id}` })),
      ),
    ),
  );
  replace(
    who,
    h(
      "span",
      { class: "who-text", id: "whoami" },
      h("span", { class: "who-user", text: me.user.name }),
      h("span", { class: "who-in", text: " in" }),
      " project ",
      h("strong", { class: "who-project", id: "project-name", title: `Project ID ${me.project.id}`, text: me.project.name }),
      h("span", { class: `badge role-${me.role}`, text: me.role }),
      session.credential().kind === "access-key" ? h("span", { class: "who-key", text: " · access key" }) : null,
    ),
    // A token belongs to one project; an access key's user may work in several.
    session.credential().kind === "access-key" ? h("a", { class: "btn btn-small", href: "#/switch-project", id: "switch-project", text: "Switch project" }) : null,
    h("button", { type: "button", class: "btn btn-small", id: "sign-out", onclick: signOut, text: "Sign out" }),
  );
}

function signOut() {
  session.signOut();
  lastPath = null;
  location.hash = "#/signin";
}

api.onUnauthorized(() => {
  if (!session.credential()) return;
  session.signOut();
  sessionStorage.setItem("ims.console.signin-reason", "Your session ended: the token or access key is no longer accepted (revoked or expired). Sign in again.");
  location.replace("#/signin");
});

document.getElementById("skip-link").addEventListener("click", (e) => {
  e.preventDefault();
  main.setAttribute("tabindex", "-1");
  main.focus();
});

window.addEventListener("hashchange", render);
render();
