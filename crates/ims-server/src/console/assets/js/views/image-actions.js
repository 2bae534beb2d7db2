// The image page's IMS actions and facts: favourite, export to a bucket, copy in region and to another
// region (each a job, linked to its page), encryption key and deprecation, lineage, a capsule's parts, and the jobs that worked on the image.

import * as api from "../api.js";
import * as session from "../session.js";
import * as fmt from "../format.js";
import { busy, field, h, replace, say, select, toast } from "../dom.js";
import { jobProgress, jobStatusBadge, jobTypeLabel } from "./jobs.js";

const EXPORT_FORMATS = [
  ["qcow2", "QCOW2"],
  ["vmdk", "VMDK (streamOptimized)"],
  ["vhd", "VHD (fixed)"],
  ["zvhd", "ZVHD"],
  ["zvhd2", "ZVHD2"],
  ["raw", "RAW"],
];

const hasData = (image) => image.status === "active";

/** Add to / remove from the user's favourites; the label says which it does. */
export function favouriteButton(image, slot) {
  const b = h("button", { type: "button", class: "btn", id: "favourite", "aria-pressed": "false", text: "Add to favourites", disabled: true });
  let on = false;
  const show = () => {
    b.textContent = on ? "★ Remove from favourites" : "☆ Add to favourites";
    b.setAttribute("aria-pressed", String(on));
    b.dataset.favourite = String(on);
  };
  api
    .listFavorites()
    .then((list) => {
      on = list.some((f) => f.image_id === image.id);
      show();
      b.disabled = false;
    })
    .catch(() => (b.title = "Favourites are not available"));
  b.addEventListener("click", () =>
    busy(b, on ? "Removing…" : "Adding…", async () => {
      try {
        if (on) await api.removeFavorite(image.id);
        else await api.addFavorite(image.id);
        on = !on;
        toast(on ? "Added to your favourites." : "Removed from your favourites.");
      } catch (e) {
        say(slot, "error", api.explain(e));
      }
    }).then(show),
  );
  return b;
}

/** A success message linking to the job that was started. */
function jobStarted(what, jobId, linkId) {
  return h("div", { class: "msg msg-success", role: "status" }, `${what} started. `, h("a", { href: `#/jobs/${jobId}`, id: linkId, dataset: { jobId }, text: "Follow it on the job's page" }), " or on the ", h("a", { href: "#/jobs", text: "jobs list" }), ".");
}

/** ExportImage: the image in a chosen format, written into a bucket object. */
export function exportCard(image, onJob) {
  const result = h("div", { class: "slot", id: "export-result" });
  const bucket = h("input", { type: "text", id: "export-bucket", name: "bucket", list: "export-bucket-names", autocomplete: "off", spellcheck: "false" });
  const names = h("datalist", { id: "export-bucket-names" });
  const key = h("input", { type: "text", id: "export-key", name: "key", autocomplete: "off", spellcheck: "false" });
  const format = select({ id: "export-format", name: "file_format" }, EXPORT_FORMATS, "qcow2");
  const base = fmt.fileNameFor({ ...image, disk_format: null });
  const suggestKey = () => {
    if (!key.value || key.dataset.auto === "1") {
      key.value = `${base}.${format.value}`;
      key.dataset.auto = "1";
    }
  };
  key.addEventListener("input", () => (key.dataset.auto = "0"));
  format.addEventListener("change", suggestKey);
  suggestKey();
  api
    .listBuckets()
    .then((buckets) => {
      replace(names, buckets.map((b) => h("option", { value: b.name })));
      if (!bucket.value && buckets.length) bucket.value = buckets[0].name;
    })
    .catch(() => {});
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "start-export", text: "Export", disabled: !hasData(image) });
  const form = h(
    "form",
    { id: "export-form", novalidate: true },
    field("Bucket", bucket, "The bucket must exist: see Buckets."),
    names,
    h("div", { class: "two" }, field("Object name", key), field("File format", format)),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!bucket.value.trim() || !key.value.trim()) {
      say(result, "error", "Name the bucket and the object to write.");
      (bucket.value.trim() ? key : bucket).focus();
      return;
    }
    await busy(submit, "Starting…", async () => {
      try {
        const jobId = await api.exportImage(image.id, `${bucket.value.trim()}:${key.value.trim()}`, format.value);
        replace(result, jobStarted("Export", jobId, "export-job-link"));
        if (onJob) onJob(jobId);
      } catch (err) {
        say(result, "error", `Could not export: ${api.explain(err)}`);
      }
    });
  });
  return h(
    "section",
    { class: "card", id: "export", "aria-labelledby": "export-title" },
    h("h2", { id: "export-title", text: "Export to a bucket" }),
    hasData(image) ? null : h("p", { class: "muted", text: "Only active images with data can be exported." }),
    form,
    result,
  );
}

