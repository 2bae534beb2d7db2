// One image: every property (the editable ones in a form), custom properties, tags, members, and
// the actions download, favourite, deactivate/reactivate (administrators) and delete (to the recycle
// bin); export, copy, encryption, deprecation, lineage and the image's jobs come from image-actions.js.

import * as api from "../api.js";
import * as session from "../session.js";
import * as fmt from "../format.js";
import * as transfer from "../transfer.js";
import { busy, confirmDialog, field, h, replace, say, select, toast, uid } from "../dom.js";
import { statusBadge } from "./images.js";
import { capsuleCard, copyCard, exportCard, regionCopyCard, favouriteButton, imageJobsCard, lineageCard, protectionCard } from "./image-actions.js";

/** Attributes the Images API owns: shown, never offered as custom properties. */
const BASE = new Set([
  "id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo", "os_hash_value", "owner", "size",
  "virtual_size", "container_format", "disk_format", "min_disk", "min_ram", "created_at", "updated_at", "tags", "self", "file",
  "schema", "locations", "direct_url", "stores",
]);

export async function renderImage(main, ctx) {
  const id = decodeURIComponent(ctx.params[0]);
  const image = await api.getImage(id);
  if (ctx.signal.aborted) return;
  const me = session.who();
  const isOwner = image.owner === me.project.id;
  const canEdit = isOwner || me.is_admin;
  const reload = () => ctx.navigate(`/images/${image.id}`);
  const slot = h("div", { class: "slot", id: "image-messages" });
  const jobs = imageJobsCard(image);

  document.title = `${image.name || image.id} · IMS console`;
  replace(
    main,
    h("p", { class: "breadcrumb" }, h("a", { href: "#/images", text: "Images" }), " / ", image.name || image.id),
    h(
      "div",
      { class: "page-head" },
      h("h1", { id: "image-title" }, image.name || "(no name)", " ", statusBadge(image.status)),
      actionsBar(image, me, slot, ctx),
    ),
    slot,
    h(
      "div",
      { class: "image-grid" },
      detailsCard(image, canEdit, slot, reload),
      propertiesCard(image, canEdit, slot, reload),
      tagsCard(image, canEdit, slot, reload),
      membersCard(image, me, isOwner, slot, reload),
      protectionCard(image),
      lineageCard(image),
      image.__image_kind === "capsule" ? capsuleCard(image) : null,
      exportCard(image, (jobId) => jobs.add(jobId)),
      copyCard(image, (jobId) => jobs.add(jobId)),
      regionCopyCard(image, (jobId) => jobs.add(jobId)),
      jobs,
    ),
  );
}

