"""bench/run: IMS and Glance side by side on this machine (see bench/README.md).

    python -m side_by_side --ims BIN --venv DIR --oha BIN --out DOC [--quick] [--convert-table FILE]
        [--nbd-table FILE]

Starts both services, runs every workload against each, alternating which goes first, and writes
the results (JSON next to DOC, the section of DOC between its markers, and the chart).
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from . import glance_db, imports, report, scaling, servers, workloads

MIB = 1 << 20

FULL = {"reps": 3, "import_reps": 2, "upload_mib": 1024, "concurrent": 16, "concurrent_mib": 64, "images": 10000,
        "glance_api_images": 500, "load_seconds": 5, "load_concurrency": 16, "derived_base_mib": 256}
QUICK = {"reps": 2, "import_reps": 2, "upload_mib": 8, "concurrent": 16, "concurrent_mib": 1, "images": 200,
         "glance_api_images": 50, "load_seconds": 1, "load_concurrency": 4, "derived_base_mib": 4}


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg():
    return float(open("/proc/loadavg").read().split()[0])


def median_of(runs, key):
    return statistics.median(r[key] for r in runs)


def orders(reps, services):
    """IMS first on even repetitions, Glance first on odd ones."""
    return [services if rep % 2 == 0 else list(reversed(services)) for rep in range(reps)]


def run(args):
    p = QUICK if args.quick else FULL
    results = {"params": p, "quick": args.quick, "load_start": loadavg(), "started": time.time()}
    work = tempfile.mkdtemp(prefix="ims-bench-")
    started = []
    try:
        ims = servers.start_ims(args.ims, work)
        started.append(ims)
        glance = servers.start_glance(args.venv, work)
        started.append(glance)
        both = [ims, glance]
        results["glance_processes"] = len(glance.pids())

        # 1. One large upload and its download.
        runs = {s.name: [] for s in both}
        size = p["upload_mib"] * MIB
        data = os.path.join(work, "upload.raw")
        for rep, order in enumerate(orders(p["reps"], both)):
            workloads.random_file(data, size)
            for s in order:
                log(f"upload/download {p['upload_mib']} MiB, {s.name}, run {rep + 1}")
                runs[s.name].append(workloads.upload_download(s, data, size))
        os.remove(data)
        results["upload"] = summarize(runs)

        # 2. Concurrent uploads.
        runs = {s.name: [] for s in both}
        size = p["concurrent_mib"] * MIB
        paths = [os.path.join(work, f"concurrent-{i}.raw") for i in range(p["concurrent"])]
        for rep, order in enumerate(orders(p["reps"], both)):
            for path in paths:
                workloads.random_file(path, size)
            for s in order:
                log(f"{p['concurrent']} concurrent uploads of {p['concurrent_mib']} MiB, {s.name}, run {rep + 1}")
                runs[s.name].append(workloads.concurrent_uploads(s, paths, size))
        for path in paths:
            os.remove(path)
        results["concurrent"] = summarize(runs)

        # 3. Import with conversion and export (fresh IMS data dir each run: no chunk of an earlier
        # run can be reused).
        results["import"] = import_export(args, work, glance, p)

        # 4. Metadata.
        results["metadata"] = metadata(args, both, p)

        # 5. Storage of derived images.
        base = os.path.join(work, "derived-base.raw")
        workloads.random_file(base, p["derived_base_mib"] * MIB)
        results["storage"] = {}
        for s in both:
            log(f"storage: base and 10 derived images of {p['derived_base_mib']} MiB, {s.name}")
            results["storage"][s.name] = workloads.derived_images(s, work, base, p["derived_base_mib"] * MIB)
        os.remove(base)

        # 6. IMS only: time and memory by image size.
        sizes = scaling.QUICK_SIZES_MIB if args.quick else scaling.SIZES_MIB
        results["scaling"] = scaling.run(args.ims, work, sizes, log)
        results["scaling_steady_mib"] = scaling.QUICK_STEADY_MIB if args.quick else scaling.STEADY_MIB
    finally:
        for s in started:
            s.stop()
        servers.remove_tree(work)
    results["load_end"] = loadavg()
    results["finished"] = time.time()
    return results


def summarize(runs):
    """Per service: every run and the median of each measure."""
    return {name: {"runs": rs, "median": {k: median_of(rs, k) for k in rs[0] if not isinstance(rs[0][k], str)}}
            for name, rs in runs.items()}


def import_export(args, work, glance, p):
    qcow2 = args.qcow2
    size = os.path.getsize(qcow2)
    virtual = json.loads(subprocess.run(["qemu-img", "info", "--output=json", qcow2], capture_output=True,
                                        check=True, text=True).stdout)["virtual-size"]
    runs = {"Glance glance-direct": [], "IMS glance-direct": [], "IMS CreateImage": [],
            "Glance download + qemu-img": [], "IMS ExportImage": []}
    for rep in range(p["import_reps"]):
        order = ["ims", "glance"] if rep % 2 == 0 else ["glance", "ims"]
        for who in order:
            if who == "glance":
                log(f"import {size / MIB:.0f} MiB qcow2 → raw, Glance glance-direct, run {rep + 1}")
                g = imports.glance_direct(glance, qcow2, size)
                runs["Glance glance-direct"].append(g)
                log(f"export to vmdk, Glance download + qemu-img, run {rep + 1}")
                runs["Glance download + qemu-img"].append(imports.download_and_convert(glance, g["image_id"], work))
                workloads.Client(glance).request("DELETE", f"/v2/images/{g['image_id']}")
                continue
            for kind in ("IMS glance-direct", "IMS CreateImage"):
                fresh = servers.start_ims(args.ims, os.path.join(work, f"import-{rep}-{kind.split()[1]}"))
                try:
                    log(f"import qcow2 → raw, {kind}, run {rep + 1}")
                    if kind == "IMS glance-direct":
                        runs[kind].append(imports.glance_direct(fresh, qcow2, size))
                    else:
                        r = imports.ims_pipeline(fresh, qcow2, size, virtual, f"import-{rep}.qcow2")
                        runs[kind].append(r)
                        log(f"export to vmdk, IMS ExportImage, run {rep + 1}")
                        runs["IMS ExportImage"].append(imports.ims_export(fresh, r["image_id"], f"export-{rep}.vmdk"))
                finally:
                    fresh.stop()
                    servers.remove_tree(fresh.data_dir)
    out = summarize(runs)
    out["source"] = {"size": size, "virtual_size": virtual}
    return out


def metadata(args, both, p):
    out = {}
    for s in both:
        through_api = p["glance_api_images"] if s.name == "Glance" else p["images"]
        log(f"metadata: creating {through_api} images through the API, {s.name}")
        ids, rate = workloads.create_images(s, through_api)
        if through_api < p["images"]:
            log(f"metadata: copying them in Glance's database up to {p['images']} images")
            ids += glance_db.clone_images(s, ids[:10], through_api, p["images"])
        out[s.name] = {"create_per_s": rate, "created_through_api": through_api, "show_id": ids[len(ids) // 2]}
    endpoints = {"list": "/v2/images?limit=100", "show": None, "tag": "/v2/images?tag=blue&limit=100",
                 "property": "/v2/images?tier=gold&limit=100"}
    runs = {s.name: {k: [] for k in list(endpoints) + ["paging"]} for s in both}
    for rep, order in enumerate(orders(p["reps"], both)):
        for s in order:
            log(f"metadata: paging and load ({p['load_concurrency']} connections), {s.name}, run {rep + 1}")
            runs[s.name]["paging"].append(workloads.page_through(s))
            for name, path in endpoints.items():
                path = path or f"/v2/images/{out[s.name]['show_id']}"
                runs[s.name][name].append(workloads.oha(args.oha, s, path, p["load_seconds"], p["load_concurrency"]))
    for s in both:
        out[s.name]["load"] = {k: {"runs": rs, "median": {m: median_of(rs, m) for m in rs[0]}}
                               for k, rs in runs[s.name].items()}
    return out


def main():
    # Stopped from outside: unwind, so that `run` stops both services.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ims", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--oha", required=True)
    ap.add_argument("--qcow2", required=True, help="the QCOW2 disk imported with conversion")
    ap.add_argument("--out", required=True, help="markdown page whose generated section is rewritten")
    ap.add_argument("--convert-table", help="bench/convert's output, included as it is")
    ap.add_argument("--nbd-table", help="bench/nbd's output, included as it is")
    ap.add_argument("--machine", required=True, help="JSON: what the harness found out about the machine")
    args = ap.parse_args()
    results = run(args)
    results["machine"] = json.loads(open(args.machine).read())
    results["machine"].update(glance_workers=servers.gunicorn_workers(), glance_threads=servers.GUNICORN_THREADS)
    for key, path in (("convert_table", args.convert_table), ("nbd_table", args.nbd_table)):
        results[key] = open(path).read() if path and os.path.exists(path) else None
    report.write(results, args.out)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
