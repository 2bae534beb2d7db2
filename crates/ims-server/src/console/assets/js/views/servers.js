// Servers (#/servers, #/servers/<id>) of the compute API: the project's servers with their volumes,
// a form creating one from a system disk image, a whole-server image or a capsule, a server's page
// (its volumes, delete) and images made from a server (a system disk image or a whole-server image),
// which run as jobs.

import * as api from "../api.js";
import * as session from "../session.js";
import * as fmt from "../format.js";
import { busy, confirmDialog, field, h, replace, say, select, toast } from "../dom.js";

const SOURCES = [
  ["image", "A system disk image"],
  ["whole", "A whole-server image (every disk restored)"],
  ["capsule", "A capsule (base image, application disks and user data)"],
];
const TYPES = [
  ["ecs", "Elastic server (ECS)"],
  ["bms", "Bare-metal server (BMS)"],
];
const FIRMWARE = [
  ["", "BIOS, or what the image needs"],
  ["bios", "BIOS"],
  ["uefi", "UEFI"],
];

/** Whether an image record can be a server's system disk (not a data disk, whole-server image or capsule). */
export function isSystemImage(img) {
  const envType = String(img.virtual_env_type || "").toLowerCase();
  return envType !== "dataimage" && img.__whole_image !== "true" && img.__image_kind !== "capsule" && !img.__capsule_base_image;
}

/** The images a source kind offers, newest first: `[{id, name}]`. */
async function sourceChoices(kind) {
  if (kind === "capsule") return api.listCapsules();
  if (kind === "whole") return (await api.listImages({ __whole_image: "true", limit: 100, sort: "created_at:desc" })).images;
  const page = await api.listImages({ status: "active", limit: 200, sort: "created_at:desc" });
  return page.images.filter(isSystemImage);
}

function serverStatus(status) {
  return h("span", { class: `status server-${String(status).toLowerCase()}`, dataset: { serverStatus: status }, text: status });
}

function imageLink(id) {
  return id ? h("a", { href: `#/images/${id}`, class: "mono", dataset: { image: id }, text: id.slice(0, 8) }) : "—";
}

export async function renderServers(main, ctx) {
  const [servers, volumes] = await Promise.all([api.listServers(false), api.listVolumes()]);
  if (ctx.signal.aborted) return;
  const byServer = new Map();
  for (const v of volumes) {
    if (!v.server_id) continue;
    if (!byServer.has(v.server_id)) byServer.set(v.server_id, []);
    byServer.get(v.server_id).push(v);
  }
  const slot = h("div", { class: "slot", id: "servers-messages" });
  const row = (s) => {
    const disks = byServer.get(s.id) || [];
    const total = disks.reduce((sum, v) => sum + (v.size_bytes || 0), 0);
    return h(
      "tr",
      { dataset: { serverId: s.id, name: s.name } },
      h("td", { "data-label": "Name" }, h("a", { href: `#/servers/${s.id}`, class: "wrap", text: s.name })),
      h("td", { "data-label": "Type", text: s.type.toUpperCase() }),
      h("td", { "data-label": "Status" }, serverStatus(s.status)),
      h("td", { "data-label": "Image" }, imageLink(s.image_id)),
      h("td", { "data-label": "Volumes", dataset: { volumes: String(disks.length) }, text: `${disks.length} (${fmt.bytes(total)})` }),
      h("td", { "data-label": "Created" }, h("time", { datetime: s.created_at, title: s.created_at, text: fmt.date(s.created_at) })),
    );
  };
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", { text: "Servers" })),
    h("p", { class: "lead", text: "Servers of your project and their disks. A server is made from an image (copy-on-write: no data is copied), a whole-server image or a capsule; images made from a server share its unchanged data." }),
    slot,
    servers.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "images-table", id: "servers-table" },
            h("caption", { class: "visually-hidden", text: "Servers" }),
            h("thead", {}, h("tr", {}, ["Name", "Type", "Status", "Image", "Volumes", "Created"].map((t) => h("th", { scope: "col", text: t })))),
            h("tbody", {}, servers.map(row)),
          ),
        )
      : h("p", { class: "muted card", id: "servers-empty", text: "Your project has no servers yet." }),
    createServerCard(ctx),
  );
}

