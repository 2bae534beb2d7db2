// Quotas and usage of the signed-in project: GET /v2/info/usage (Glance) and, where the IMS API
// answers, the private-image quota of GET /v1/cloudimages/quota.

import * as api from "../api.js";
import * as session from "../session.js";
import * as fmt from "../format.js";
import { h, replace } from "../dom.js";

const ITEMS = [
  ["image_count_total", "Images", (n) => fmt.count(n)],
  ["image_size_total", "Stored image data", (n) => fmt.bytes(n)],
  ["image_count_uploading", "Uploads in progress", (n) => fmt.count(n)],
  ["image_stage_total", "Staged data", (n) => fmt.bytes(n)],
];

export async function renderUsage(main, ctx) {
  const me = session.who();
  const [usage, quota, stores] = await Promise.all([api.usage(), api.imageQuota().catch(() => null), api.stores().catch(() => [])]);
  if (ctx.signal.aborted) return;

  const cards = ITEMS.map(([key, label, show]) => {
    const item = usage[key] || { usage: 0, limit: -1 };
    return meterCard(key, label, item.usage, item.limit, show);
  });
  if (quota) cards.unshift(meterCard("private_image_quota", "Private images (IMS quota)", quota.used, quota.quota, (n) => fmt.count(n)));

  replace(
    main,
    h("div", { class: "page-head" }, h("h1", { text: "Quotas and usage" })),
    h("p", { class: "lead" }, "Project ", h("strong", { text: me.project.name }), ` (${me.project.id}).`),
    h("div", { class: "usage-grid", id: "usage" }, cards),
    stores.length
      ? h(
          "section",
          { class: "card", "aria-labelledby": "stores-title" },
          h("h2", { id: "stores-title", text: "Stores" }),
          h("ul", {}, stores.map((s) => h("li", {}, h("strong", { text: s.id }), `: ${s.description}${s.default ? " (default)" : ""}`))),
        )
      : null,
  );
}

function meterCard(key, label, used, limit, show) {
  const limited = typeof limit === "number" && limit >= 0;
  const id = `usage-${key}`;
  return h(
    "section",
    { class: "card usage-card", id, "aria-labelledby": `${id}-title` },
    h("h2", { id: `${id}-title`, text: label }),
    h("p", { class: "usage-value", dataset: { used: String(used) }, text: limited ? `${show(used)} of ${show(limit)}` : show(used) }),
    limited
      ? h("meter", { min: "0", max: String(Math.max(limit, 1)), value: String(used), low: String(limit * 0.7), high: String(limit * 0.9), optimum: "0", "aria-labelledby": `${id}-title` })
      : h("p", { class: "muted", text: "No limit." }),
  );
}
