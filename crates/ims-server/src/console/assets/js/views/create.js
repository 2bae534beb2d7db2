// Create an image by uploading a file from the browser: POST /v2/images for the record, then the
// file streamed with PUT /v2/images/{id}/file, with a progress bar (bytes, rate, time left). Or
// import one from a bucket (import.js), or create a capsule (capsule.js).

import * as api from "../api.js";
import * as session from "../session.js";
import * as fmt from "../format.js";
import * as transfer from "../transfer.js";
import { busy, field, h, replace, say, select, toast } from "../dom.js";
import { importCard } from "./import.js";
import { capsuleCard } from "./capsule.js";

let activeUpload = null;

window.addEventListener("beforeunload", (e) => {
  if (activeUpload) {
    e.preventDefault();
    e.returnValue = "";
  }
});

export async function renderCreate(main, ctx) {
  const source = ctx.query.get("source");
  const imports = importCard(source);
  const file = h("input", { type: "file", id: "upload-file", name: "file", required: true });
  const name = h("input", { type: "text", id: "upload-name", name: "name", maxlength: "255", autocomplete: "off" });
  const diskFormat = select({ id: "upload-disk-format", name: "disk_format" }, fmt.DISK_FORMATS, "raw");
  const containerFormat = select({ id: "upload-container-format", name: "container_format" }, fmt.CONTAINER_FORMATS, "bare");
  const visibilities = Object.entries(fmt.VISIBILITY_LABELS).filter(([v]) => v !== "public" || session.isAdmin());
  const visibility = select({ id: "upload-visibility", name: "visibility" }, visibilities, "private");
  const minDisk = h("input", { type: "number", id: "upload-min-disk", name: "min_disk", min: "0", step: "1", value: "0", inputmode: "numeric" });
  const minRam = h("input", { type: "number", id: "upload-min-ram", name: "min_ram", min: "0", step: "1", value: "0", inputmode: "numeric" });
  const tags = h("input", { type: "text", id: "upload-tags", name: "tags", autocomplete: "off" });
  const protectedBox = h("input", { type: "checkbox", id: "upload-protected", name: "protected" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "start-upload", text: "Create and upload" });
  const slot = h("div", { class: "slot", id: "upload-messages" });
  const progressArea = h("div", { class: "upload-progress", id: "upload-progress-area" });

  file.addEventListener("change", () => {
    const f = file.files[0];
    if (!f) return;
    if (!name.value.trim() || name.dataset.auto === "1") {
      name.value = f.name.replace(/\.[^.]+$/, "") || f.name;
      name.dataset.auto = "1";
    }
    const guessed = fmt.guessDiskFormat(f.name);
    if (guessed) diskFormat.value = guessed;
    say(slot, "info", `${f.name}: ${fmt.bytes(f.size)} (${fmt.exactBytes(f.size)}).`);
  });
  name.addEventListener("input", () => (name.dataset.auto = "0"));

  const form = h(
    "form",
    { class: "card", id: "create-form", novalidate: true },
    h("h2", { text: "Upload a file" }),
    field("Image file", file, "Any size: the browser streams the file, it is not loaded into memory."),
    field("Name", name),
    h("div", { class: "two" }, field("Disk format", diskFormat, "Must match the file: IMS checks it."), field("Container format", containerFormat)),
    field("Visibility", visibility, "Private: your project only. Shared: projects you add as members. Community: every project can find it."),
    h("div", { class: "two" }, field("Minimum disk (GB)", minDisk), field("Minimum RAM (MB)", minRam)),
    field("Tags", tags, "Separated by commas."),
    h("div", { class: "check" }, protectedBox, h("label", { for: "upload-protected", text: "Protected (cannot be deleted)" })),
    slot,
    h("div", { class: "actions" }, submit),
  );

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f) {
      say(slot, "error", "Choose a file to upload.");
      file.focus();
      return;
    }
    for (const input of [minDisk, minRam]) {
      const n = Number(input.value || 0);
      if (!Number.isInteger(n) || n < 0) {
        say(slot, "error", "Minimum disk and RAM must be whole numbers, 0 or more.");
        input.focus();
        return;
      }
    }
    const fields = {
      name: name.value.trim() || f.name,
      disk_format: diskFormat.value,
      container_format: containerFormat.value,
      visibility: visibility.value,
      min_disk: Number(minDisk.value || 0),
      min_ram: Number(minRam.value || 0),
      protected: protectedBox.checked,
      tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
    };
    say(slot);
    await busy(submit, "Uploading…", () => run(f, fields, form, progressArea, slot));
  });

  replace(
    main,
    h("div", { class: "page-head" }, h("h1", { text: "Create image" })),
    h("p", { class: "lead", text: "Upload a disk image file from this computer, import one from a bucket, make one from a server, or put images together as a capsule. An uploaded image becomes active once IMS has stored and checked the data." }),
    form,
    progressArea,
    imports,
    h(
      "section",
      { class: "card", id: "from-server", "aria-labelledby": "from-server-title" },
      h("h2", { id: "from-server-title", text: "From a server" }),
      h("p", {}, "Open a server on the ", h("a", { href: "#/servers", id: "from-server-link", text: "Servers page" }), ": its page makes a system disk image or a whole-server image of it, as a job."),
    ),
    capsuleCard(),
  );
  if (source) imports.querySelector("h2").scrollIntoView({ block: "start" });
}