/** CopyImageInRegion: a new private image sharing the source's data, optionally naming a key. */
export function copyCard(image, onJob) {
  const result = h("div", { class: "slot", id: "copy-result" });
  const name = h("input", { type: "text", id: "copy-name", name: "name", maxlength: "255", value: `${image.name || image.id}-copy`, autocomplete: "off" });
  const description = h("input", { type: "text", id: "copy-description", name: "description", maxlength: "1024", autocomplete: "off" });
  const key = h("input", { type: "text", id: "copy-key", name: "cmk_id", list: "copy-key-ids", autocomplete: "off", spellcheck: "false" });
  const keys = h("datalist", { id: "copy-key-ids" });
  if (session.isAdmin()) {
    api
      .listKeys()
      .then((list) => replace(keys, list.filter((k) => k.state === "enabled").map((k) => h("option", { value: k.id, label: k.alias }))))
      .catch(() => {});
  }
  const submit = h("button", { type: "submit", class: "btn", id: "start-copy", text: "Copy", disabled: !hasData(image) });
  const form = h(
    "form",
    { id: "copy-form", novalidate: true },
    h("div", { class: "two" }, field("Name of the copy", name), field("Description", description)),
    field("Encryption key ID (optional)", key, "Leave empty to keep the source's encryption; with a key, the copy is encrypted under it."),
    keys,
    h("div", { class: "actions" }, submit),
  );
  onCopySubmit(form, { name, submit, result, onJob, linkId: "copy-job-link" }, () => [
    "Copy",
    api.copyImage(image.id, name.value.trim(), description.value.trim(), key.value.trim()),
  ]);
  return h("section", { class: "card", id: "copy", "aria-labelledby": "copy-title" }, h("h2", { id: "copy-title", text: "Copy in this region" }), form, result);
}

/**
 * Submitting a copy form: the copy needs a name; `start()` gives what is started (for the message) and the
 * promise of its job id, which is then linked (`linkId`) and passed to `onJob`.
 */
function onCopySubmit(form, { name, submit, result, onJob, linkId }, start) {
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) {
      say(result, "error", "Give the copy a name.");
      name.focus();
      return;
    }
    await busy(submit, "Starting…", async () => {
      try {
        const [what, job] = start();
        const jobId = await job;
        replace(result, jobStarted(what, jobId, linkId));
        if (onJob) onJob(jobId);
      } catch (err) {
        say(result, "error", `Could not copy: ${api.explain(err)}`);
      }
    });
  });
}

/**
 * CopyImageCrossRegion: the image sent to another region (its chunks, then its record). Shown only when this
 * region is configured with others to copy to.
 */
export function regionCopyCard(image, onJob) {
  const card = h("section", { class: "card", id: "region-copy", "aria-labelledby": "region-copy-title", hidden: true });
  api
    .listRegions()
    .then((regions) => {
      if (regions.length === 0) return;
      replace(card, h("h2", { id: "region-copy-title", text: "Copy to another region" }), ...regionCopyForm(image, regions, onJob));
      card.hidden = false;
    })
    .catch(() => {});
  return card;
}

