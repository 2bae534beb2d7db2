// Administration → Master keys (/kms/v1/keys): the KMS keys images are encrypted under. List,
// create, disable (every image encrypted under the key becomes unreadable) and enable.

import * as api from "../api.js";
import * as fmt from "../format.js";
import { busy, confirmDialog, field, h, replace, say, toast } from "../dom.js";
import { adminPage } from "./admin.js";

export async function renderKeys(main, ctx) {
  const body = adminPage(main, "keys");
  const keys = await api.listKeys();
  if (ctx.signal.aborted) return;
  const slot = h("div", { class: "slot", id: "keys-messages" });
  const reload = () => ctx.navigate("/admin/keys");
  const alias = h("input", { type: "text", id: "new-key-alias", name: "alias", maxlength: "255", autocomplete: "off" });
  const description = h("input", { type: "text", id: "new-key-description", name: "description", maxlength: "255", autocomplete: "off" });
  const create = h("button", { type: "submit", class: "btn btn-primary", id: "create-key", text: "Create key" });
  const form = h("form", { class: "card", id: "key-form", novalidate: true }, h("h2", { text: "New master key" }), h("div", { class: "two" }, field("Alias", alias), field("Description", description)), h("div", { class: "actions" }, create));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!alias.value.trim()) {
      say(slot, "error", "Give the key an alias.");
      alias.focus();
      return;
    }
    await busy(create, "Creating…", async () => {
      try {
        const k = await api.createKey(alias.value.trim(), description.value.trim());
        toast(`Created master key ${k.alias}.`);
        reload();
      } catch (err) {
        say(slot, "error", `Could not create the key: ${api.explain(err)}`);
      }
    });
  });
  const row = (k) => {
    const enabled = k.state === "enabled";
    const b = h("button", { type: "button", class: enabled ? "btn btn-small btn-danger" : "btn btn-small", text: enabled ? "Disable" : "Enable", "aria-label": `${enabled ? "Disable" : "Enable"} key ${k.alias}`, dataset: { toggleKey: k.id } });
    b.addEventListener("click", async () => {
      if (enabled && !(await confirmDialog({ title: `Disable ${k.alias}?`, body: "Images encrypted under this key can no longer be read, downloaded or uploaded to until it is enabled again.", confirmLabel: "Disable key", danger: true }))) return;
      await busy(b, enabled ? "Disabling…" : "Enabling…", async () => {
        try {
          await api.setKeyEnabled(k.id, !enabled);
          toast(`${enabled ? "Disabled" : "Enabled"} ${k.alias}.`);
          reload();
        } catch (err) {
          say(slot, "error", api.explain(err));
        }
      });
    });
    return h(
      "tr",
      { dataset: { keyId: k.id, alias: k.alias, state: k.state } },
      h("td", { "data-label": "Alias", text: k.alias }),
      h("td", { "data-label": "ID", class: "mono wrap", text: k.id }),
      h("td", { "data-label": "Description", text: k.description || "—" }),
      h("td", { "data-label": "State" }, h("span", { class: `status ${enabled ? "status-active" : "status-killed"}`, text: k.state })),
      h("td", { "data-label": "Created", text: fmt.date(k.created_at) }),
      h("td", { "data-label": "" }, b),
    );
  };
  replace(
    body,
    h("p", { class: "lead", text: "Images created with the property __system__cmkid=<key ID> are encrypted under that key. Keys never leave the KMS; they cannot be deleted." }),
    slot,
    keys.length
      ? h(
          "div",
          { class: "table-wrap" },
          h("table", { class: "images-table", id: "keys-table" }, h("caption", { class: "visually-hidden", text: "Master keys" }), h("thead", {}, h("tr", {}, ["Alias", "ID", "Description", "State", "Created", "Actions"].map((t) => h("th", { scope: "col", text: t })))), h("tbody", {}, keys.map(row))),
        )
      : h("p", { class: "muted card", id: "keys-empty", text: "No master keys yet." }),
    form,
  );
}