async function run(f, fields, form, area, slot) {
  let image;
  try {
    image = await api.createImage(fields);
  } catch (e) {
    say(slot, "error", `Could not create the image: ${api.explain(e)}`);
    return;
  }
  for (const el of form.elements) el.disabled = true;

  const bar = h("progress", { id: "upload-progress", max: String(f.size || 1), value: "0", "aria-labelledby": "upload-progress-label" });
  const label = h("p", { id: "upload-progress-label", class: "progress-label", text: `Uploading ${f.name}` });
  const numbers = h("p", { id: "upload-progress-text", class: "progress-numbers mono", "aria-live": "off", text: `0 bytes of ${fmt.bytes(f.size)} (0%)` });
  const phase = h("p", { id: "upload-phase", role: "status", text: "Sending the file…" });
  const cancel = h("button", { type: "button", class: "btn", id: "cancel-upload", text: "Cancel upload" });
  const result = h("div", { class: "slot", id: "upload-result" });
  const card = h("section", { class: "card", "aria-labelledby": "upload-progress-label" }, label, bar, numbers, phase, h("div", { class: "actions" }, cancel), result);
  replace(area, card);
  card.scrollIntoView({ block: "nearest" });

  const up = transfer.upload(image.id, f, {
    onProgress: ({ loaded, total, rate, eta }) => {
      const pct = total ? Math.floor((loaded / total) * 100) : 100;
      bar.value = loaded;
      bar.max = total || 1;
      bar.setAttribute("aria-valuetext", `${pct}%`);
      numbers.textContent = `${fmt.bytes(loaded)} of ${fmt.bytes(total)} (${pct}%) · ${fmt.rate(rate)} · ${loaded >= total ? "done" : `about ${fmt.duration(eta)} left`}`;
    },
    onSent: () => {
      phase.textContent = "All bytes sent. IMS is storing and checking the image…";
      cancel.disabled = true;
    },
  });
  activeUpload = up;
  cancel.addEventListener("click", () => up.abort());
  try {
    await up.done;
    bar.value = bar.max;
    const stored = await api.getImage(image.id);
    phase.textContent = `Done: ${stored.name} is ${stored.status}.`;
    replace(
      result,
      h("div", { class: "msg msg-success", role: "status" }, `Uploaded ${fmt.bytes(stored.size)}. `, h("a", { href: `#/images/${stored.id}`, id: "open-uploaded", text: "Open the image" }), " or ", h("a", { href: "#/images?tab=private", text: "go to your images" }), "."),
    );
    toast(`${stored.name} is ${stored.status}.`);
  } catch (e) {
    const cancelled = e && e.name === "AbortError";
    phase.textContent = cancelled ? "Upload cancelled." : "Upload failed.";
    const remove = h("button", { type: "button", class: "btn", id: "delete-unfinished", text: "Delete the unfinished image" });
    remove.addEventListener("click", () =>
      busy(remove, "Deleting…", async () => {
        try {
          await api.deleteImage(image.id);
          replace(result, h("div", { class: "msg msg-info", role: "status", text: "The unfinished image was deleted." }));
        } catch (err) {
          say(result, "error", api.explain(err));
        }
      }),
    );
    replace(
      result,
      h("div", { class: "msg msg-error", role: "alert", text: cancelled ? "The upload was cancelled. The image record stays queued, without data." : `The upload failed: ${api.explain(e)}` }),
      h("div", { class: "actions" }, remove, h("a", { class: "btn", href: `#/images/${image.id}`, text: "Open the image" })),
    );
  } finally {
    activeUpload = null;
    cancel.hidden = true;
    for (const el of form.elements) el.disabled = false;
  }
}
