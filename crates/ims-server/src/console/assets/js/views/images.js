// The image lists: one tab per kind of image the API can list, filters, sorting and marker paging.
//
// Every tab is a query of GET /v2/images, or a `load` of a whole list (favourites, marketplace);
// adding a tab for a new kind of list is one entry in TABS.

import * as api from "../api.js";
import * as session from "../session.js";
import * as fmt from "../format.js";
import { busy, field, h, replace, say, select, toast } from "../dom.js";

/**
 * The tabs. `query(state)` gives the API parameters of the tab; `keep(image)` drops what the API
 * cannot; `load()` instead gives a whole list that the page filters and sorts itself; `action(image)`
 * gives the content of a last column of the rows.
 */
const TABS = [
  {
    id: "favourites",
    label: "Favourites",
    description: "Images you marked as favourites (in any project you work in), the most recently added first. Mark one with ☆ on its page.",
    // Not a Glance list: at most 100 images, filtered and sorted here, on one page.
    load: () => api.listFavorites().then((list) => list.map((f) => f.image)),
  },
  {
    id: "marketplace",
    label: "Marketplace",
    description: "Images published as products, on shelf. Subscribe to one to use it in your project.",
    // Not a Glance list: the on-shelf listings, with the ones this project subscribed to marked.
    load: async () => {
      const [onShelf, mine] = await Promise.all([api.listListings("on_shelf"), api.listListings("subscribed")]);
      const subscribed = new Set(mine.map((l) => l.id));
      return onShelf.map((l) => ({ ...l.image, listing: l, subscribed: subscribed.has(l.id) }));
    },
    action: subscribeButton,
  },
  {
    id: "capsules",
    label: "Capsules",
    description: "Applications packaged on a base image (a system disk image and data disk images), deployable in one step. Open one to see its parts.",
    // Not a Glance list: the newest hundred capsules the project can see.
    load: () => api.listCapsules(),
  },
  {
    id: "private",
    label: "Private",
    description: "Images your project owns.",
    query: (s) => ({ owner: session.projectId(), visibility: s.visibility }),
  },
  {
    id: "public",
    label: "Public",
    description: "Images published by the administrators for every project.",
    query: () => ({ visibility: "public" }),
  },
  {
    id: "shared",
    label: "Shared with me",
    description: "Images other projects shared with yours. Accept a share to see the image in your lists.",
    query: (s) => ({ visibility: "shared", member_status: s.member_status || "accepted" }),
    keep: (image) => image.owner !== session.projectId(),
  },
  {
    id: "community",
    label: "Community",
    description: "Images their owners offer to every project, without publishing them as public images.",
    query: () => ({ visibility: "community" }),
  },
];

const SORT_KEYS = [
  ["created_at", "Created"],
  ["name", "Name"],
  ["status", "Status"],
  ["size", "Size"],
  ["disk_format", "Format"],
  ["updated_at", "Updated"],
];
const PAGE_SIZES = ["10", "25", "50", "100"];
const FILTER_KEYS = ["name", "status", "visibility", "disk_format", "tag", "member_status"];

/** Markers of the pages before the current one, for "Previous", per list (filters and sort). */
const pageStack = { key: null, markers: [] };

function stateFrom(query) {
  const s = {
    tab: TABS.some((t) => t.id === query.get("tab")) ? query.get("tab") : "private",
    sort: query.get("sort") || "created_at:desc",
    limit: PAGE_SIZES.includes(query.get("limit")) ? query.get("limit") : "25",
    marker: query.get("marker") || "",
  };
  for (const k of FILTER_KEYS) s[k] = query.get(k) || "";
  return s;
}

function listKey(s) {
  const { marker, ...rest } = s;
  return JSON.stringify(rest);
}

