"""The workloads, each run against one service at a time and returning plain numbers."""

import concurrent.futures
import json
import os
import random
import shutil
import subprocess
import time

from .client import Client, HttpError

MIB = 1 << 20


def random_file(path, size):
    """`size` bytes from /dev/urandom (incompressible, so neither service can shrink them)."""
    with open(path, "wb") as out:
        subprocess.run(["head", "-c", str(size), "/dev/urandom"], stdout=out, check=True)


def upload_download(service, path, size):
    """Uploads `path` as a new raw image (`PUT /file`), then downloads it; wall time, peak RSS and
    server CPU of each."""
    c = Client(service)
    image_id = c.create_image("bench-upload")
    service.reset_peak_rss()
    cpu0, t0 = service.cpu_seconds(), time.monotonic()
    c.upload(image_id, path, size)
    up_s, up_cpu = time.monotonic() - t0, service.cpu_seconds() - cpu0
    up_rss = service.peak_rss_mib()
    c.wait_status(image_id)
    service.reset_peak_rss()
    t0 = time.monotonic()
    got = c.download(image_id)
    down_s = time.monotonic() - t0
    if got != size:
        raise HttpError(f"{service.name}: downloaded {got} bytes of {size}")
    down_rss = service.peak_rss_mib()
    c.request("DELETE", f"/v2/images/{image_id}")
    c.close()
    return {"upload_s": up_s, "upload_rss_mib": up_rss, "upload_cpu_s": up_cpu,
            "download_s": down_s, "download_rss_mib": down_rss}


def concurrent_uploads(service, paths, size):
    """One upload per file, all at once, each on its own connection; wall time until the last one
    has succeeded. A failed upload is done again into a new image after a short random pause (as a
    user would), and counted: Glance on SQLite fails some of them ("database is locked")."""
    clients = [Client(service) for _ in paths]
    made, failures = [], []

    def one(client, n, path):
        for _ in range(30):
            image_id = client.create_image(f"bench-concurrent-{n}")
            made.append(image_id)
            try:
                client.upload(image_id, path, size)
                return
            except (HttpError, OSError) as e:
                failures.append(str(e)[:200])
                client.close()
                time.sleep(random.uniform(0.1, 1.0))
        raise HttpError(f"{service.name}: upload {n} failed 30 times: {failures[-1]}")

    service.reset_peak_rss()
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(paths)) as pool:
        list(pool.map(one, clients, range(len(paths)), paths))
    wall = time.monotonic() - t0
    rss = service.peak_rss_mib()
    for image_id in made:
        clients[0].request("DELETE", f"/v2/images/{image_id}", expect=(204, 404, 409))
    for c in clients:
        c.close()
    return {"wall_s": wall, "rss_mib": rss, "retries": len(failures)}


def create_images(service, count, workers=1):
    """Creates `count` images; every 10th is tagged `blue` and has the property `tier=gold`.
    Returns (ids, images per second). One client by default: Glance on SQLite fails concurrent
    creations of tagged images ("database is locked" while inserting the tags)."""
    def make(indices):
        c = Client(service)
        made = []
        for i in indices:
            extra = {"tags": ["blue"], "tier": "gold"} if i % 10 == 0 else {"tier": "silver"}
            made.append(c.create_image(f"bench-meta-{i:05d}", **extra))
        c.close()
        return made
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        ids = [i for part in pool.map(make, [range(w, count, workers) for w in range(workers)]) for i in part]
    return ids, count / (time.monotonic() - t0)


def page_through(service, limit=100):
    """Follows `next` from `GET /v2/images?limit=N` to the end; total time, pages, images, and
    the median and p99 latency of one page."""
    c = Client(service)
    path, pages, images, latencies = f"/v2/images?limit={limit}", 0, 0, []
    t0 = time.monotonic()
    while path:
        t = time.monotonic()
        body = c.json("GET", path)
        latencies.append(time.monotonic() - t)
        pages += 1
        images += len(body["images"])
        path = body.get("next")
    total = time.monotonic() - t0
    c.close()
    latencies.sort()
    return {"total_s": total, "pages": pages, "images": images,
            "page_p50_ms": 1000 * latencies[len(latencies) // 2],
            "page_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]}


def oha(binary, service, path, seconds, concurrency):
    """Runs the load generator against one URL for `seconds` with `concurrency` connections:
    requests/s, p50 and p99 latency, success rate, and the CPU share the generator itself used."""
    cmd = [binary, "-z", f"{seconds}s", "-c", str(concurrency), "--no-tui", "--output-format", "json"]
    for k, v in service.headers.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(service.url + path)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"oha failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    report = json.loads(out)
    codes = report.get("statusCodeDistribution", {})
    ok = sum(n for code, n in codes.items() if str(code).startswith("2"))
    total = sum(codes.values())
    if total == 0 or ok < total:
        raise RuntimeError(f"{service.name} {path}: status codes {codes}")
    pct = report["latencyPercentiles"]
    return {"rps": report["summary"]["requestsPerSec"], "p50_ms": 1000 * pct["p50"], "p99_ms": 1000 * pct["p99"],
            "requests": total, "client_cpu": (usage.ru_utime + usage.ru_stime) / wall}


def derived_images(service, work, base, base_size, count=10, changed=0.01, regions=10):
    """Uploads the base image `base` and `count` images derived from it, each differing from the
    base in `changed` of its bytes (in `regions` runs at seeded random places, as a guest's updates
    land in a few files: the same images for every service); returns the bytes the service's data
    dir grew by, and the bytes uploaded."""
    c = Client(service)
    before = service.disk_bytes()
    rng = random.Random(42)
    uploaded = 0
    for n in range(count + 1):
        path = base
        if n:
            path = os.path.join(work, "derived.raw")
            shutil.copyfile(base, path)
            run = max(1, int(base_size * changed / regions))
            with open(path, "r+b") as f:
                for _ in range(regions):
                    f.seek(rng.randrange(0, base_size - run))
                    f.write(rng.randbytes(run))
        image_id = c.create_image(f"bench-derived-{n}")
        c.upload(image_id, path, base_size)
        c.wait_status(image_id)
        uploaded += base_size
    c.close()
    if os.path.exists(os.path.join(work, "derived.raw")):
        os.remove(os.path.join(work, "derived.raw"))
    return {"disk_bytes": service.disk_bytes() - before, "logical_bytes": uploaded}