function regionCopyForm(image, regions, onJob) {
  const result = h("div", { class: "slot", id: "region-copy-result" });
  const region = select({ id: "region-copy-region", name: "region" }, regions, regions[0]);
  const name = h("input", { type: "text", id: "region-copy-name", name: "name", maxlength: "255", value: image.name || image.id, autocomplete: "off" });
  const description = h("input", { type: "text", id: "region-copy-description", name: "description", maxlength: "1024", autocomplete: "off" });
  const project = h("input", { type: "text", id: "region-copy-project", name: "project_name", maxlength: "255", autocomplete: "off", spellcheck: "false" });
  const submit = h("button", { type: "submit", class: "btn", id: "start-region-copy", text: "Copy to region", disabled: !hasData(image) });
  const form = h(
    "form",
    { id: "region-copy-form", novalidate: true },
    h("div", { class: "two" }, field("Region", region), field("Name in that region", name)),
    h(
      "div",
      { class: "two" },
      field("Description", description),
      field("Project in that region (optional)", project, "Leave empty for the project of the same name as this one."),
    ),
    h("div", { class: "actions" }, submit),
  );
  onCopySubmit(form, { name, submit, result, onJob, linkId: "region-copy-job-link" }, () => [
    `Copy to ${region.value}`,
    api.copyImageToRegion(image.id, region.value, name.value.trim(), description.value.trim(), project.value.trim()),
  ]);
  return [form, result];
}

/** Encryption (the master key of `__system__cmkid`) and deprecation (`deprecate_at`). */
export function protectionCard(image) {
  const keyId = image.__system__cmkid;
  const keyDd = h("dd", { id: "image-encryption", dataset: { keyId: keyId || "" }, text: keyId ? `Encrypted with master key ${keyId}` : "Not encrypted" });
  if (keyId && session.isAdmin()) {
    api
      .request("GET", `/kms/v1/keys/${encodeURIComponent(keyId)}`)
      .then((d) => (keyDd.textContent = `Encrypted with master key ${d.key.alias} (${keyId}), ${d.key.state}`))
      .catch(() => {});
  }
  let deprecation = "Not deprecated";
  if (image.deprecate_at) {
    const at = new Date(image.deprecate_at);
    deprecation =
      at <= new Date()
        ? `Deprecated since ${fmt.date(image.deprecate_at)}: left out of default lists, still usable`
        : `To be deprecated on ${fmt.date(image.deprecate_at)}`;
  }
  return h(
    "section",
    { class: "card", id: "protection", "aria-labelledby": "protection-title" },
    h("h2", { id: "protection-title", text: "Encryption and deprecation" }),
    h("dl", { class: "props" }, h("dt", { text: "Encryption" }), keyDd, h("dt", { text: "Deprecation" }), h("dd", { id: "image-deprecation", dataset: { deprecateAt: image.deprecate_at || "" }, text: deprecation })),
  );
}

/**
 * The jobs (of the newest hundred) that worked on this image, or were started from its page (a copy
 * works on the new image). `card.add(jobId)` lists one more and reloads.
 */
export function imageJobsCard(image) {
  const body = h("div", {}, h("p", { class: "loading", text: "Loading jobs…" }));
  const started = new Set();
  const load = () =>
    api
      .listJobs({ limit: 100 })
      .then((jobs) => {
        const mine = jobs.filter((j) => started.has(j.id) || (j.entities && j.entities.image_id === image.id));
        if (!mine.length) return replace(body, h("p", { class: "muted", text: "No recent jobs on this image." }));
        replace(
          body,
          h(
            "ul",
            { class: "job-list", id: "image-jobs" },
            mine.map((j) => h("li", { dataset: { jobId: j.id } }, h("a", { href: `#/jobs/${j.id}`, text: jobTypeLabel(j.job_type) }), " ", jobStatusBadge(j), " ", jobProgress(j), h("small", { class: "muted", text: ` ${fmt.date(j.created_at)}` }))),
          ),
        );
      })
      .catch((e) => replace(body, h("p", { class: "muted", text: api.explain(e) })));
  load();
  const card = h("section", { class: "card", id: "jobs", "aria-labelledby": "image-jobs-title" }, h("h2", { id: "image-jobs-title", text: "Jobs on this image" }), body);
  card.add = (jobId) => {
    started.add(jobId);
    load();
  };
  return card;
}

