"""The results as a markdown section (rewritten in place between two markers) and an SVG chart."""

import json
import math
import os
import re
import time

from . import scaling

BEGIN = "<!-- bench/run: generated section begins; edit bench/side_by_side/report.py instead -->"
END = "<!-- bench/run: generated section ends -->"
CHART = "benchmarks-glance.svg"
SCALING_CHART = "benchmarks-scaling.svg"
MIB = 1 << 20


def fmt_s(x):
    return f"{x:.2f} s" if x < 100 else f"{x:.0f} s"


def fmt_ms(x):
    return f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"


def fmt_mib(x):
    return f"{x:.0f} MiB"


def size(n):
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / MIB:.1f} MiB"


def verdict(ratio, goal):
    if goal is None:
        return "—"
    return f"≥ {goal:g}×: " + ("met" if ratio >= goal else "**missed**")


def comparisons(r):
    """(section, what, Glance, IMS, how many times better IMS is, goal) rows."""
    rows = []
    up, ims, gl = r["upload"], "IMS", "Glance"
    mib = r["params"]["upload_mib"]
    for key, what, goal in (("upload_s", f"upload {mib} MiB (`PUT /file`)", 5), ("download_s", f"download {mib} MiB", 1)):
        g, i = up[gl]["median"][key], up[ims]["median"][key]
        rows.append(("transfer", what, fmt_s(g), fmt_s(i), g / i, goal))
    c = r["concurrent"]
    g, i = c[gl]["median"]["wall_s"], c[ims]["median"]["wall_s"]
    p = r["params"]
    rows.append(("transfer", f"{p['concurrent']} concurrent uploads of {p['concurrent_mib']} MiB", fmt_s(g), fmt_s(i), g / i, None))
    m = r["metadata"]
    g, i = m[gl]["create_per_s"], m[ims]["create_per_s"]
    rows.append(("metadata", "create images (one client), images/s", f"{g:.0f}", f"{i:.0f}", i / g, None))
    g, i = m[gl]["load"]["paging"]["median"]["total_s"], m[ims]["load"]["paging"]["median"]["total_s"]
    rows.append(("metadata", "page through all (`limit=100`, one client)", fmt_s(g), fmt_s(i), g / i, None))
    for key, what in (("list", "list `?limit=100`"), ("show", "show by id"), ("tag", "list `?tag=blue`"),
                      ("property", "list `?tier=gold`")):
        g, i = m[gl]["load"][key]["median"], m[ims]["load"][key]["median"]
        rows.append(("metadata", f"{what}: requests/s", f"{g['rps']:.0f}", f"{i['rps']:.0f}", i["rps"] / g["rps"], 10))
        rows.append(("metadata", f"{what}: p99 latency", fmt_ms(g["p99_ms"]), fmt_ms(i["p99_ms"]),
                     g["p99_ms"] / i["p99_ms"], 10 if key == "list" else None))
    s = r["storage"]
    g, i = s[gl]["disk_bytes"], s[ims]["disk_bytes"]
    rows.append(("storage", "base + 10 derived images (1% changed each), bytes on disk", size(g), size(i), g / i, 5))
    im = r["import"]
    g = im["Glance glance-direct"]["median"]["total_s"]
    for kind in ("IMS CreateImage", "IMS glance-direct"):
        i = im[kind]["median"]["total_s"]
        stored = im[kind]["runs"][0]["stored_format"]
        note = "" if stored == "raw" else f" (IMS stored it as {stored}: no conversion)"
        rows.append(("import", f"QCOW2 → RAW import: Glance glance-direct vs {kind}{note}", fmt_s(g), fmt_s(i),
                     g / i, 3 if kind == "IMS CreateImage" else None))
    g2 = im["Glance download + qemu-img"]["median"]["total_s"]
    i2 = im["IMS ExportImage"]["median"]["total_s"]
    rows.append(("import", "export to VMDK streamOptimized", fmt_s(g2), fmt_s(i2), g2 / i2, None))
    i1 = im["IMS CreateImage"]["median"]["total_s"]
    rows.append(("import", "import with conversion + export, end to end", fmt_s(g + g2), fmt_s(i1 + i2),
                 (g + g2) / (i1 + i2), 3))
    return rows


