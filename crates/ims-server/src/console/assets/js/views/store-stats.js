// Administration → Store statistics (/admin/v1/store/stats): logical bytes (what users uploaded)
// against physical bytes (what the store keeps after deduplication, compression and encryption),
// the dedup ratio, chunk counts, and the same per project, with a bar chart drawn in SVG.

import * as api from "../api.js";
import * as fmt from "../format.js";
import { h, replace } from "../dom.js";
import { adminPage } from "./admin.js";

const SVG = "http://www.w3.org/2000/svg";

/** An SVG element with attributes (presentation attributes only: the page allows no inline style). */
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export async function renderStoreStats(main, ctx) {
  const body = adminPage(main, "store");
  replace(body, h("p", { class: "loading", text: "Counting the store… (this reads every manifest)" }));
  const [stats, projects] = await Promise.all([api.storeStats(), api.listProjects().catch(() => [])]);
  if (ctx.signal.aborted) return;
  const names = new Map(projects.map((p) => [p.id, p.name]));
  const saved = Math.max(0, stats.logical_bytes - stats.physical_bytes);
  const card = (id, label, value, hint) =>
    h("section", { class: "card usage-card", id: `stat-${id}`, "aria-labelledby": `stat-${id}-title` }, h("h2", { id: `stat-${id}-title`, text: label }), h("p", { class: "usage-value", text: value }), hint ? h("p", { class: "muted", text: hint }) : null);
  const groups = [{ label: "Whole store", logical: stats.logical_bytes, physical: stats.physical_bytes }].concat(
    stats.projects.map((p) => ({ label: names.get(p.project_id) || p.project_id, logical: p.logical_bytes, physical: p.physical_bytes })),
  );
  replace(
    body,
    h("p", { class: "lead", text: `Counted in ${stats.duration_seconds.toFixed(2)} s.` }),
    h(
      "div",
      { class: "usage-grid", id: "store-stats" },
      card("logical", "Logical bytes", fmt.bytes(stats.logical_bytes), `${fmt.count(stats.images)} images with data (${fmt.exactBytes(stats.logical_bytes)})`),
      card("physical", "Physical bytes", fmt.bytes(stats.physical_bytes), `Chunks and manifests as stored (${fmt.exactBytes(stats.physical_bytes)})`),
      card("ratio", "Dedup ratio", `${stats.dedup_ratio.toFixed(2)} : 1`, `Logical bytes per referenced chunk byte; ${fmt.bytes(saved)} not stored twice`),
      card("chunks", "Chunks", fmt.count(stats.chunks), `${fmt.count(stats.referenced_chunks)} referenced (${fmt.bytes(stats.referenced_bytes)}), ${fmt.count(stats.unreferenced_chunks)} unreferenced (${fmt.bytes(stats.unreferenced_bytes)}); ${fmt.count(stats.manifests)} manifests (${fmt.bytes(stats.manifest_bytes)})`),
    ),
    h("section", { class: "card", "aria-labelledby": "chart-title" }, h("h2", { id: "chart-title", text: "Logical and physical bytes" }), chart(groups), dataTable(groups)),
  );
}

/** Two bars per group (logical, physical) on one scale, with a legend; the table below has the numbers. */
function chart(groups) {
  const width = 640;
  const labelHeight = 20;
  const bar = 16;
  const gap = 14;
  const rowHeight = labelHeight + 2 * bar + 4 + gap;
  const legend = 28;
  const height = legend + groups.length * rowHeight;
  const max = Math.max(1, ...groups.flatMap((g) => [g.logical, g.physical]));
  const scale = (n) => Math.max(n > 0 ? 2 : 0, Math.round((n / max) * (width - 110)));
  const svg = s(
    "svg",
    { id: "store-chart", class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "store-chart-title store-chart-desc", preserveAspectRatio: "xMinYMin meet" },
    s("title", { id: "store-chart-title" }, "Logical and physical bytes, whole store and per project"),
    s("desc", { id: "store-chart-desc" }, groups.map((g) => `${g.label}: ${fmt.bytes(g.logical)} logical, ${fmt.bytes(g.physical)} physical`).join("; ")),
    s("rect", { class: "bar-logical", x: 0, y: 4, width: 14, height: 14 }),
    s("text", { class: "chart-text", x: 20, y: 16 }, "Logical (uploaded)"),
    s("rect", { class: "bar-physical", x: 180, y: 4, width: 14, height: 14 }),
    s("text", { class: "chart-text", x: 200, y: 16 }, "Physical (stored)"),
  );
  groups.forEach((g, i) => {
    const y = legend + i * rowHeight;
    svg.append(
      s("text", { class: "chart-label", x: 0, y: y + 14 }, g.label),
      s("rect", { class: "bar-logical", x: 0, y: y + labelHeight, width: scale(g.logical), height: bar, "data-bytes": g.logical }),
      s("text", { class: "chart-text", x: scale(g.logical) + 6, y: y + labelHeight + 12 }, fmt.bytes(g.logical)),
      s("rect", { class: "bar-physical", x: 0, y: y + labelHeight + bar + 4, width: scale(g.physical), height: bar, "data-bytes": g.physical }),
      s("text", { class: "chart-text", x: scale(g.physical) + 6, y: y + labelHeight + bar + 16 }, fmt.bytes(g.physical)),
    );
  });
  return h("div", { class: "chart-wrap" }, svg);
}

function dataTable(groups) {
  return h(
    "table",
    { class: "kv", id: "store-table" },
    h("caption", { class: "visually-hidden", text: "Logical and physical bytes per project" }),
    h("thead", {}, h("tr", {}, ["", "Logical", "Physical", "Ratio"].map((t) => h("th", { scope: "col", text: t })))),
    h(
      "tbody",
      {},
      groups.map((g) =>
        h(
          "tr",
          {},
          h("th", { scope: "row", text: g.label }),
          h("td", { title: fmt.exactBytes(g.logical), text: fmt.bytes(g.logical) }),
          h("td", { title: fmt.exactBytes(g.physical), text: fmt.bytes(g.physical) }),
          h("td", { text: g.physical ? `${(g.logical / g.physical).toFixed(2)} : 1` : "—" }),
        ),
      ),
    ),
  );
}