const SOURCE_LABELS = {
  upload: "uploaded",
  import: "imported from",
  "quick-import": "quick-imported from",
  register: "registered from",
  copy: "copied from",
  "glance-import": "imported (Glance) from",
  "web-download": "downloaded from",
  conversion: "converted from",
  server: "created from server",
};
const STANDING_LABELS = { live: null, binned: "in the recycle bin", deleted: "deleted" };
const STOPPED_LABELS = {
  hidden: "The chain goes on with an image your project may not see.",
  missing: "The chain goes on with an image that no longer exists.",
  cycle: "The chain loops back on itself; it stops here.",
  depth: "The chain is longer than shown.",
};

/** Lineage: the chain of images this one was made from, up to its root; hidden parents by ID only. */
export function lineageCard(image) {
  const body = h("div", {}, h("p", { class: "loading", text: "Loading lineage…" }));
  api
    .ancestry(image.id)
    .then((a) => {
      const links = a.ancestry.map((link, i) => {
        const attrs = { dataset: { ancestor: link.id, visible: String(link.visible), state: link.state || "" } };
        if (!link.visible) {
          const what = link.state === "missing" ? "An image that no longer exists" : "An image your project may not see";
          return h("li", attrs, h("span", { class: "muted", text: `${what} ` }), h("span", { class: "mono wrap", text: link.id }));
        }
        const name = link.name || link.id;
        const standing = STANDING_LABELS[link.state];
        const source = SOURCE_LABELS[link.source_type] || link.source_type;
        const sourceRef = link.source_ref && link.source_ref !== link.parent_id && link.source_type !== "copy" ? ` ${link.source_ref}` : "";
        return h(
          "li",
          attrs,
          i === 0 || link.state !== "live" ? h("strong", { text: name }) : h("a", { href: `#/images/${link.id}`, text: name }),
          standing ? h("span", { class: "badge", text: ` ${standing}` }) : null,
          source ? h("small", { class: "muted", text: ` · ${source}${sourceRef}` }) : null,
          h("small", { class: "muted", text: ` · ${fmt.date(link.created_at)}` }),
        );
      });
      replace(
        body,
        h("ol", { class: "lineage", id: "lineage-chain", dataset: { complete: String(a.complete) } }, links),
        a.stopped ? h("p", { class: "muted", id: "lineage-stopped", text: STOPPED_LABELS[a.stopped] || a.stopped }) : null,
        a.ancestry.length === 1 && !a.stopped ? h("p", { class: "muted", text: "This image was not made from another image." }) : null,
      );
    })
    .catch((e) => replace(body, h("p", { class: "muted", text: api.explain(e) })));
  return h("section", { class: "card", id: "lineage", "aria-labelledby": "lineage-title" }, h("h2", { id: "lineage-title", text: "Lineage" }), body);
}

/** A capsule's parts: its base (system disk) image and its application (data disk) images, in order. */
export function capsuleCard(image) {
  const body = h("div", {}, h("p", { class: "loading", text: "Loading the capsule's parts…" }));
  const part = (role, img) =>
    h("li", { dataset: { part: img.id, role } }, h("span", { class: "muted", text: `${role}: ` }), h("a", { href: `#/images/${img.id}`, text: img.name || img.id }), h("small", { class: "muted", text: ` · ${fmt.bytes(img.size)} · ${img.status}` }));
  api
    .getCapsule(image.id)
    .then((c) =>
      replace(
        body,
        h("ol", { class: "lineage", id: "capsule-parts" }, part("Base image", c.base_image), c.app_images.map((a, i) => part(`Data disk ${i + 1}`, a))),
        h("p", { class: "muted", id: "capsule-user-data", text: c.user_data ? `Cloud-init user data: ${fmt.bytes(atob(c.user_data).length)}.` : "No cloud-init user data." }),
      ),
    )
    .catch((e) => replace(body, h("p", { class: "msg msg-error", role: "alert", text: `The capsule does not resolve: ${api.explain(e)}` })));
  return h("section", { class: "card", id: "capsule", "aria-labelledby": "capsule-title" }, h("h2", { id: "capsule-title", text: "Capsule parts" }), body);
}