/** The form creating a server; on success it opens the new server's page. */
function createServerCard(ctx) {
  const result = h("div", { class: "slot", id: "server-create-result" });
  const name = h("input", { type: "text", id: "server-name", name: "name", maxlength: "255", autocomplete: "off", required: true });
  const type = select({ id: "server-type", name: "type" }, TYPES, "ecs");
  const wantSource = ctx.query.get("source") || "image";
  const sourceKind = select({ id: "server-source-kind", name: "source_kind" }, SOURCES, wantSource);
  const source = select({ id: "server-source", name: "source" }, [["", "Loading…"]], "");
  const vcpus = h("input", { type: "number", id: "server-vcpus", name: "vcpus", min: "1", max: "512", step: "1", value: "1", inputmode: "numeric" });
  const ram = h("input", { type: "number", id: "server-ram", name: "ram_mb", min: "1", step: "1", value: "1024", inputmode: "numeric" });
  const firmware = select({ id: "server-firmware", name: "firmware" }, FIRMWARE, "");
  const systemSize = h("input", { type: "number", id: "server-system-size", name: "system_volume_size", min: "1", step: "1", inputmode: "numeric" });
  const dataSizes = h("input", { type: "text", id: "server-data-sizes", name: "data_volumes", autocomplete: "off", inputmode: "numeric", placeholder: "for example 10, 20" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "create-server", text: "Create server" });

  // Only the answer for the kind chosen last fills the list (an earlier one may arrive later).
  let loads = 0;
  const loadSources = async () => {
    const seq = ++loads;
    replace(source, h("option", { value: "", text: "Loading…" }));
    try {
      const choices = await sourceChoices(sourceKind.value);
      if (seq !== loads) return;
      const want = ctx.query.get("image");
      replace(
        source,
        choices.length
          ? [h("option", { value: "", text: "Choose one" }), choices.map((c) => h("option", { value: c.id, selected: c.id === want, text: `${c.name || "(no name)"} · ${c.id.slice(0, 8)}` }))]
          : h("option", { value: "", text: "None available to your project" }),
      );
    } catch (e) {
      if (seq === loads) say(result, "error", `Could not list the images: ${api.explain(e)}`);
    }
  };
  sourceKind.addEventListener("change", loadSources);
  loadSources();

  const form = h(
    "form",
    { class: "card", id: "server-form", novalidate: true },
    h("h2", { id: "server-form-title", text: "Create a server" }),
    h("div", { class: "two" }, field("Name", name), field("Server type", type)),
    h("div", { class: "two" }, field("Create from", sourceKind), field("Image or capsule", source, "The newest ones your project may use.")),
    h("div", { class: "two" }, field("vCPUs", vcpus), field("Memory (MB)", ram, "At least the image's minimum RAM.")),
    h(
      "div",
      { class: "two" },
      field("System disk (GB)", systemSize, "Empty: the image's minimum disk or disk size, whichever is larger."),
      field("Firmware", firmware),
    ),
    field("Empty data disks (GB)", dataSizes, "Sizes separated by commas; they come after the disks of the image or capsule."),
    h("div", { class: "actions" }, submit),
    result,
  );
  const fail = (text, input) => {
    say(result, "error", text);
    input.focus();
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const wholeNumber = (input, min, max) => {
      const n = Number(input.value);
      return input.value.trim() !== "" && Number.isInteger(n) && n >= min && n <= max ? n : null;
    };
    if (!name.value.trim()) return fail("Give the server a name.", name);
    if (!source.value) return fail("Choose the image or capsule to create the server from.", source);
    const cpuCount = wholeNumber(vcpus, 1, 512);
    if (cpuCount === null) return fail("vCPUs is a whole number from 1 to 512.", vcpus);
    const ramMb = wholeNumber(ram, 1, 16 * 1024 * 1024);
    if (ramMb === null) return fail("Memory is a whole number of MB, 1 or more.", ram);
    let systemGb;
    if (systemSize.value.trim() !== "") {
      systemGb = wholeNumber(systemSize, 1, 65536);
      if (systemGb === null) return fail("The system disk size is a whole number of GB, 1 or more.", systemSize);
    }
    const sizes = dataSizes.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (sizes.some((s) => !/^[0-9]+$/.test(s) || Number(s) < 1 || Number(s) > 65536)) return fail("Data disk sizes are whole numbers of GB, 1 or more, separated by commas.", dataSizes);
    const fields = {
      name: name.value.trim(),
      type: type.value,
      vcpus: cpuCount,
      ram_mb: ramMb,
      firmware: firmware.value || undefined,
      system_volume_size: systemGb,
      data_volumes: sizes.length ? sizes.map((s) => ({ size: Number(s) })) : undefined,
    };
    if (sourceKind.value === "capsule") fields.capsule_id = source.value;
    else fields.image_id = source.value;
    await busy(submit, "Creating…", async () => {
      try {
        const server = await api.createServer(fields);
        toast(`Created server ${server.name}.`);
        ctx.navigate(`/servers/${server.id}`);
      } catch (err) {
        say(result, "error", `Could not create the server: ${api.explain(err)}`);
      }
    });
  });
  return form;
}