function actionsBar(image, me, slot, ctx) {
  const buttons = [];
  const progress = h("div", { class: "download-progress", id: "download-progress", role: "status" });

  const download = h("button", { type: "button", class: "btn", id: "download", text: "Download" });
  download.disabled = image.status !== "active" && image.status !== "deactivated";
  download.title = download.disabled ? "Only images with data can be downloaded" : "";
  download.addEventListener("click", async () => {
    say(slot);
    const name = fmt.fileNameFor(image);
    download.disabled = true;
    try {
      const result = await transfer.download(image, name, {
        confirmLarge: (size) =>
          confirmDialog({
            title: "Download into memory?",
            body: `This browser cannot write a download straight to disk, so the whole image (${fmt.bytes(size)}) is held in memory before it is saved. Use the ims CLI or a Chromium-based browser for large images. Download anyway?`,
            confirmLabel: "Download",
          }),
        onProgress: ({ loaded, total, rate }) => {
          progress.textContent = `Downloaded ${fmt.bytes(loaded)}${total ? ` of ${fmt.bytes(total)}` : ""} · ${fmt.rate(rate)}`;
        },
      });
      if (result.saved) toast(`Saved ${name}.`);
      progress.textContent = result.saved ? `Saved ${name}.` : "";
    } catch (e) {
      progress.textContent = "";
      say(slot, "error", `Download failed: ${api.explain(e)}`);
    } finally {
      download.disabled = false;
    }
  });
  buttons.push(download, favouriteButton(image, slot));

  if (me.is_admin && (image.status === "active" || image.status === "deactivated")) {
    const deactivating = image.status === "active";
    const b = h("button", { type: "button", class: "btn", id: deactivating ? "deactivate" : "reactivate", text: deactivating ? "Deactivate" : "Reactivate" });
    b.addEventListener("click", () =>
      busy(b, deactivating ? "Deactivating…" : "Reactivating…", async () => {
        try {
          await (deactivating ? api.deactivate(image.id) : api.reactivate(image.id));
          toast(deactivating ? "Image deactivated: only administrators can download it now." : "Image reactivated.");
          ctx.navigate(`/images/${image.id}`);
        } catch (e) {
          say(slot, "error", api.explain(e));
        }
      }),
    );
    buttons.push(b);
  }

  if (image.owner === me.project.id || me.is_admin) {
    const del = h("button", { type: "button", class: "btn btn-danger", id: "delete", text: "Delete" });
    if (image.protected) {
      del.disabled = true;
      del.title = "Protected images cannot be deleted: turn protection off first";
    }
    del.addEventListener("click", async () => {
      const yes = await confirmDialog({
        title: `Delete ${image.name || image.id}?`,
        body: "The image goes to the recycle bin: projects it is shared with lose it, and it can be restored from the bin (same ID, data and checksums) until it is purged.",
        confirmLabel: "Move to recycle bin",
        danger: true,
      });
      if (!yes) return;
      await busy(del, "Deleting…", async () => {
        try {
          await api.deleteImage(image.id);
          toast(`Moved ${image.name || image.id} to the recycle bin.`);
          ctx.navigate("/images");
        } catch (e) {
          say(slot, "error", api.explain(e));
        }
      });
    });
    buttons.push(del);
  }
  return h("div", { class: "toolbar" }, h("div", { class: "actions", role: "group", "aria-label": "Image actions" }, buttons), progress);
}

