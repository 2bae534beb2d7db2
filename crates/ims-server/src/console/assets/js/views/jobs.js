// Jobs (/jobs/v1): the list with live progress (polled; rows are updated in place, new jobs added
// at the top, finished ones announced), and one job's details with its error and a cancel button.

import * as api from "../api.js";
import * as session from "../session.js";
import * as fmt from "../format.js";
import { announce, busy, confirmDialog, field, h, replace, say, select, toast } from "../dom.js";

/** How often an open page asks again while jobs are unfinished, and when all are done. */
const POLL_BUSY_MS = 1000;
const POLL_IDLE_MS = 5000;

const TYPE_LABELS = {
  exportImage: "Export image",
  createImageByFile: "Import image",
  copyImageInRegion: "Copy image",
  copyImageCrossRegion: "Copy to another region",
  createImageFromServer: "Image from a server",
  glance_import: "Glance import",
  batchAddMembers: "Share images",
  batchUpdateMembers: "Answer shares",
  batchDeleteMembers: "Stop sharing",
};
const STATUS_LABELS = { INIT: "Waiting", RUNNING: "Running", SUCCESS: "Succeeded", FAIL: "Failed" };

export const jobTypeLabel = (type) => TYPE_LABELS[type] || type;
export const isFinished = (job) => job.status === "SUCCESS" || job.status === "FAIL";

export function jobStatusBadge(job) {
  return h("span", { class: `status job-${job.status}`, dataset: { jobStatus: job.status }, text: STATUS_LABELS[job.status] || job.status });
}

/** A progress bar with its percentage; `update(job)` changes both in place. */
export function jobProgress(job) {
  const bar = h("progress", { max: "100", value: "0", "aria-label": `Progress of ${jobTypeLabel(job.job_type)} ${job.id.slice(0, 8)}` });
  const text = h("span", { class: "job-percent mono" });
  const el = h("span", { class: "job-progress" }, bar, text);
  el.update = (j) => {
    const pct = Math.max(0, Math.min(100, Math.round(Number(j.progress) || 0)));
    bar.value = pct;
    bar.setAttribute("aria-valuetext", `${pct}%`);
    text.textContent = `${pct}%`;
    el.dataset.percent = String(pct);
  };
  el.update(job);
  return el;
}

/** The image a job works on, as a link, when its entities name one. */
function subject(job) {
  const e = job.entities || {};
  const parts = [];
  if (e.image_id) parts.push(h("a", { href: `#/images/${e.image_id}`, class: "mono", text: e.image_id.slice(0, 8) }));
  if (e.bucket_url) parts.push(` → ${e.bucket_url}`);
  return parts.length ? parts : "—";
}

