// Administration → Audit trail (/audit/v1/events): search with filters (time range, project, user,
// action, resource, result), newest or oldest first, and marker paging. The filters and the page's
// marker are in the address, like the image lists.

import * as api from "../api.js";
import * as fmt from "../format.js";
import { field, h, replace, select } from "../dom.js";
import { adminPage } from "./admin.js";

const FILTERS = ["since", "until", "project_id", "user_id", "action", "resource", "result"];
const PAGE_SIZES = ["10", "25", "50", "100"];

/** Markers of the pages before the current one, for "Previous". */
const pageStack = { key: null, markers: [] };

/** `datetime-local` value (local time) → RFC 3339 (UTC), or "" when empty or invalid. */
function toRfc3339(local) {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** RFC 3339 → `datetime-local` value in local time. */
function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

export async function renderAudit(main, ctx) {
  const body = adminPage(main, "audit");
  const q = Object.fromEntries(FILTERS.map((k) => [k, ctx.query.get(k) || ""]));
  const sort = ctx.query.get("sort") === "asc" ? "asc" : "desc";
  const limit = PAGE_SIZES.includes(ctx.query.get("limit")) ? ctx.query.get("limit") : "25";
  const marker = ctx.query.get("marker") || "";
  const key = JSON.stringify([q, sort, limit]);
  if (pageStack.key !== key) {
    pageStack.key = key;
    pageStack.markers = [];
  }
  if (!marker) pageStack.markers = [];
  const go = (changes) => ctx.navigate("/admin/audit", { ...q, sort, limit, marker, ...changes });

  const projects = await api.listProjects().catch(() => []);
  const input = (name, value, attrs = {}) => h("input", { type: "text", id: `audit-${name}`, name, value, autocomplete: "off", spellcheck: "false", ...attrs });
  const since = h("input", { type: "datetime-local", id: "audit-since", name: "since", value: toLocalInput(q.since) });
  const until = h("input", { type: "datetime-local", id: "audit-until", name: "until", value: toLocalInput(q.until) });
  const project = select({ id: "audit-project", name: "project_id" }, [["", "Every project"], ...projects.map((p) => [p.id, p.name])], q.project_id);
  const result = select({ id: "audit-result", name: "result" }, [["", "Success or failure"], ["success", "Success"], ["failure", "Failure"]], q.result);
  const order = select({ id: "audit-sort", name: "sort" }, [["desc", "Newest first"], ["asc", "Oldest first"]], sort);
  const size = select({ id: "audit-limit", name: "limit" }, PAGE_SIZES.map((n) => [n, `${n} per page`]), limit);
  const form = h(
    "form",
    { class: "filters card", role: "search", "aria-label": "Search the audit trail", id: "audit-filters", novalidate: true },
    h(
      "div",
      { class: "filter-grid" },
      field("From", since),
      field("Until", until),
      field("Project", project),
      field("User ID", input("user_id", q.user_id)),
      field("Action", input("action", q.action), "Exact, or a prefix like image.* or job.*"),
      field("Resource", input("resource", q.resource), "Exact, like image:<id> or job:<id>"),
      field("Result", result),
    ),
    h(
      "div",
      { class: "filter-foot" },
      field("Order", order),
      field("Page size", size),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "btn btn-primary", id: "audit-search", text: "Search" }), h("button", { type: "button", class: "btn", id: "audit-reset", text: "Reset", onclick: () => ctx.navigate("/admin/audit") })),
    ),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const changes = { marker: "" };
    for (const el of form.elements) if (el.name) changes[el.name] = el.type === "datetime-local" ? toRfc3339(el.value) : el.value.trim();
    go(changes);
  });
  const results = h("section", { class: "results", "aria-labelledby": "audit-results-title" }, h("h2", { id: "audit-results-title", class: "visually-hidden", text: "Events" }));
  replace(body, form, results);

  let page;
  try {
    page = await api.listAuditEvents({ ...q, sort, limit, marker });
  } catch (e) {
    if (ctx.signal.aborted) return;
    results.append(h("div", { class: "msg msg-error", role: "alert", id: "audit-error", text: api.explain(e) }));
    return;
  }
  if (ctx.signal.aborted) return;
  const names = new Map(projects.map((p) => [p.id, p.name]));
  const events = page.events;
  const nextMarker = page.next ? new URLSearchParams(page.next.split("?")[1] || "").get("marker") : null;
  const pageNumber = pageStack.markers.length + 1;
  const td = (label, ...content) => h("td", { "data-label": label }, h("span", { class: "cell" }, ...content));
  const table = h(
    "table",
    { class: "images-table", id: "audit-table" },
    h("caption", { class: "visually-hidden", text: `Audit events, page ${pageNumber}` }),
    h("thead", {}, h("tr", {}, ["#", "Time", "Action", "Resource", "Result", "Project", "User", "Details"].map((t) => h("th", { scope: "col", text: t })))),
    h(
      "tbody",
      {},
      events.map((ev) =>
        h(
          "tr",
          { dataset: { position: String(ev.position), action: ev.action, resource: ev.resource } },
          td("#", String(ev.position)),
          td("Time", h("time", { datetime: ev.at, title: ev.at, text: fmt.date(ev.at) })),
          td("Action", h("span", { class: "mono", text: ev.action })),
          td("Resource", resourceLink(ev.resource)),
          td("Result", h("span", { class: `status ${ev.result === "success" ? "status-active" : "status-killed"}`, text: ev.result })),
          td("Project", ev.project_id ? names.get(ev.project_id) || ev.project_id : "—"),
          td("User", h("span", { class: "mono", text: ev.user_id || "—" })),
          td("Details", [ev.error, ev.detail, ev.source_address ? `from ${ev.source_address}` : null, `request ${ev.request_id}`].filter(Boolean).join(" · ")),
        ),
      ),
    ),
  );
  const prev = h("button", { type: "button", class: "btn", id: "audit-prev", text: "Previous page", disabled: !marker, onclick: () => go({ marker: pageStack.markers.pop() || "" }) });
  const next = h("button", {
    type: "button",
    class: "btn",
    id: "audit-next",
    text: "Next page",
    disabled: !nextMarker,
    onclick: () => {
      pageStack.markers.push(marker);
      go({ marker: nextMarker });
    },
  });
  results.append(
    h("p", { class: "result-count", id: "audit-count", role: "status", text: `Page ${pageNumber}: ${events.length} ${events.length === 1 ? "event" : "events"}.` }),
    events.length ? h("div", { class: "table-wrap" }, table) : h("div", { class: "empty card" }, h("p", { text: "No events match." })),
    h("nav", { class: "pager", "aria-label": "Pages" }, prev, h("span", { class: "page-number", text: `Page ${pageNumber}` }), next),
  );
}

/** `image:<id>` and `job:<id>` link to their pages; other resources are shown as they are. */
function resourceLink(resource) {
  const [kind, id] = resource.split(/:(.*)/s);
  if (kind === "image" && id) return h("a", { href: `#/images/${id}`, class: "mono", text: resource });
  if (kind === "job" && id) return h("a", { href: `#/jobs/${id}`, class: "mono", text: resource });
  return h("span", { class: "mono", text: resource });
}