def convert_rows(table):
    """(pair, qemu-img/ims wall ratio, goal, qemu-img/ims CPU ratio or None) from bench/convert's
    table; the compressed outputs (qcow2 -c, streamOptimized VMDK) have the higher goal."""
    rows = []
    for line in (table or "").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 7 and re.fullmatch(r"[0-9.]+", cells[3] or ""):
            goal = 1.8 if ("-c" in cells[0] or "vmdk" in cells[0]) else 1
            cpu = float(cells[6]) if re.fullmatch(r"[0-9.]+", cells[6]) else None
            rows.append((cells[0], float(cells[3]), goal, cpu))
    return rows


def chart(rows, conv, path):
    """A horizontal bar per comparison: how many times better IMS is (log scale), its goal marked."""
    items = [(f"{what}", ratio, goal) for _, what, _, _, ratio, goal in rows]
    items += [(f"convert {pair} (vs qemu-img)", ratio, goal) for pair, ratio, goal, _ in conv]
    items = [(re.sub(r"[`*]", "", w), r, g) for w, r, g in items]
    # Short labels: "QCOW2 → RAW import: Glance glance-direct vs IMS X (...)" → "QCOW2 → RAW import, IMS X".
    items = [(re.sub(r" \(IMS stored.*\)$", " (no conversion)",
                     w.replace("import: Glance glance-direct vs", "import,")), r, g) for w, r, g in items]
    lo, hi = 0.1, 1000.0
    left, width, bar, gap, top = 430, 420, 14, 6, 40
    height = top + len(items) * (bar + gap) + 40

    def x(v):
        v = min(max(v, lo), hi)
        return left + width * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 80}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<rect width="100%" height="100%" fill="white"/>',
           f'<text x="10" y="20" font-size="13" font-weight="bold">IMS compared with Glance and qemu-img: '
           f'times better (log scale; ▏ = goal)</text>']
    for tick in (0.1, 1, 10, 100, 1000):
        out.append(f'<line x1="{x(tick):.1f}" y1="{top - 6}" x2="{x(tick):.1f}" y2="{height - 30}" '
                   f'stroke="{"#555" if tick == 1 else "#ddd"}"/>')
        out.append(f'<text x="{x(tick):.1f}" y="{height - 16}" text-anchor="middle">{tick:g}×</text>')
    for n, (what, ratio, goal) in enumerate(items):
        y = top + n * (bar + gap)
        met = goal is None or ratio >= goal
        colour = "#3a7d44" if met else "#c0392b"
        what = what.replace("&", "&amp;").replace("<", "&lt;")
        out.append(f'<text x="{left - 8}" y="{y + bar - 3}" text-anchor="end">{what}</text>')
        x0, x1 = x(1), x(ratio)
        out.append(f'<rect x="{min(x0, x1):.1f}" y="{y}" width="{max(abs(x1 - x0), 1):.1f}" height="{bar}" '
                   f'fill="{colour}"/>')
        out.append(f'<text x="{max(x0, x1) + 4:.1f}" y="{y + bar - 3}">{ratio:.2f}×</text>')
        if goal is not None:
            out.append(f'<line x1="{x(goal):.1f}" y1="{y - 2}" x2="{x(goal):.1f}" y2="{y + bar + 2}" '
                       f'stroke="black" stroke-width="2"/>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def section(r):
    m = r["machine"]
    p = r["params"]
    rows = comparisons(r)
    conv = convert_rows(r.get("convert_table"))
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(r["started"]))
    minutes = (r["finished"] - r["started"]) / 60
    lines = [
        "## Side by side with Glance (`bench/run`)",
        "",
        f"Generated by `{m['command']}` on {when} (the workloads against both services took {minutes:.0f} "
        f"minutes). Machine: {m['cores']} cores "
        f"({m['cpu']}), {m['memory']} memory, disk {m['disk']}; {m['kernel']}. Load average "
        f"{m['load_start']:.1f} at the start, {r['load_end']:.1f} at the end (the machine is shared with "
        f"other builds and tests). Medians of {p['reps']} runs ({p['import_reps']} for import and export), IMS "
        f"and Glance alternating which goes first.",
        "",
        f"- IMS: release build, `ims serve` with its embedded defaults (SQLite catalog, local chunk "
        f"store), `[import_conversions] qcow2 = \"raw\"`.",
        f"- Glance {m['glance']} under gunicorn {m['gunicorn']} ({m['glance_workers']} workers × "
        f"{m['glance_threads']} threads, gthread), SQLite, file store, no authentication (`[paste_deploy] "
        f"flavor =`), the `image_conversion` import plugin with `output_format = raw`, methods glance-direct "
        f"and web-download, local staging directory.",
        f"- Client: Python `http.client` (files streamed in 1 MiB blocks); load: oha {m['oha']}, "
        f"{p['load_concurrency']} connections for {p['load_seconds']} s per URL. {m['qemu_img']}.",
        "",
        "\"× better\" is how many times faster (or smaller) IMS is: Glance's time over IMS's, IMS's "
        "requests/s over Glance's, Glance's bytes over IMS's.",
        "",
        "| workload | measure | Glance | IMS | × better | goal |",
        "|---|---|---|---|---|---|",
    ]
    for sec, what, g, i, ratio, goal in rows:
        lines.append(f"| {sec} | {what} | {g} | {i} | {ratio:.2f} | {verdict(ratio, goal)} |")
    for pair, ratio, goal, _ in conv:
        lines.append(f"| conversion | {pair} (qemu-img vs `ims img convert`, wall) | | | {ratio:.2f} | {verdict(ratio, goal)} |")
    lines += ["", f"![IMS compared with Glance and qemu-img]({CHART})", ""]
    lines += memory_table(r)
    lines += import_details(r)
    lines += load_details(r)
    if r.get("convert_table"):
        lines += ["### Conversion (`bench/convert`, run by `bench/run`)", "", "```", r["convert_table"].strip(), "```", ""]
    else:
        lines += ["### Conversion", "", "`bench/convert` was left out of this run (`--no-convert`); its last results "
                  "are in [Conversion against qemu-img](#conversion-against-qemu-img-benchconvert) below.", ""]
    if r.get("scaling"):
        lines += scaling.section(r["scaling"], r["scaling_steady_mib"], SCALING_CHART)
    if r.get("nbd_table"):
        lines += ["### NBD, IMS only (`bench/nbd`, run by `bench/run`)", "", "```", r["nbd_table"].strip(), "```", ""]
    missed = [(what, ratio, goal) for _, what, _, _, ratio, goal in rows if goal is not None and ratio < goal]
    lines += ["### Goals missed in this run", ""]
    lines += [f"- {re.sub('`', '', what)}: {ratio:.2f}× (goal {goal:g}×)" for what, ratio, goal in missed]
    for pair, ratio, goal, cpu in conv:
        if ratio < goal:
            why = (f"; in CPU time {cpu:.2f}×: the wall time is what the machine's other load left of the "
                   "second core" if cpu is not None and cpu >= goal else "")
            lines.append(f"- convert {pair}: {ratio:.2f}× in wall time (goal {goal:g}×){why}")
    if r.get("scaling"):
        s = scaling.summary(r["scaling"], r["scaling_steady_mib"])
        q = s["ratios"]
        if not s["linear"]:
            lines.append(f"- image size scaling: time per GiB at the largest size {q['upload_time']:.3f}× (upload), "
                         f"{q['download_time']:.3f}× (download) that at {s['steady_mib']} MiB (at most 1.25×)")
        if not s["flat"]:
            lines.append(f"- image size scaling: peak RSS at the largest size {q['upload_rss']:.3f}× (upload), "
                         f"{q['download_rss']:.3f}× (download) that at {s['steady_mib']} MiB (at most 1.25×)")
    if lines[-1] == "":
        lines.append("- none")
    lines.append("")
    return "\n".join(lines), rows, conv