export async function renderJobs(main, ctx) {
  const status = ctx.query.get("status") || "";
  const all = ctx.query.get("all_projects") === "true" && session.isAdmin();
  const statusSelect = select({ id: "jobs-status", name: "status" }, [["", "Any status"], ...Object.entries(STATUS_LABELS)], status);
  const allBox = session.isAdmin() ? h("input", { type: "checkbox", id: "jobs-all-projects", checked: all }) : null;
  const go = () => ctx.navigate("/jobs", { status: statusSelect.value, all_projects: allBox && allBox.checked ? "true" : "" });
  statusSelect.addEventListener("change", go);
  if (allBox) allBox.addEventListener("change", go);

  const tbody = h("tbody", {});
  const count = h("p", { class: "result-count", id: "jobs-count" });
  const empty = h("p", { class: "muted", id: "jobs-empty", hidden: true, text: "No jobs yet. Exports, imports and copies show here while they run." });
  const table = h(
    "table",
    { class: "images-table", id: "jobs-table" },
    h("caption", { class: "visually-hidden", text: "Jobs, newest first" }),
    h("thead", {}, h("tr", {}, ["Job", "Works on", "Status", "Progress", "Created"].map((t) => h("th", { scope: "col", text: t })))),
    tbody,
  );
  replace(
    main,
    h("div", { class: "page-head" }, h("h1", { text: "Jobs" })),
    h("p", { class: "lead", text: "Exports, imports, copies and other long tasks of your project. The list updates by itself." }),
    h("form", { class: "filters card inline-form", "aria-label": "Filter jobs", onsubmit: (e) => e.preventDefault() }, field("Status", statusSelect), allBox ? h("div", { class: "check" }, allBox, h("label", { for: "jobs-all-projects", text: "Every project's jobs" })) : null),
    count,
    h("div", { class: "table-wrap" }, table),
    empty,
  );

  const rows = new Map();
  const query = { status, all_projects: all ? "true" : "", limit: 100 };
  /** Fetches the list and updates the table; resolves to the wait before the next look (0: stop). */
  const refresh = async () => {
    let jobs;
    try {
      jobs = await api.listJobs(query);
    } catch (e) {
      if (ctx.signal.aborted) return 0;
      replace(count, h("span", { class: "msg msg-error", role: "alert", text: api.explain(e) }));
      return 0;
    }
    if (ctx.signal.aborted) return 0;
    jobs.forEach((job, i) => {
      const known = rows.get(job.id);
      if (known) known.update(job);
      else {
        const row = jobRow(job);
        rows.set(job.id, row);
        if (i === 0) tbody.prepend(row.el);
        else rows.get(jobs[i - 1].id).el.after(row.el);
      }
    });
    const running = jobs.filter((j) => !isFinished(j)).length;
    count.textContent = `${jobs.length} ${jobs.length === 1 ? "job" : "jobs"}${running ? `, ${running} unfinished` : ""}.`;
    empty.hidden = jobs.length > 0;
    table.hidden = jobs.length === 0;
    return running ? POLL_BUSY_MS : POLL_IDLE_MS;
  };
  // The page is drawn after the first look; it keeps looking until it is left.
  let wait = await refresh();
  (async () => {
    while (wait && !ctx.signal.aborted) {
      await sleep(wait, ctx.signal);
      if (ctx.signal.aborted) return;
      wait = await refresh();
    }
  })();
}

function jobRow(job) {
  const td = (label, ...content) => h("td", { "data-label": label }, h("span", { class: "cell" }, ...content));
  const statusCell = td("Status", jobStatusBadge(job));
  const progress = jobProgress(job);
  const el = h(
    "tr",
    { dataset: { jobId: job.id, jobType: job.job_type } },
    td("Job", h("a", { href: `#/jobs/${job.id}`, class: "job-link", text: jobTypeLabel(job.job_type) }), h("small", { class: "muted mono", text: ` ${job.id.slice(0, 8)}` })),
    td("Works on", subject(job)),
    statusCell,
    td("Progress", progress),
    td("Created", h("time", { datetime: job.created_at, text: fmt.date(job.created_at) })),
  );
  let last = job;
  return {
    el,
    update(j) {
      progress.update(j);
      if (j.status !== last.status) {
        replace(statusCell.firstChild, jobStatusBadge(j));
        if (isFinished(j)) announce(`${jobTypeLabel(j.job_type)} ${j.status === "SUCCESS" ? "finished" : "failed"}.`);
      }
      last = j;
    },
  };
}

/** Resolves after `ms`, or at once when the page is left. */
function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });
}

