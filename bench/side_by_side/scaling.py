"""IMS only: how upload and download time and peak memory change with the image's size.

Every size goes to a fresh `ims serve` (its own data dir, removed afterwards), so that each peak RSS is
that of one process serving one upload and one download of that size, and no chunk of a smaller run
is reused by a larger one. The data is the prefix of one incompressible file.
"""

import os

from . import servers, workloads

MIB = 1 << 20
GIB_MIB = 1024
SIZES_MIB = [256, 512, 1024, 2048, 4096, 8192]
QUICK_SIZES_MIB = [1, 2, 4, 8]
# The size whose peak memory the largest one is compared with: the smallest at which the upload path's
# buffers and caches are all in use (a smaller upload never fills them).
STEADY_MIB = 1024
QUICK_STEADY_MIB = 2


def run(ims_bin, work, sizes_mib, log):
    """One upload and download per size, smallest first: a list of `workloads.upload_download` results
    with `size_mib` added."""
    data = os.path.join(work, "scaling.raw")
    workloads.random_file(data, max(sizes_mib) * MIB)
    rows = []
    try:
        for mib in sorted(sizes_mib):
            log(f"scaling: upload and download of {mib} MiB, fresh IMS")
            fresh = servers.start_ims(ims_bin, os.path.join(work, f"scaling-{mib}"))
            try:
                row = workloads.upload_download(fresh, data, mib * MIB)
            finally:
                fresh.stop()
                servers.remove_tree(os.path.join(work, f"scaling-{mib}"))
            row["size_mib"] = mib
            rows.append(row)
    finally:
        os.remove(data)
    return rows


def linear_fit(xs, ys):
    """Least squares `y = a + b x`: (a, b, the largest deviation of a point from the line relative to
    the point)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    a = my - b * mx
    worst = max(abs(y - (a + b * x)) / y for x, y in zip(xs, ys) if y > 0)
    return a, b, worst


def summary(rows, steady_mib):
    """The largest size against `steady_mib`: seconds per GiB and peak RSS of the upload and of the
    download, each as a ratio (largest / steady). Time grows linearly when both time ratios are at most
    1.25 (no more time per byte for a larger image), memory does not grow when both RSS ratios are."""
    steady = next((r for r in rows if r["size_mib"] == steady_mib), rows[0])
    largest = rows[-1]
    per_gib = largest["size_mib"] / steady["size_mib"]
    ratios = {
        "upload_time": largest["upload_s"] / steady["upload_s"] / per_gib,
        "download_time": largest["download_s"] / steady["download_s"] / per_gib,
        "upload_rss": largest["upload_rss_mib"] / steady["upload_rss_mib"],
        "download_rss": largest["download_rss_mib"] / steady["download_rss_mib"],
    }
    gib = [r["size_mib"] / GIB_MIB for r in rows]
    return {"ratios": ratios, "steady_mib": steady["size_mib"], "largest_mib": largest["size_mib"],
            "upload_fit": linear_fit(gib, [r["upload_s"] for r in rows]),
            "download_fit": linear_fit(gib, [r["download_s"] for r in rows]),
            "linear": ratios["upload_time"] <= 1.25 and ratios["download_time"] <= 1.25,
            "flat": ratios["upload_rss"] <= 1.25 and ratios["download_rss"] <= 1.25}


def chart(rows, path):
    """Two panels side by side: seconds against size (upload, download), peak RSS against size."""
    w, h, pad = 330, 220, 45
    colours = {"upload": "#1f77b4", "download": "#ff7f0e"}
    xs = [r["size_mib"] / GIB_MIB for r in rows]
    panels = [("time (s)", {"upload": [r["upload_s"] for r in rows], "download": [r["download_s"] for r in rows]}),
              ("peak RSS (MiB)", {"upload": [r["upload_rss_mib"] for r in rows],
                                  "download": [r["download_rss_mib"] for r in rows]})]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * (w + pad) + 20}" height="{h + 2 * pad}" '
           'font-family="sans-serif" font-size="11">', '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="18" font-size="13" font-weight="bold">IMS: upload and download of one image, by its '
           'size (GiB)</text>']
    for n, (title, series) in enumerate(panels):
        x0, y0 = pad + n * (w + pad), pad
        top = max(max(v) for v in series.values()) * 1.1 or 1
        right = max(xs) or 1

        def at(x, y):
            return x0 + w * x / right, y0 + h - h * y / top

        out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h}" fill="none" stroke="#999"/>')
        out.append(f'<text x="{x0}" y="{y0 - 6}">{title}</text>')
        for frac in (0, 0.5, 1):
            out.append(f'<text x="{x0 - 4}" y="{y0 + h - h * frac + 4:.1f}" text-anchor="end">{top * frac:.0f}</text>')
        for frac in (0, 0.25, 0.5, 0.75, 1):
            px, _ = at(right * frac, 0)
            out.append(f'<text x="{px:.1f}" y="{y0 + h + 14}" text-anchor="middle">{right * frac:g}</text>')
        for name, ys in series.items():
            points = [at(x, y) for x, y in zip(xs, ys)]
            line = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            out.append(f'<polyline points="{line}" fill="none" stroke="{colours[name]}" stroke-width="2"/>')
            out += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colours[name]}"/>' for px, py in points]
        for k, name in enumerate(series):
            out.append(f'<text x="{x0 + 8}" y="{y0 + 14 + 13 * k}" fill="{colours[name]}">{name}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def section(rows, steady_mib, chart_name):
    """The markdown lines of the page's scaling section."""
    s = summary(rows, steady_mib)
    lines = ["### Image size scaling, IMS only", "",
             "One upload (`PUT /file`) and one download of incompressible data per size, each into a fresh "
             "`ims serve` (peak RSS of that process since it started; server CPU during the upload).", "",
             "| size | upload | MB/s | s per GiB | CPU s per GiB | peak RSS | download | MB/s | peak RSS |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        mb, gib = r["size_mib"] * MIB / 1e6, r["size_mib"] / GIB_MIB
        lines.append(f"| {r['size_mib']} MiB | {r['upload_s']:.2f} s | {mb / r['upload_s']:.0f} | "
                     f"{r['upload_s'] / gib:.2f} | {r['upload_cpu_s'] / gib:.2f} | {r['upload_rss_mib']:.0f} MiB | "
                     f"{r['download_s']:.2f} s | {mb / r['download_s']:.0f} | {r['download_rss_mib']:.0f} MiB |")
    ua, ub, uw = s["upload_fit"]
    da, db, dw = s["download_fit"]
    q = s["ratios"]
    lines += ["", f"Least-squares lines through the times: upload {ua:.2f} s + {ub:.2f} s per GiB (furthest point "
              f"{uw:.0%} off it), download {da:.2f} s + {db:.2f} s per GiB ({dw:.0%}). At {s['largest_mib']} MiB "
              f"against {s['steady_mib']} MiB: time per GiB {q['upload_time']:.3f}× (upload) and "
              f"{q['download_time']:.3f}× (download), so time grows linearly (at most 1.25×): "
              f"{'met' if s['linear'] else '**missed**'}; peak RSS {q['upload_rss']:.3f}× (upload) and "
              f"{q['download_rss']:.3f}× (download), so memory does not grow (at most 1.25×): "
              f"{'met' if s['flat'] else '**missed**'}.", "",
              f"![IMS upload and download time and memory by image size]({chart_name})", ""]
    return lines