/** Base attributes: a form for the editable ones, a list for the rest. */
function detailsCard(image, canEdit, slot, reload) {
  const rows = [
    ["ID", image.id, true],
    ["Owner project", image.owner, true],
    ["Type", fmt.kind(image)],
    ["Size", `${fmt.bytes(image.size)} (${fmt.exactBytes(image.size)})`],
    ["Virtual size", image.virtual_size == null ? "—" : `${fmt.bytes(image.virtual_size)} (${fmt.exactBytes(image.virtual_size)})`],
    ["Disk format", image.disk_format || "—"],
    ["Container format", image.container_format || "—"],
    ["Checksum (MD5)", image.checksum || "—", true],
    [`Hash (${image.os_hash_algo || "none"})`, image.os_hash_value || "—", true],
    ["Created", fmt.date(image.created_at)],
    ["Updated", fmt.date(image.updated_at)],
  ];
  const list = h(
    "dl",
    { class: "props", id: "image-attributes" },
    rows.map(([k, v, mono]) => [h("dt", { text: k }), h("dd", { class: mono ? "mono wrap" : null, text: v })]),
  );
  const ownerDd = list.querySelectorAll("dd")[1];
  api.projectName(image.owner).then((name) => {
    if (name && name !== image.owner) ownerDd.textContent = `${name} (${image.owner})`;
  });

  if (!canEdit) {
    return h(
      "section",
      { class: "card", "aria-labelledby": "details-title" },
      h("h2", { id: "details-title", text: "Details" }),
      h(
        "dl",
        { class: "props" },
        [
          ["Visibility", fmt.VISIBILITY_LABELS[image.visibility] || image.visibility],
          ["Protected", image.protected ? "Yes" : "No"],
          ["Minimum disk", `${image.min_disk} GB`],
          ["Minimum RAM", `${image.min_ram} MB`],
        ].map(([k, v]) => [h("dt", { text: k }), h("dd", { text: v })]),
      ),
      list,
    );
  }

  const name = h("input", { type: "text", id: "edit-name", name: "name", value: image.name || "", maxlength: "255" });
  const visibility = select({ id: "edit-visibility", name: "visibility" }, Object.entries(fmt.VISIBILITY_LABELS), image.visibility);
  const minDisk = h("input", { type: "number", id: "edit-min-disk", name: "min_disk", min: "0", step: "1", value: String(image.min_disk ?? 0), inputmode: "numeric" });
  const minRam = h("input", { type: "number", id: "edit-min-ram", name: "min_ram", min: "0", step: "1", value: String(image.min_ram ?? 0), inputmode: "numeric" });
  const protectedBox = h("input", { type: "checkbox", id: "edit-protected", name: "protected", checked: image.protected });
  const hiddenBox = h("input", { type: "checkbox", id: "edit-hidden", name: "os_hidden", checked: image.os_hidden });
  const save = h("button", { type: "submit", class: "btn btn-primary", id: "save-details", text: "Save changes" });
  const form = h(
    "form",
    { id: "details-form", novalidate: true },
    field("Name", name),
    field("Visibility", visibility, image.visibility === "public" || !session.isAdmin() ? "Only administrators can make an image public." : null),
    h("div", { class: "two" }, field("Minimum disk (GB)", minDisk), field("Minimum RAM (MB)", minRam)),
    h("div", { class: "check" }, protectedBox, h("label", { for: "edit-protected", text: "Protected (cannot be deleted)" })),
    h("div", { class: "check" }, hiddenBox, h("label", { for: "edit-hidden", text: "Hidden from default image lists" })),
    h("div", { class: "actions" }, save),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const ops = [];
    const replaceOp = (path, value) => ops.push({ op: "replace", path: `/${path}`, value });
    if (name.value.trim() !== (image.name || "")) replaceOp("name", name.value.trim());
    if (visibility.value !== image.visibility) replaceOp("visibility", visibility.value);
    for (const [input, key] of [[minDisk, "min_disk"], [minRam, "min_ram"]]) {
      const n = Number(input.value);
      if (!Number.isInteger(n) || n < 0) {
        say(slot, "error", `${key === "min_disk" ? "Minimum disk" : "Minimum RAM"} must be a whole number, 0 or more.`);
        input.focus();
        return;
      }
      if (n !== image[key]) replaceOp(key, n);
    }
    if (protectedBox.checked !== image.protected) replaceOp("protected", protectedBox.checked);
    if (hiddenBox.checked !== image.os_hidden) replaceOp("os_hidden", hiddenBox.checked);
    if (!ops.length) {
      say(slot, "info", "Nothing changed.");
      return;
    }
    await busy(save, "Saving…", async () => {
      try {
        await api.patchImage(image.id, ops);
        toast("Saved.");
        reload();
      } catch (err) {
        say(slot, "error", `Could not save: ${api.explain(err)}`);
      }
    });
  });
  return h("section", { class: "card", "aria-labelledby": "details-title" }, h("h2", { id: "details-title", text: "Details" }), form, list);
}

/** Custom properties: a table with remove buttons and a form to set one. */
function propertiesCard(image, canEdit, slot, reload) {
  const entries = Object.entries(image).filter(([k, v]) => !BASE.has(k) && typeof v !== "object");
  entries.sort(([a], [b]) => a.localeCompare(b));
  const table = entries.length
    ? h(
        "table",
        { class: "kv", id: "properties-table" },
        h("caption", { class: "visually-hidden", text: "Custom properties" }),
        h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Key" }), h("th", { scope: "col", text: "Value" }), canEdit ? h("th", { scope: "col", class: "visually-hidden-text", text: "Actions" }) : null)),
        h(
          "tbody",
          {},
          entries.map(([k, v]) => {
            const remove = canEdit
              ? h("button", {
                  type: "button",
                  class: "btn btn-small",
                  "aria-label": `Remove property ${k}`,
                  dataset: { removeProperty: k },
                  text: "Remove",
                })
              : null;
            if (remove)
              remove.addEventListener("click", () =>
                busy(remove, "Removing…", async () => {
                  try {
                    await api.patchImage(image.id, [{ op: "remove", path: `/${escapePointer(k)}` }]);
                    toast(`Removed property ${k}.`);
                    reload();
                  } catch (e) {
                    say(slot, "error", api.explain(e));
                  }
                }),
              );
            return h("tr", { dataset: { property: k } }, h("th", { scope: "row", class: "mono wrap", text: k }), h("td", { class: "wrap", text: String(v) }), canEdit ? h("td", {}, remove) : null);
          }),
        ),
      )
    : h("p", { class: "muted", text: "No custom properties." });

  let form = null;
  if (canEdit) {
    const key = h("input", { type: "text", id: "prop-key", name: "key", required: true, maxlength: "255", autocomplete: "off", spellcheck: "false" });
    const value = h("input", { type: "text", id: "prop-value", name: "value", maxlength: "255", autocomplete: "off" });
    const add = h("button", { type: "submit", class: "btn", id: "add-property", text: "Set property" });
    form = h("form", { class: "inline-form", id: "property-form", novalidate: true }, field("Key", key), field("Value", value), h("div", { class: "actions" }, add));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const k = key.value.trim();
      if (!k) {
        say(slot, "error", "Give the property a key.");
        key.focus();
        return;
      }
      if (BASE.has(k)) {
        say(slot, "error", `${k} is a built-in attribute: change it in Details.`);
        key.focus();
        return;
      }
      await busy(add, "Saving…", async () => {
        try {
          await api.patchImage(image.id, [{ op: "add", path: `/${escapePointer(k)}`, value: value.value }]);
          toast(`Set property ${k}.`);
          reload();
        } catch (err) {
          say(slot, "error", `Could not set ${k}: ${api.explain(err)}`);
        }
      });
    });
  }
  return h("section", { class: "card", "aria-labelledby": "props-title" }, h("h2", { id: "props-title", text: "Custom properties" }), table, form);
}