export async function renderJob(main, ctx) {
  const id = decodeURIComponent(ctx.params[0]);
  let job = await api.getJob(id);
  if (ctx.signal.aborted) return;
  const slot = h("div", { class: "slot", id: "job-messages" });
  const details = h("dl", { class: "props", id: "job-details" });
  const badge = h("span", { id: "job-status" });
  const progress = jobProgress(job);
  const cancel = h("button", { type: "button", class: "btn btn-danger", id: "cancel-job", text: "Cancel job" });
  cancel.addEventListener("click", async () => {
    if (!(await confirmDialog({ title: "Cancel this job?", body: "A waiting job does not start; a running one stops at its next step and what it made so far is removed.", confirmLabel: "Cancel job", danger: true }))) return;
    await busy(cancel, "Cancelling…", async () => {
      try {
        job = await api.cancelJob(job.id);
        toast("Cancellation asked for.");
        draw();
      } catch (e) {
        say(slot, "error", `Could not cancel: ${api.explain(e)}`);
      }
    });
  });
  const draw = () => {
    replace(badge, jobStatusBadge(job));
    progress.update(job);
    cancel.hidden = isFinished(job);
    cancel.disabled = job.cancel_requested;
    if (job.cancel_requested && !isFinished(job)) cancel.textContent = "Cancellation asked for";
    const e = job.entities || {};
    const rows = [
      ["Type", `${jobTypeLabel(job.job_type)} (${job.job_type})`],
      ["ID", job.id],
      ["Project", job.project_id],
      ["Image", e.image_id ? h("a", { href: `#/images/${e.image_id}`, id: "job-image", text: e.image_id }) : null],
      ["Bucket object", e.bucket_url || (job.result && job.result.bucket_url) || null],
      ["Error code", job.error_code, "job-error-code"],
      ["Reason", job.fail_reason, "job-fail-reason"],
      ["Result", job.result ? h("pre", { class: "mono wrap", id: "job-result", text: JSON.stringify(job.result, null, 2) }) : null],
      ["Attempts", String(job.attempts)],
      ["Part of job", job.parent_id ? h("a", { href: `#/jobs/${job.parent_id}`, text: job.parent_id }) : null],
      ["Created", fmt.date(job.created_at)],
      ["Started", fmt.date(job.begin_time)],
      ["Ended", fmt.date(job.end_time)],
    ];
    replace(details, rows.filter(([, v]) => v !== null && v !== undefined && v !== "").map(([k, v, elId]) => [h("dt", { text: k }), h("dd", { id: elId || null }, v)]));
  };
  draw();
  replace(
    main,
    h("p", { class: "breadcrumb" }, h("a", { href: "#/jobs", text: "Jobs" }), " / ", job.id),
    h("div", { class: "page-head" }, h("h1", { id: "job-title" }, jobTypeLabel(job.job_type), " ", badge), h("div", { class: "actions" }, cancel)),
    slot,
    h("section", { class: "card", "aria-labelledby": "job-progress-title" }, h("h2", { id: "job-progress-title", text: "Progress" }), progress),
    job.status === "FAIL" ? h("div", { class: "msg msg-error", role: "alert", id: "job-failure", text: `The job failed: ${job.fail_reason || job.error_code || "no reason given"}` }) : null,
    h("section", { class: "card", "aria-labelledby": "job-details-title" }, h("h2", { id: "job-details-title", text: "Details" }), details),
  );
  follow(job, ctx, slot, draw, (j) => (job = j));
}

/** Polls an unfinished job until it ends or the page is left, redrawing as it changes. */
async function follow(job, ctx, slot, draw, set) {
  const id = job.id;
  while (!isFinished(job)) {
    await sleep(POLL_BUSY_MS, ctx.signal);
    if (ctx.signal.aborted) return;
    try {
      job = await api.getJob(id);
    } catch (e) {
      if (ctx.signal.aborted) return;
      say(slot, "error", api.explain(e));
      return;
    }
    if (ctx.signal.aborted) return;
    set(job);
    draw();
    if (isFinished(job)) {
      announce(`The job ${job.status === "SUCCESS" ? "finished" : "failed"}.`);
      if (job.status === "FAIL") slot.before(h("div", { class: "msg msg-error", role: "alert", id: "job-failure", text: `The job failed: ${job.fail_reason || job.error_code || "no reason given"}` }));
    }
  }
}