export async function renderImages(main, ctx) {
  const s = stateFrom(ctx.query);
  const tab = TABS.find((t) => t.id === s.tab);
  const go = (changes) => ctx.navigate("/images", { ...s, ...changes });
  if (pageStack.key !== listKey(s)) {
    pageStack.key = listKey(s);
    pageStack.markers = [];
  }
  if (!s.marker) pageStack.markers = [];

  const [sortKey, sortDir] = s.sort.split(":");
  const params = { ...(tab.query ? tab.query(s) : {}), name: s.name, status: s.status, disk_format: s.disk_format, tag: s.tag, sort: `${sortKey}:${sortDir || "desc"}`, limit: s.limit, marker: s.marker };

  // Header and tabs.
  const header = h(
    "div",
    { class: "page-head" },
    h("h1", { text: "Images" }),
    h("a", { class: "btn btn-primary", href: "#/create", id: "create-image", text: "Create image" }),
  );
  const tabs = h(
    "nav",
    { class: "tabs", "aria-label": "Image lists" },
    h(
      "ul",
      {},
      TABS.map((t) =>
        h(
          "li",
          {},
          h("a", {
            href: `#/images?tab=${t.id}`,
            id: `tab-${t.id}`,
            class: "tab",
            "aria-current": t.id === tab.id ? "page" : null,
            text: t.label,
          }),
        ),
      ),
    ),
  );

  // Filters.
  const name = h("input", { type: "search", name: "name", id: "filter-name", value: s.name, autocomplete: "off" });
  const status = select({ name: "status", id: "filter-status" }, [["", "Any status"], ...Object.entries(fmt.STATUS_LABELS)], s.status);
  const diskFormat = select({ name: "disk_format", id: "filter-format" }, [["", "Any format"], ...fmt.DISK_FORMATS], s.disk_format);
  const tag = h("input", { type: "text", name: "tag", id: "filter-tag", value: s.tag, autocomplete: "off" });
  const visibility =
    tab.id === "private"
      ? select({ name: "visibility", id: "filter-visibility" }, [["", "Any visibility"], ...Object.entries(fmt.VISIBILITY_LABELS)], s.visibility)
      : null;
  const memberStatus =
    tab.id === "shared"
      ? select(
          { name: "member_status", id: "filter-member-status" },
          [
            ["accepted", "Accepted"],
            ["pending", "Waiting for my answer"],
            ["rejected", "Rejected"],
          ],
          s.member_status || "accepted",
        )
      : null;
  const sort = select(
    { name: "sort", id: "sort" },
    SORT_KEYS.flatMap(([k, label]) => [
      [`${k}:asc`, `${label}, ascending`],
      [`${k}:desc`, `${label}, descending`],
    ]),
    `${sortKey}:${sortDir || "desc"}`,
  );
  const limit = select({ name: "limit", id: "page-size" }, PAGE_SIZES.map((n) => [n, `${n} per page`]), s.limit);
  const active = ["name", "status", "visibility", "disk_format", "tag"].filter((k) => s[k]).length;
  const narrow = window.matchMedia("(max-width: 760px)").matches;
  const form = h(
    "form",
    { class: "filters card", role: "search", "aria-label": "Filter images", id: "filters" },
    h(
      "details",
      { open: !narrow || active > 0, id: "filters-details" },
      h("summary", { text: active ? `Filters and sorting (${active} ${active === 1 ? "filter" : "filters"} on)` : "Filters and sorting" }),
      h(
        "div",
        { class: "filter-grid" },
        field("Name (exact match)", name),
        field("Status", status),
        visibility ? field("Visibility", visibility) : null,
        memberStatus ? field("Share status", memberStatus) : null,
        field("Disk format", diskFormat),
        field("Tag", tag),
      ),
      h(
        "div",
        { class: "filter-foot" },
        field("Sort by", sort),
        field("Page size", limit),
        h(
          "div",
          { class: "actions" },
          h("button", { type: "submit", class: "btn btn-primary", id: "apply-filters", text: "Apply filters" }),
          h("button", {
            type: "button",
            class: "btn",
            id: "reset-filters",
            text: "Reset",
            onclick: () => ctx.navigate("/images", { tab: s.tab }),
          }),
        ),
      ),
    ),
  );
  const readForm = () => {
    const changes = { marker: "" };
    for (const el of form.elements) if (el.name) changes[el.name] = el.value.trim();
    return changes;
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    go(readForm());
  });
  for (const el of [status, diskFormat, visibility, memberStatus, sort, limit]) {
    if (el) el.addEventListener("change", () => go(readForm()));
  }

  const results = h("section", { class: "results", "aria-labelledby": "results-title" });
  const pending = tab.id === "shared" ? h("section", { class: "card pending", id: "pending-shares", "aria-labelledby": "pending-title" }) : null;

  replace(
    main,
    header,
    tabs,
    h("p", { class: "tab-description", text: tab.description }),
    form,
    pending,
    results,
  );

  const loads = [loadResults(results, params, tab, s, go, ctx.signal)];
  if (pending) loads.push(loadPending(pending, ctx));
  await Promise.all(loads);
}

