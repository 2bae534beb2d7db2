// Import an image from a bucket object (IMS CreateImage with `image_url`): a job that reads the file,
// converts it where needed and fills a new image.

import * as api from "../api.js";
import { busy, field, h, replace, say, select } from "../dom.js";

/** The import form; `source` (`bucket:key`) preselects an object. */
export function importCard(source) {
  const [wantBucket, ...rest] = (source || "").split(":");
  const wantKey = rest.join(":");
  const result = h("div", { class: "slot", id: "import-result" });
  const bucket = select({ id: "import-bucket", name: "bucket" }, [["", "Loading buckets…"]], "");
  const object = select({ id: "import-object", name: "object" }, [["", "Choose a bucket first"]], "");
  const name = h("input", { type: "text", id: "import-name", name: "name", maxlength: "255", autocomplete: "off" });
  const minDisk = h("input", { type: "number", id: "import-min-disk", name: "min_disk", min: "1", max: "1024", step: "1", value: "40", inputmode: "numeric" });
  const description = h("input", { type: "text", id: "import-description", name: "description", maxlength: "1024", autocomplete: "off" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "start-import", text: "Import" });

  const loadObjects = async () => {
    replace(object, h("option", { value: "", text: bucket.value ? "Loading…" : "Choose a bucket first" }));
    if (!bucket.value) return;
    try {
      const objects = await api.listObjects(bucket.value);
      replace(object, objects.length ? objects.map((o) => h("option", { value: o.key, selected: o.key === wantKey, text: o.key })) : h("option", { value: "", text: "This bucket is empty" }));
      suggestName();
    } catch (e) {
      say(result, "error", api.explain(e));
    }
  };
  const suggestName = () => {
    if (object.value && (!name.value || name.dataset.auto === "1")) {
      name.value = object.value.split("/").pop().replace(/\.[^.]+$/, "");
      name.dataset.auto = "1";
    }
  };
  name.addEventListener("input", () => (name.dataset.auto = "0"));
  bucket.addEventListener("change", loadObjects);
  object.addEventListener("change", suggestName);
  api
    .listBuckets()
    .then((buckets) => {
      replace(bucket, h("option", { value: "", text: buckets.length ? "Choose a bucket" : "No buckets: create one on the Buckets page" }), buckets.map((b) => h("option", { value: b.name, selected: b.name === wantBucket, text: b.name })));
      if (bucket.value) loadObjects();
    })
    .catch((e) => say(result, "error", api.explain(e)));

  const form = h(
    "form",
    { class: "card", id: "import-form", novalidate: true },
    h("h2", { id: "import-title", text: "Import from a bucket" }),
    h("p", { class: "hint", text: "IMS reads the file in the bucket (QCOW2, VMDK, VHD, RAW, ...), converts it where needed and makes a new private image. It runs as a job." }),
    h("div", { class: "two" }, field("Bucket", bucket), field("Object", object)),
    field("Name", name),
    h("div", { class: "two" }, field("System disk size (GB)", minDisk, "1 to 1024; at least the disk's virtual size."), field("Description", description)),
    h("div", { class: "actions" }, submit),
    result,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const n = Number(minDisk.value);
    if (!bucket.value || !object.value) return fail("Choose the bucket and the object to import.", bucket.value ? object : bucket);
    if (!name.value.trim()) return fail("Give the image a name.", name);
    if (!Number.isInteger(n) || n < 1 || n > 1024) return fail("The system disk size is a whole number of GB from 1 to 1024.", minDisk);
    await busy(submit, "Starting…", async () => {
      try {
        const jobId = await api.importImage({ name: name.value.trim(), image_url: `${bucket.value}:${object.value}`, min_disk: n, description: description.value.trim() || undefined });
        replace(result, h("div", { class: "msg msg-success", role: "status" }, "Import started. ", h("a", { href: `#/jobs/${jobId}`, id: "import-job-link", text: "Follow the job" }), "; the image is in your private images when it ends."));
      } catch (err) {
        say(result, "error", `Could not import: ${api.explain(err)}`);
      }
    });
  });
  const fail = (text, input) => {
    say(result, "error", text);
    input.focus();
  };
  return form;
}
