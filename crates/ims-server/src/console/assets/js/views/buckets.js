// Buckets (/buckets/v1): the object storage images are exported to and imported from. The list of
// buckets (create one), and one bucket's objects: upload a file from the browser (streamed, with
// progress), delete an object, or import it as an image.

import * as api from "../api.js";
import * as fmt from "../format.js";
import * as transfer from "../transfer.js";
import { busy, confirmDialog, field, h, replace, say, toast } from "../dom.js";

export async function renderBuckets(main, ctx) {
  const buckets = await api.listBuckets();
  if (ctx.signal.aborted) return;
  const slot = h("div", { class: "slot", id: "buckets-messages" });
  const name = h("input", { type: "text", id: "new-bucket-name", name: "name", maxlength: "63", autocomplete: "off", spellcheck: "false" });
  const create = h("button", { type: "submit", class: "btn btn-primary", id: "create-bucket", text: "Create bucket" });
  const form = h("form", { class: "card inline-form", id: "bucket-form", novalidate: true }, h("h2", { text: "New bucket" }), field("Name", name, "Lower-case letters, digits, dots and hyphens."), h("div", { class: "actions" }, create));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) {
      say(slot, "error", "Give the bucket a name.");
      name.focus();
      return;
    }
    await busy(create, "Creating…", async () => {
      try {
        const b = await api.createBucket(name.value.trim());
        toast(`Created bucket ${b.name}.`);
        ctx.navigate(`/buckets/${encodeURIComponent(b.name)}`);
      } catch (err) {
        say(slot, "error", `Could not create the bucket: ${api.explain(err)}`);
      }
    });
  });
  const list = buckets.length
    ? h(
        "ul",
        { class: "bucket-list card", id: "bucket-list" },
        buckets.map((b) => h("li", { dataset: { bucket: b.name } }, h("a", { href: `#/buckets/${encodeURIComponent(b.name)}`, text: b.name }), h("small", { class: "muted", text: ` owned by ${b.owner}` }))),
      )
    : h("p", { class: "muted card", id: "bucket-list-empty", text: "No buckets yet." });
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", { text: "Buckets" })),
    h("p", { class: "lead", text: "Object storage for image files: exports are written here, imports read from here." }),
    slot,
    list,
    form,
  );
}

export async function renderBucket(main, ctx) {
  const bucket = decodeURIComponent(ctx.params[0]);
  const objects = await api.listObjects(bucket);
  if (ctx.signal.aborted) return;
  const slot = h("div", { class: "slot", id: "bucket-messages" });
  const reload = () => ctx.navigate(`/buckets/${encodeURIComponent(bucket)}`);
  const rows = objects.map((o) => {
    const del = h("button", { type: "button", class: "btn btn-small btn-danger", text: "Delete", "aria-label": `Delete ${o.key}`, dataset: { deleteObject: o.key } });
    del.addEventListener("click", async () => {
      if (!(await confirmDialog({ title: `Delete ${o.key}?`, body: "The object is removed from the bucket for good. Images imported from it keep their data.", confirmLabel: "Delete object", danger: true }))) return;
      await busy(del, "Deleting…", async () => {
        try {
          await api.deleteObject(bucket, o.key);
          toast(`Deleted ${o.key}.`);
          reload();
        } catch (err) {
          say(slot, "error", api.explain(err));
        }
      });
    });
    const source = `${bucket}:${o.key}`;
    return h(
      "tr",
      { dataset: { key: o.key } },
      h("td", { "data-label": "Object", class: "mono wrap", text: o.key }),
      h("td", { "data-label": "Size" }, h("span", { class: "size", dataset: { bytes: String(o.size) }, title: fmt.exactBytes(o.size), text: fmt.bytes(o.size) })),
      h("td", { "data-label": "Modified" }, h("time", { datetime: o.last_modified, text: fmt.date(o.last_modified) })),
      h("td", { "data-label": "" }, h("div", { class: "actions" }, h("a", { class: "btn btn-small", href: `#/create?source=${encodeURIComponent(source)}`, "aria-label": `Import ${o.key} as an image`, text: "Import as image" }), del)),
    );
  });
  replace(
    main,
    h("p", { class: "breadcrumb" }, h("a", { href: "#/buckets", text: "Buckets" }), " / ", bucket),
    h("div", { class: "page-head" }, h("h1", { id: "bucket-title", text: bucket })),
    slot,
    objects.length
      ? h(
          "div",
          { class: "table-wrap" },
          h("table", { class: "images-table", id: "objects-table" }, h("caption", { class: "visually-hidden", text: `Objects of ${bucket}` }), h("thead", {}, h("tr", {}, ["Object", "Size", "Modified", "Actions"].map((t) => h("th", { scope: "col", text: t })))), h("tbody", {}, rows)),
        )
      : h("p", { class: "muted card", id: "objects-empty", text: "This bucket is empty." }),
    uploadCard(bucket, reload),
  );
}

/** Uploads a file from this computer as an object, streamed (the page never reads the file). */
function uploadCard(bucket, reload) {
  const file = h("input", { type: "file", id: "object-file", name: "file" });
  const key = h("input", { type: "text", id: "object-key", name: "key", autocomplete: "off", spellcheck: "false" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "upload-object", text: "Upload" });
  const area = h("div", { class: "slot", id: "object-upload-area" });
  file.addEventListener("change", () => {
    if (file.files[0] && (!key.value || key.dataset.auto === "1")) {
      key.value = file.files[0].name;
      key.dataset.auto = "1";
    }
  });
  key.addEventListener("input", () => (key.dataset.auto = "0"));
  const form = h("form", { class: "card", id: "object-form", novalidate: true }, h("h2", { text: "Upload a file" }), field("File", file, "Any size: the browser streams it from disk."), field("Object name", key), h("div", { class: "actions" }, submit), area);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f || !key.value.trim()) {
      say(area, "error", f ? "Name the object." : "Choose a file to upload.");
      (f ? key : file).focus();
      return;
    }
    const bar = h("progress", { id: "object-progress", max: String(f.size || 1), value: "0", "aria-label": `Uploading ${f.name}` });
    const numbers = h("p", { id: "object-progress-text", class: "progress-numbers mono", text: `0 bytes of ${fmt.bytes(f.size)}` });
    replace(area, bar, numbers);
    await busy(submit, "Uploading…", async () => {
      const up = transfer.uploadTo(api.objectPath(bucket, key.value.trim()), f, {
        onProgress: ({ loaded, total, rate, eta }) => {
          const pct = total ? Math.floor((loaded / total) * 100) : 100;
          bar.value = loaded;
          numbers.textContent = `${fmt.bytes(loaded)} of ${fmt.bytes(total)} (${pct}%) · ${fmt.rate(rate)} · ${loaded >= total ? "done" : `about ${fmt.duration(eta)} left`}`;
        },
      });
      try {
        const stored = await up.done;
        toast(`Uploaded ${stored ? stored.key : f.name} (${fmt.bytes(f.size)}).`);
        reload();
      } catch (err) {
        say(area, "error", `The upload failed: ${api.explain(err)}`);
      }
    });
  });
  return form;
}
