// Create a capsule (POST /v1/capsules): a base system disk image, one or more application data disk
// images (attached in the order listed) and cloud-init user data, deployed together as one server.

import * as api from "../api.js";
import { busy, field, h, replace, say } from "../dom.js";
import { isSystemImage } from "./servers.js";

/** Most application images one capsule takes, and the largest user data (bytes), as the API checks. */
const MAX_APP_IMAGES = 16;
const MAX_USER_DATA = 65535;

/** Standard base64 of bytes, in slices (no argument-count limit on large inputs). */
function base64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

/** The capsule form of the create page. */
export function capsuleCard() {
  const result = h("div", { class: "slot", id: "capsule-result" });
  const name = h("input", { type: "text", id: "capsule-name", name: "name", maxlength: "255", autocomplete: "off" });
  const base = h("select", { id: "capsule-base", name: "base_image_id" }, h("option", { value: "", text: "Loading images…" }));
  const appsList = h("div", { class: "check-list", id: "capsule-apps" }, h("p", { class: "muted", text: "Loading data disk images…" }));
  const userData = h("textarea", { id: "capsule-user-data", name: "user_data", rows: "6", spellcheck: "false", class: "mono", placeholder: "#cloud-config" });
  const submit = h("button", { type: "submit", class: "btn btn-primary", id: "create-capsule", text: "Create capsule" });

  Promise.all([api.listImages({ status: "active", limit: 200, sort: "created_at:desc" }), api.listImages({ status: "active", virtual_env_type: "DataImage", limit: 200, sort: "name:asc" })])
    .then(([all, data]) => {
      const bases = all.images.filter(isSystemImage);
      replace(
        base,
        bases.length ? [h("option", { value: "", text: "Choose the base image" }), bases.map((i) => h("option", { value: i.id, text: `${i.name || "(no name)"} · ${i.id.slice(0, 8)}` }))] : h("option", { value: "", text: "No active system disk images" }),
      );
      replace(
        appsList,
        data.images.length
          ? data.images.map((i) => {
              const box = h("input", { type: "checkbox", id: `capsule-app-${i.id}`, name: "app_image_ids", value: i.id });
              return h("div", { class: "check" }, box, h("label", { for: box.id, text: `${i.name || "(no name)"} · ${i.id.slice(0, 8)}` }));
            })
          : h("p", { class: "muted", text: "Your project has no active data disk images (virtual_env_type DataImage)." }),
      );
    })
    .catch((e) => say(result, "error", `Could not list the images: ${api.explain(e)}`));

  const form = h(
    "form",
    { class: "card", id: "capsule-form", novalidate: true, "aria-labelledby": "capsule-title" },
    h("h2", { id: "capsule-title", text: "Create a capsule" }),
    h("p", { class: "hint", text: "A capsule deploys as one server: the base image as its system disk, each application image as a data disk (in the order listed), and the user data on a cloud-init config drive." }),
    h("div", { class: "two" }, field("Name", name), field("Base image", base, "An active system disk image.")),
    h("fieldset", { class: "choice stacked", id: "capsule-apps-set" }, h("legend", { text: `Application images (1 to ${MAX_APP_IMAGES})` }), appsList),
    field("Cloud-init user data", userData, "Optional; at most 64 KiB."),
    h("div", { class: "actions" }, submit),
    result,
  );
  const fail = (text, input) => {
    say(result, "error", text);
    input.focus();
  };
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const apps = [...appsList.querySelectorAll("input[type=checkbox]:checked")].map((b) => b.value);
    const bytes = new TextEncoder().encode(userData.value);
    if (!name.value.trim()) return fail("Give the capsule a name.", name);
    if (!base.value) return fail("Choose the base image.", base);
    if (apps.length < 1 || apps.length > MAX_APP_IMAGES) return fail(`Choose 1 to ${MAX_APP_IMAGES} application images.`, appsList.querySelector("input") || base);
    if (bytes.length > MAX_USER_DATA) return fail(`The user data is ${bytes.length} bytes; at most ${MAX_USER_DATA} are accepted.`, userData);
    await busy(submit, "Creating…", async () => {
      try {
        const capsule = await api.createCapsule({
          name: name.value.trim(),
          base_image_id: base.value,
          app_image_ids: apps,
          user_data: bytes.length ? base64(bytes) : undefined,
        });
        replace(
          result,
          h(
            "div",
            { class: "msg msg-success", role: "status" },
            `Created capsule ${capsule.image.name}. `,
            h("a", { href: `#/images/${capsule.image.id}`, id: "capsule-link", dataset: { capsuleId: capsule.image.id }, text: "Open it" }),
            ", see ",
            h("a", { href: "#/images?tab=capsules", id: "capsules-tab-link", text: "your capsules" }),
            ", or ",
            h("a", { href: `#/servers?source=capsule&image=${capsule.image.id}`, text: "create a server from it" }),
            ".",
          ),
        );
      } catch (err) {
        say(result, "error", `Could not create the capsule: ${api.explain(err)}`);
      }
    });
  });
  return form;
}