def memory_table(r):
    up, c, p = r["upload"], r["concurrent"], r["params"]
    lines = ["### Peak memory and server CPU", "",
             "Peak RSS summed over the service's processes (gunicorn's master and workers for Glance), "
             "reset (`/proc/PID/clear_refs`) before each measure; median of the runs.", "",
             "| measure | Glance | IMS |", "|---|---|---|"]
    for key, what in (("upload_rss_mib", f"upload {p['upload_mib']} MiB"), ("download_rss_mib", f"download {p['upload_mib']} MiB")):
        lines.append(f"| peak RSS, {what} | {fmt_mib(up['Glance']['median'][key])} | {fmt_mib(up['IMS']['median'][key])} |")
    lines.append(f"| peak RSS, {p['concurrent']} concurrent uploads | {fmt_mib(c['Glance']['median']['rss_mib'])} | "
                 f"{fmt_mib(c['IMS']['median']['rss_mib'])} |")
    lines.append(f"| uploads done again after a failure, {p['concurrent']} concurrent (median) | "
                 f"{c['Glance']['median']['retries']:g} | {c['IMS']['median']['retries']:g} |")
    gib = p["upload_mib"] / 1024
    lines.append(f"| server CPU seconds per GiB uploaded | {up['Glance']['median']['upload_cpu_s'] / gib:.2f} | "
                 f"{up['IMS']['median']['upload_cpu_s'] / gib:.2f} |")
    lines.append("")
    return lines