function escapePointer(key) {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

function tagsCard(image, canEdit, slot, reload) {
  const tags = image.tags || [];
  const list = tags.length
    ? h(
        "ul",
        { class: "tags", id: "tag-list" },
        tags.map((t) => {
          const remove = canEdit ? h("button", { type: "button", class: "tag-remove", "aria-label": `Remove tag ${t}`, dataset: { removeTag: t }, text: "×" }) : null;
          if (remove)
            remove.addEventListener("click", async () => {
              remove.disabled = true;
              try {
                await api.removeTag(image.id, t);
                toast(`Removed tag ${t}.`);
                reload();
              } catch (e) {
                remove.disabled = false;
                say(slot, "error", api.explain(e));
              }
            });
          return h("li", { class: "tag", dataset: { tag: t } }, h("span", { text: t }), remove);
        }),
      )
    : h("p", { class: "muted", id: "tag-list-empty", text: "No tags." });
  let form = null;
  if (canEdit) {
    const input = h("input", { type: "text", id: "new-tag", name: "tag", maxlength: "255", autocomplete: "off" });
    const add = h("button", { type: "submit", class: "btn", id: "add-tag", text: "Add tag" });
    form = h("form", { class: "inline-form", id: "tag-form", novalidate: true }, field("New tag", input), h("div", { class: "actions" }, add));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const t = input.value.trim();
      if (!t) {
        say(slot, "error", "Type a tag to add.");
        input.focus();
        return;
      }
      await busy(add, "Adding…", async () => {
        try {
          await api.addTag(image.id, t);
          toast(`Added tag ${t}.`);
          reload();
        } catch (err) {
          say(slot, "error", `Could not add the tag: ${api.explain(err)}`);
        }
      });
    });
  }
  return h("section", { class: "card", "aria-labelledby": "tags-title" }, h("h2", { id: "tags-title", text: "Tags" }), list, form);
}

/** Members: the owner manages them; a member project answers its own share. */
function membersCard(image, me, isOwner, slot, reload) {
  const section = h("section", { class: "card", id: "members", "aria-labelledby": "members-title" }, h("h2", { id: "members-title", text: "Sharing" }));
  if (image.visibility !== "shared") {
    section.append(
      h("p", { class: "muted", text: `This image is ${fmt.VISIBILITY_LABELS[image.visibility]?.toLowerCase() || image.visibility}. ` + (isOwner || me.is_admin ? "Set its visibility to Shared in Details to share it with other projects." : "") }),
    );
    return section;
  }
  const body = h("div", {}, h("p", { class: "loading", text: "Loading members…" }));
  section.append(body);
  if (!isOwner && !me.is_admin) {
    api
      .getMember(image.id, me.project.id)
      .then((m) => replace(body, memberAnswer(image, me, m, slot, reload)))
      .catch((e) => replace(body, h("p", { class: "muted", text: e.status === 404 ? "This image is not shared with your project." : api.explain(e) })));
    return section;
  }
  api
    .listMembers(image.id)
    .then((members) => replace(body, ownerMembers(image, me, members, slot, reload)))
    .catch((e) => replace(body, h("div", { class: "msg msg-error", role: "alert", text: api.explain(e) })));
  return section;
}