async function loadResults(results, params, tab, s, go, signal) {
  replace(results, h("h2", { id: "results-title", class: "visually-hidden", text: "Results" }), h("p", { class: "loading", text: "Loading images…" }));
  let page;
  try {
    page = tab.load ? { images: filterAndSort(await tab.load(), s), next: null } : await api.listImages(params);
  } catch (e) {
    if (signal.aborted) return;
    replace(results, h("h2", { id: "results-title", class: "visually-hidden", text: "Results" }), h("div", { class: "msg msg-error", role: "alert", text: api.explain(e) }));
    return;
  }
  if (signal.aborted) return;
  const images = tab.keep ? page.images.filter(tab.keep) : page.images;
  const nextMarker = page.next ? new URLSearchParams(page.next.split("?")[1] || "").get("marker") : null;
  const pageNumber = pageStack.markers.length + 1;
  const count = h("p", { class: "result-count", id: "result-count", role: "status", text: countText(pageNumber, images.length, false) });

  const [sortKey, sortDir] = s.sort.split(":");
  const sortButton = (key, label) => {
    const active = sortKey === key;
    const nextDir = active && sortDir === "asc" ? "desc" : "asc";
    return h("button", {
      type: "button",
      class: "sort-button",
      dataset: { sort: key },
      "aria-label": `${label}: sort ${nextDir === "asc" ? "ascending" : "descending"}`,
      onclick: () => go({ sort: `${key}:${nextDir}`, marker: "" }),
      text: `${label}${active ? (sortDir === "asc" ? " ▲" : " ▼") : ""}`,
    });
  };
  const th = (label, key) =>
    h(
      "th",
      { scope: "col", "aria-sort": key && sortKey === key ? (sortDir === "asc" ? "ascending" : "descending") : null },
      key ? sortButton(key, label) : label,
    );

  const table = h(
    "table",
    { class: "images-table", id: "images-table" },
    h("caption", { class: "visually-hidden", text: `${tab.label} images, page ${pageNumber}` }),
    h(
      "thead",
      {},
      h("tr", {}, th("Name", "name"), th("Type"), th("Size", "size"), th("Virtual size"), th("Format", "disk_format"), th("Status", "status"), th("Created", "created_at"), tab.action ? th("Actions") : null),
    ),
    h("tbody", {}, images.map((img) => row(img, tab))),
  );

  const prev = h("button", {
    type: "button",
    class: "btn",
    id: "page-prev",
    text: "Previous page",
    disabled: pageStack.markers.length === 0 && !s.marker,
    onclick: () => {
      const marker = pageStack.markers.pop() || "";
      go({ marker });
    },
  });
  const next = h("button", {
    type: "button",
    class: "btn",
    id: "page-next",
    text: "Next page",
    disabled: true,
    onclick: () => {
      pageStack.markers.push(s.marker);
      go({ marker: nextMarker });
    },
  });
  const pager = h("nav", { class: "pager", "aria-label": "Pages", dataset: { more: nextMarker ? "checking" : "no" } }, prev, h("span", { class: "page-number", text: `Page ${pageNumber}` }), next);

  replace(
    results,
    h("h2", { id: "results-title", class: "visually-hidden", text: "Results" }),
    count,
    images.length
      ? h("div", { class: "table-wrap" }, table)
      : h("div", { class: "empty card" }, h("p", { text: "No images match." }), tab.id === "private" ? h("p", {}, h("a", { href: "#/create", text: "Create an image" }), " by uploading a file.") : null),
    pager,
  );

  // The API gives a `next` link whenever a page is full, even when nothing follows: look one image
  // ahead (with that link) before offering the next page.
  if (nextMarker) {
    let more = true;
    try {
      const peek = await api.listImages(page.next.replace(/([?&])limit=\d+/, "$1limit=1"));
      more = peek.images.length > 0;
    } catch {
      /* offer the page anyway: it will say what is wrong */
    }
    if (signal.aborted) return;
    next.disabled = !more;
    pager.dataset.more = more ? "yes" : "no";
    count.textContent = countText(pageNumber, images.length, more);
  }
}

/** The list filters and the sort applied in the page, for lists the API gives whole. */
function filterAndSort(images, s) {
  const kept = images.filter(
    (i) =>
      (!s.name || i.name === s.name) &&
      (!s.status || i.status === s.status) &&
      (!s.disk_format || i.disk_format === s.disk_format) &&
      (!s.tag || (i.tags || []).includes(s.tag)),
  );
  if (!s.sort || s.sort === "created_at:desc") return kept; // the API's order: most recently added first
  const [key, dir] = s.sort.split(":");
  const value = (i) => (i[key] === null || i[key] === undefined ? "" : i[key]);
  kept.sort((a, b) => {
    const [x, y] = [value(a), value(b)];
    const c = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return dir === "asc" ? c : -c;
  });
  return kept;
}

function countText(pageNumber, n, more) {
  return `Page ${pageNumber}: ${n} ${n === 1 ? "image" : "images"}${more ? ", more on the next page" : ""}.`;
}