def import_details(r):
    im = r["import"]
    src = im["source"]
    lines = ["### Import with conversion and export, step by step", "",
             f"Source: a QCOW2 file of {size(src['size'])} (virtual {size(src['virtual_size'])}): an ext4 "
             "guest disk about half full of files from /usr, made as `bench/convert` makes its disk. Every IMS run starts a fresh IMS data dir, so no chunk of an "
             "earlier run is reused.", "",
             "| path | steps (median) | total | stored as |", "|---|---|---|---|"]
    g = im["Glance glance-direct"]["median"]
    lines.append(f"| Glance: create, `PUT /stage`, `POST /import` glance-direct (image_conversion) | stage "
                 f"{fmt_s(g['stage_s'])}, import {fmt_s(g['import_s'])} | {fmt_s(g['total_s'])} | "
                 f"{im['Glance glance-direct']['runs'][0]['stored_format']} |")
    i = im["IMS glance-direct"]["median"]
    lines.append(f"| IMS: the same calls | stage {fmt_s(i['stage_s'])}, import {fmt_s(i['import_s'])} | "
                 f"{fmt_s(i['total_s'])} | {im['IMS glance-direct']['runs'][0]['stored_format']} |")
    i = im["IMS CreateImage"]["median"]
    lines.append(f"| IMS: `PUT` to a bucket, CreateImage with `image_url` (job) | put {fmt_s(i['put_s'])}, job "
                 f"{fmt_s(i['import_s'])} | {fmt_s(i['total_s'])} | {im['IMS CreateImage']['runs'][0]['stored_format']} |")
    g = im["Glance download + qemu-img"]["median"]
    lines.append(f"| Glance has no export: download, then `qemu-img convert -O vmdk -o subformat=streamOptimized` | "
                 f"download {fmt_s(g['download_s'])}, convert {fmt_s(g['convert_s'])} | {fmt_s(g['total_s'])} | vmdk |")
    i = im["IMS ExportImage"]["median"]
    lines.append(f"| IMS: ExportImage `file_format` vmdk to a bucket (job) | | {fmt_s(i['total_s'])} | vmdk |")
    lines.append("")
    return lines


def load_details(r):
    m = r["metadata"]
    lines = ["### Metadata under load, in detail", "",
             f"{r['params']['images']} images in each service, 10% of them tagged `blue` and with the property "
             f"`tier=gold` (the others `tier=silver`). IMS created all of them through its API; Glance "
             f"{m['Glance']['created_through_api']} (the creation rate above is over those), the rest were "
             "copies of their rows made in its database, as creating them all through its API would take "
             "most of the run. oha's own CPU use is shown so that a "
             "saturated load generator would be visible (1.00 = one full core of the two).", "",
             "| URL | service | requests/s | p50 | p99 | oha CPU (cores) |", "|---|---|---|---|---|---|"]
    for key in ("list", "show", "tag", "property"):
        for s in ("Glance", "IMS"):
            x = m[s]["load"][key]["median"]
            lines.append(f"| {key} | {s} | {x['rps']:.0f} | {fmt_ms(x['p50_ms'])} | {fmt_ms(x['p99_ms'])} | "
                         f"{x['client_cpu']:.2f} |")
    lines.append("")
    return lines


def write(results, out):
    """Writes `out` (its generated section; the whole page if it has no markers yet), the chart
    beside it, and the raw results as JSON beside it."""
    text, rows, conv = section(results)
    directory = os.path.dirname(os.path.abspath(out))
    chart(rows, conv, os.path.join(directory, CHART))
    if results.get("scaling"):
        scaling.chart(results["scaling"], os.path.join(directory, SCALING_CHART))
    with open(os.path.join(directory, "benchmarks-glance.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    block = f"{BEGIN}\n{text}\n{END}"
    page = open(out).read() if os.path.exists(out) else ""
    if BEGIN in page and END in page:
        head, rest = page.split(BEGIN, 1)
        page = head + block + rest.split(END, 1)[1]
    else:
        page = (page.rstrip("\n") + "\n\n" if page else "# Benchmarks\n\n") + block + "\n"
    with open(out, "w") as f:
        f.write(page)