export async function renderServer(main, ctx) {
  const server = await api.getServer(ctx.params[0]);
  if (ctx.signal.aborted) return;
  const slot = h("div", { class: "slot", id: "server-messages" });
  const volumes = [...(server.volumes || [])].sort((a, b) => (a.device_index ?? 0) - (b.device_index ?? 0));
  const attributes = h(
    "dl",
    { class: "props", id: "server-attributes" },
    [
      ["ID", server.id, true],
      ["Type", server.type.toUpperCase()],
      ["Status", server.status],
      ["vCPUs", String(server.vcpus)],
      ["Memory", `${server.ram_mb} MB`],
      ["Architecture", server.architecture || "—"],
      ["Made from", server.image_id || "—", true],
      ["Created", fmt.date(server.created_at)],
    ].map(([k, v, mono]) => [h("dt", { text: k }), h("dd", { class: mono ? "mono wrap" : null, text: v })]),
  );
  const volumeRow = (v) =>
    h(
      "tr",
      { dataset: { volumeId: v.id, device: String(v.device_index ?? "") } },
      h("td", { "data-label": "Device", text: v.device_index === 0 ? "0 (system)" : String(v.device_index ?? "—") }),
      h("td", { "data-label": "Name", class: "wrap", text: v.name }),
      h("td", { "data-label": "Size" }, h("span", { title: fmt.exactBytes(v.size_bytes), text: `${v.size} GB` })),
      h("td", { "data-label": "Made from" }, imageLink(v.source_image_id)),
      h("td", { "data-label": "Encrypted", text: v.encrypted ? "Yes" : "No" }),
      h("td", { "data-label": "Status", text: v.status }),
    );
  const keepVolumes = h("input", { type: "checkbox", id: "server-keep-volumes", name: "keep_volumes" });
  const del = h("button", { type: "button", class: "btn btn-danger", id: "delete-server", text: "Delete server" });
  del.addEventListener("click", async () => {
    const keep = keepVolumes.checked;
    const yes = await confirmDialog({
      title: `Delete ${server.name}?`,
      body: keep ? "The server is deleted; its volumes stay, detached." : "The server and its volumes are deleted for good. Images made from it keep their data.",
      confirmLabel: "Delete server",
      danger: true,
    });
    if (!yes) return;
    await busy(del, "Deleting…", async () => {
      try {
        await api.deleteServer(server.id, keep);
        toast(`Deleted server ${server.name}.`);
        ctx.navigate("/servers");
      } catch (e) {
        say(slot, "error", `Could not delete the server: ${api.explain(e)}`);
      }
    });
  });
  const canChange = session.who() && session.who().role !== "reader";
  replace(
    main,
    h("p", { class: "breadcrumb" }, h("a", { href: "#/servers", text: "Servers" }), " / ", server.name),
    h("div", { class: "page-head" }, h("h1", { id: "server-title" }, server.name, " ", serverStatus(server.status))),
    slot,
    h("section", { class: "card", "aria-labelledby": "server-details-title" }, h("h2", { id: "server-details-title", text: "Details" }), attributes),
    h(
      "section",
      { class: "card", "aria-labelledby": "server-volumes-title" },
      h("h2", { id: "server-volumes-title", text: "Volumes" }),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "images-table", id: "server-volumes" },
          h("caption", { class: "visually-hidden", text: `Volumes of ${server.name}` }),
          h("thead", {}, h("tr", {}, ["Device", "Name", "Size", "Made from", "Encrypted", "Status"].map((t) => h("th", { scope: "col", text: t })))),
          h("tbody", {}, volumes.map(volumeRow)),
        ),
      ),
    ),
    canChange ? serverImageCard(server) : null,
    canChange
      ? h(
          "section",
          { class: "card", "aria-labelledby": "server-delete-title" },
          h("h2", { id: "server-delete-title", text: "Delete" }),
          h("div", { class: "check" }, keepVolumes, h("label", { for: "server-keep-volumes", text: "Keep its volumes (detached)" })),
          h("div", { class: "actions" }, del),
        )
      : null,
  );
}