function memberAnswer(image, me, m, slot, reload) {
  const answer = (status) => async (e) =>
    busy(e.currentTarget, "Saving…", async () => {
      try {
        await api.setMemberStatus(image.id, me.project.id, status);
        toast(status === "accepted" ? "Share accepted." : "Share rejected.");
        reload();
      } catch (err) {
        say(slot, "error", api.explain(err));
      }
    });
  return h(
    "div",
    { class: "member-answer" },
    h("p", {}, "Shared with your project. Your answer: ", h("strong", { id: "my-member-status", text: m.status }), "."),
    h(
      "div",
      { class: "actions" },
      m.status !== "accepted" ? h("button", { type: "button", class: "btn btn-primary", id: "accept-share", text: "Accept", onclick: answer("accepted") }) : null,
      m.status !== "rejected" ? h("button", { type: "button", class: "btn", id: "reject-share", text: "Reject", onclick: answer("rejected") }) : null,
    ),
  );
}

function ownerMembers(image, me, members, slot, reload) {
  const table = members.length
    ? h(
        "table",
        { class: "kv", id: "members-table" },
        h("caption", { class: "visually-hidden", text: "Projects this image is shared with" }),
        h("thead", {}, h("tr", {}, h("th", { scope: "col", text: "Project" }), h("th", { scope: "col", text: "Status" }), h("th", { scope: "col", text: "Since" }), h("th", { scope: "col", class: "visually-hidden-text", text: "Actions" }))),
        h(
          "tbody",
          {},
          members.map((m) => {
            const projectCell = h("td", { class: "mono wrap", text: m.member_id });
            api.projectName(m.member_id).then((n) => {
              if (n && n !== m.member_id) projectCell.textContent = `${n} (${m.member_id})`;
            });
            const remove = h("button", { type: "button", class: "btn btn-small", "aria-label": `Stop sharing with ${m.member_id}`, dataset: { removeMember: m.member_id }, text: "Remove" });
            remove.addEventListener("click", () =>
              busy(remove, "Removing…", async () => {
                try {
                  await api.removeMember(image.id, m.member_id);
                  toast("No longer shared with that project.");
                  reload();
                } catch (e) {
                  say(slot, "error", api.explain(e));
                }
              }),
            );
            return h(
              "tr",
              { dataset: { member: m.member_id } },
              projectCell,
              h("td", {}, h("span", { class: `status member-${m.status}`, dataset: { memberStatus: m.status }, text: m.status })),
              h("td", {}, h("time", { datetime: m.created_at, text: fmt.date(m.created_at) })),
              h("td", {}, remove),
            );
          }),
        ),
      )
    : h("p", { class: "muted", text: "Not shared with any project yet." });
  const project = h("input", { type: "text", id: "member-project", name: "member", autocomplete: "off", spellcheck: "false" });
  const add = h("button", { type: "submit", class: "btn", id: "add-member", text: "Share" });
  const form = h("form", { class: "inline-form", id: "member-form", novalidate: true }, field("Project (name or ID)", project, "The project accepts the share in its own session."), h("div", { class: "actions" }, add));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const wanted = project.value.trim();
    if (!wanted) {
      say(slot, "error", "Name the project to share with.");
      project.focus();
      return;
    }
    await busy(add, "Sharing…", async () => {
      try {
        let target = wanted;
        try {
          target = (await api.lookupProject(wanted)).id;
        } catch (err) {
          if (err.status !== 404) throw err;
          say(slot, "error", `There is no project named ${wanted}.`);
          project.focus();
          return;
        }
        await api.addMember(image.id, target);
        toast(`Shared with ${wanted}: it shows as pending until that project accepts.`);
        reload();
      } catch (err) {
        say(slot, "error", `Could not share: ${api.explain(err)}`);
      }
    });
  });
  return h("div", {}, table, form, h("p", { class: "hint", id: uid("m"), text: "Statuses: pending (not answered yet), accepted (the project sees the image in its lists), rejected." }));
}