function row(img, tab) {
  // One element per cell: at phone width a cell is a two-column grid (label, content).
  const td = (label, ...content) => h("td", { "data-label": label }, h("span", { class: "cell" }, ...content));
  return h(
    "tr",
    { dataset: { imageId: img.id, name: img.name || "" } },
    td("Name", h("a", { href: `#/images/${img.id}`, class: "image-link", text: img.name || "(no name)" }), img.protected ? h("span", { class: "badge", title: "Protected from deletion", text: "protected" }) : null),
    td("Type", fmt.kind(img), " · ", h("span", { class: "visibility", text: fmt.VISIBILITY_LABELS[img.visibility] || img.visibility })),
    td("Size", h("span", { class: "size", dataset: { bytes: img.size ?? "" }, title: fmt.exactBytes(img.size), text: fmt.bytes(img.size) })),
    td("Virtual size", h("span", { class: "virtual-size", dataset: { bytes: img.virtual_size ?? "" }, title: fmt.exactBytes(img.virtual_size), text: fmt.bytes(img.virtual_size) })),
    td("Format", `${img.disk_format || "—"}${img.container_format ? ` / ${img.container_format}` : ""}`),
    td("Status", statusBadge(img.status)),
    td("Created", h("time", { datetime: img.created_at, title: img.created_at, text: fmt.date(img.created_at) })),
    tab.action ? td("", tab.action(img)) : null,
  );
}

/** A marketplace row's action: the product, and Subscribe (or that the project already has it). */
function subscribeButton(img) {
  const l = img.listing;
  const product = h("span", { class: "muted", text: `${l.product_code} ${l.version} · ` });
  if (l.publisher === session.projectId()) return h("span", { dataset: { listing: l.id } }, product, "published by your project");
  if (img.subscribed) return h("span", { dataset: { listing: l.id, subscribed: "true" } }, product, "subscribed");
  const b = h("button", { type: "button", class: "btn btn-small btn-primary", text: "Subscribe", "aria-label": `Subscribe to ${img.name || l.product_code}`, dataset: { subscribe: l.id } });
  const cell = h("span", { dataset: { listing: l.id } }, product, b);
  b.addEventListener("click", () =>
    busy(b, "Subscribing…", async () => {
      try {
        await api.subscribeListing(l.id);
        toast(`Subscribed to ${l.product_code}: the image is now usable in your project.`);
        cell.dataset.subscribed = "true";
        replace(cell, product, "subscribed");
      } catch (e) {
        toast(`Could not subscribe: ${api.explain(e)}`, "error");
      }
    }),
  );
  return cell;
}

export function statusBadge(status) {
  return h("span", { class: `status status-${status}`, dataset: { status }, text: fmt.STATUS_LABELS[status] || status });
}

/** Shares waiting for this project's answer, with accept and reject buttons. */
async function loadPending(section, ctx) {
  const title = h("h2", { id: "pending-title", text: "Waiting for your answer" });
  replace(section, title, h("p", { class: "loading", text: "Loading…" }));
  let images;
  try {
    const page = await api.listImages({ visibility: "shared", member_status: "pending", limit: 100 });
    images = page.images.filter((i) => i.owner !== session.projectId());
  } catch (e) {
    if (ctx.signal.aborted) return;
    replace(section, title, h("div", { class: "msg msg-error", role: "alert", text: api.explain(e) }));
    return;
  }
  if (ctx.signal.aborted) return;
  if (!images.length) {
    replace(section, title, h("p", { class: "muted", text: "No shares are waiting for your answer." }));
    return;
  }
  const slot = h("div", { class: "slot" });
  const answer = (img, status, button) =>
    busy(button, status === "accepted" ? "Accepting…" : "Rejecting…", async () => {
      try {
        await api.setMemberStatus(img.id, session.projectId(), status);
        toast(`${status === "accepted" ? "Accepted" : "Rejected"} the share of ${img.name || img.id}.`);
        ctx.navigate("/images", Object.fromEntries(ctx.query));
      } catch (e) {
        say(slot, "error", api.explain(e));
      }
    });
  replace(
    section,
    title,
    slot,
    h(
      "ul",
      { class: "pending-list" },
      images.map((img) => {
        const accept = h("button", { type: "button", class: "btn btn-primary btn-small", text: "Accept", "aria-label": `Accept ${img.name || img.id}`, dataset: { accept: img.id } });
        const reject = h("button", { type: "button", class: "btn btn-small", text: "Reject", "aria-label": `Reject ${img.name || img.id}`, dataset: { reject: img.id } });
        accept.addEventListener("click", () => answer(img, "accepted", accept));
        reject.addEventListener("click", () => answer(img, "rejected", reject));
        const from = h("small", { class: "muted", text: ` from project ${img.owner} · ${fmt.bytes(img.size)}` });
        api.projectName(img.owner).then((n) => {
          if (n) from.textContent = ` from project ${n} · ${fmt.bytes(img.size)}`;
        });
        return h(
          "li",
          { dataset: { imageId: img.id } },
          h("span", { class: "pending-name" }, h("a", { href: `#/images/${img.id}`, text: img.name || img.id }), from),
          h("span", { class: "actions" }, accept, reject),
        );
      }),
    ),
  );
}
