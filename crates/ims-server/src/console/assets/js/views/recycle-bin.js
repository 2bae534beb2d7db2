// The recycle bin (#/recycle-bin): images deleted by the project, kept restorable until their purge
// time. Restore brings an image back as it was (same ID, data and checksums); Purge deletes it for
// good at once (asks first). Administrators may list every project's bin. The bin is read a page at a
// time with marker paging (the page's marker is in the address; the markers of the pages before are
// remembered for "Previous"), so a bin of any size never loads whole.

import * as api from "../api.js";
import * as session from "../session.js";
import * as fmt from "../format.js";
import { busy, confirmDialog, field, h, replace, say, select, toast } from "../dom.js";
import { statusBadge } from "./images.js";

const PAGE_SIZES = ["25", "100", "500", "1000"];
const DEFAULT_PAGE_SIZE = "100";

/** Markers of the pages before the current one, for "Previous", per listing (scope and page size). */
const pageStack = { key: null, markers: [] };

export async function renderRecycleBin(main, ctx) {
  const allProjects = session.isAdmin() && ctx.query.get("all") === "1";
  const limit = PAGE_SIZES.includes(ctx.query.get("limit")) ? ctx.query.get("limit") : DEFAULT_PAGE_SIZE;
  const marker = ctx.query.get("marker") || "";
  const key = JSON.stringify([allProjects, limit]);
  if (pageStack.key !== key || !marker) {
    pageStack.key = key;
    pageStack.markers = [];
  }
  const page = await api.listBin({ allProjects, marker, limit });
  if (ctx.signal.aborted) return;
  const images = page.images;
  const slot = h("div", { class: "slot", id: "bin-messages" });
  const go = (changes) => ctx.navigate("/recycle-bin", { all: allProjects ? "1" : "", limit: limit === DEFAULT_PAGE_SIZE ? "" : limit, marker, ...changes });
  // After a restore or purge the same page is read again (rows after it move up).
  const reload = () => go({});

  const row = (image) => {
    const label = image.name || image.id;
    const restore = h("button", { type: "button", class: "btn btn-small btn-primary", text: "Restore", "aria-label": `Restore ${label}`, dataset: { restore: image.id } });
    restore.addEventListener("click", () =>
      busy(restore, "Restoring…", async () => {
        try {
          await api.restoreImage(image.id);
          toast(`Restored ${label}.`);
          reload();
        } catch (e) {
          say(slot, "error", `Could not restore ${label}: ${api.explain(e)}`);
        }
      }),
    );
    const purge = h("button", { type: "button", class: "btn btn-small btn-danger", text: "Purge", "aria-label": `Purge ${label}`, dataset: { purge: image.id } });
    purge.addEventListener("click", async () => {
      const yes = await confirmDialog({
        title: `Purge ${label}?`,
        body: "The image and its data are deleted for good; it can no longer be restored.",
        confirmLabel: "Purge image",
        danger: true,
      });
      if (!yes) return;
      await busy(purge, "Purging…", async () => {
        try {
          await api.purgeImage(image.id);
          toast(`Purged ${label}.`);
          reload();
        } catch (e) {
          say(slot, "error", `Could not purge ${label}: ${api.explain(e)}`);
        }
      });
    });
    return h(
      "tr",
      { dataset: { imageId: image.id, name: image.name || "" } },
      h("td", { "data-label": "Name" }, h("span", { class: "wrap", text: label })),
      allProjects ? h("td", { "data-label": "Project", class: "mono wrap", text: image.owner }) : null,
      h("td", { "data-label": "Size", text: fmt.bytes(image.size) }),
      h("td", { "data-label": "Restores as" }, statusBadge(image.status)),
      h("td", { "data-label": "Deleted" }, h("time", { datetime: image.binned_at, dataset: { binnedAt: image.binned_at }, text: fmt.date(image.binned_at) })),
      h("td", { "data-label": "Purged after" }, h("time", { datetime: image.purge_after, dataset: { purgeAfter: image.purge_after }, text: fmt.date(image.purge_after) })),
      h("td", { "data-label": "" }, h("div", { class: "actions" }, restore, purge)),
    );
  };

  const pageNumber = pageStack.markers.length + 1;
  const count = h("p", { class: "result-count", id: "bin-count", role: "status", text: binCount(pageNumber, images.length, false) });
  const prev = h("button", {
    type: "button",
    class: "btn",
    id: "bin-prev",
    text: "Previous page",
    disabled: !marker,
    onclick: () => go({ marker: pageStack.markers.pop() || "" }),
  });
  const next = h("button", {
    type: "button",
    class: "btn",
    id: "bin-next",
    text: "Next page",
    disabled: true,
    onclick: () => {
      pageStack.markers.push(marker);
      go({ marker: page.next_marker });
    },
  });
  const pager = h("nav", { class: "pager", "aria-label": "Pages of the recycle bin", id: "bin-pager", dataset: { more: page.next_marker ? "checking" : "no" } }, prev, h("span", { class: "page-number", id: "bin-page-number", text: `Page ${pageNumber}` }), next);
  const pageSize = select({ id: "bin-page-size", name: "limit" }, PAGE_SIZES.map((n) => [n, `${n} per page`]), limit);
  pageSize.addEventListener("change", () => go({ limit: pageSize.value === DEFAULT_PAGE_SIZE ? "" : pageSize.value, marker: "" }));

  const heads = ["Name", allProjects ? "Project" : null, "Size", "Restores as", "Deleted", "Purged after", "Actions"].filter(Boolean);
  replace(
    main,
    h("h1", { tabindex: "-1", text: "Recycle bin" }),
    h("p", { class: "lead", text: "Deleted images stay here until their purge time. Restore one to get it back with the same ID, data and checksums; purge one to delete it for good now." }),
    session.isAdmin()
      ? h("p", {}, h("a", { href: allProjects ? "#/recycle-bin" : "#/recycle-bin?all=1", id: "bin-scope", text: allProjects ? "Show this project's bin" : "Show every project's bin" }))
      : null,
    slot,
    h("div", { class: "bin-controls" }, field("Page size", pageSize), count),
    images.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "images-table", id: "bin-table" },
            h("caption", { class: "visually-hidden", text: "Images in the recycle bin" }),
            h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col", text: t })))),
            h("tbody", {}, images.map(row)),
          ),
        )
      : h("p", { class: "muted card", id: "bin-empty", text: marker ? "No more images in the recycle bin." : "The recycle bin is empty." }),
    marker || page.next_marker ? pager : null,
  );

  // A full page names a next marker even when nothing follows: look one image ahead first.
  if (page.next_marker) {
    let more = true;
    try {
      more = (await api.listBin({ allProjects, marker: page.next_marker, limit: 1 })).images.length > 0;
    } catch {
      /* offer the page anyway: it will say what is wrong */
    }
    if (ctx.signal.aborted) return;
    next.disabled = !more;
    pager.dataset.more = more ? "yes" : "no";
    count.textContent = binCount(pageNumber, images.length, more);
  }
}

function binCount(pageNumber, shown, more) {
  const what = shown === 1 ? "1 image" : `${fmt.count(shown)} images`;
  return `Page ${pageNumber}: ${what}${more ? ", more on the next pages" : ""}.`;
}