/** Makes an image from the server: its system disk, or every disk as a whole-server image. Runs as a job. */
function serverImageCard(server) {
  const result = h("div", { class: "slot", id: "server-image-result" });
  const kindSystem = h("input", { type: "radio", name: "server-image-kind", id: "server-image-system", value: "system", checked: true });
  const kindWhole = h("input", { type: "radio", name: "server-image-kind", id: "server-image-whole", value: "whole" });
  const name = h("input", { type: "text", id: "server-image-name", name: "name", maxlength: "255", autocomplete: "off", value: `${server.name}-image` });
  const description = h("input", { type: "text", id: "server-image-description", name: "description", maxlength: "1024", autocomplete: "off" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "start-server-image", text: "Create image" });
  const form = h(
    "form",
    { class: "card", id: "server-image-form", novalidate: true, "aria-labelledby": "server-image-title" },
    h("h2", { id: "server-image-title", text: "Create an image from this server" }),
    h("p", { class: "hint", text: "The image shares the server's disk data: only what the server changed is stored again. It runs as a job." }),
    h(
      "fieldset",
      { class: "choice" },
      h("legend", { text: "Image of" }),
      h("div", { class: "check" }, kindSystem, h("label", { for: "server-image-system", text: "The system disk (a system disk image)" })),
      h("div", { class: "check" }, kindWhole, h("label", { for: "server-image-whole", text: "Every disk (a whole-server image)" })),
    ),
    h("div", { class: "two" }, field("Name", name), field("Description", description)),
    h("div", { class: "actions" }, submit),
    result,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!name.value.trim()) {
      say(result, "error", "Give the image a name.");
      name.focus();
      return;
    }
    const whole = kindWhole.checked;
    await busy(submit, "Starting…", async () => {
      try {
        const start = whole ? api.wholeImageFromServer : api.imageFromServer;
        const jobId = await start(server.id, name.value.trim(), description.value.trim());
        replace(
          result,
          h(
            "div",
            { class: "msg msg-success", role: "status" },
            `${whole ? "Whole-server image" : "Image"} started. `,
            h("a", { href: `#/jobs/${jobId}`, id: "server-image-job-link", dataset: { jobId }, text: "Follow the job" }),
            "; the image is in your private images when it ends.",
          ),
        );
      } catch (err) {
        say(result, "error", `Could not create the image: ${api.explain(err)}`);
      }
    });
  });
  return form;
}
