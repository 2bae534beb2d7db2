// The recycle bin (#/recycle-bin): images deleted by the project, kept restorable until their purge
// time. Restore brings an image back as it was (same ID, data and checksums); Purge deletes it for
// good at once (asks first). Administrators may list every project's bin.

import * as api from "../api.js";
import * as session from "../session.js";
import * as fmt from "../format.js";
import { busy, confirmDialog, h, replace, say, toast } from "../dom.js";
import { statusBadge } from "./images.js";

export async function renderRecycleBin(main, ctx) {
  const allProjects = session.isAdmin() && ctx.query.get("all") === "1";
  const images = await api.listBin(allProjects);
  if (ctx.signal.aborted) return;
  const slot = h("div", { class: "slot", id: "bin-messages" });
  const reload = () => ctx.navigate("/recycle-bin", { all: allProjects ? "1" : "" });

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

  const heads = ["Name", allProjects ? "Project" : null, "Size", "Restores as", "Deleted", "Purged after", "Actions"].filter(Boolean);
  replace(
    main,
    h("h1", { tabindex: "-1", text: "Recycle bin" }),
    h("p", { class: "lead", text: "Deleted images stay here until their purge time. Restore one to get it back with the same ID, data and checksums; purge one to delete it for good now." }),
    session.isAdmin()
      ? h("p", {}, h("a", { href: allProjects ? "#/recycle-bin" : "#/recycle-bin?all=1", id: "bin-scope", text: allProjects ? "Show this project's bin" : "Show every project's bin" }))
      : null,
    slot,
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
      : h("p", { class: "muted card", id: "bin-empty", text: "The recycle bin is empty." }),
  );
}
