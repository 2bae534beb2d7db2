#!/usr/bin/env python3
"""Metadata load on one or more IMS nodes: image create, show and list through the Images API.

    bench/metadata-load.py --token TOKEN --images N [--clients C] [--lists L] URL [URL...]

C client threads (default 16), each with one keep-alive HTTP/1.1 connection to one node (client i
talks to URL i mod the number of URLs), run three phases one after the other:
  create  N  `POST /v2/images` (a queued image with a name, formats and a property each)
  show    N  `GET /v2/images/{id}`, every created image once
  list    L  `GET /v2/images?limit=100&marker=ID` at random created images (default N / 10)
Prints one line of JSON per phase: requests, seconds, requests per second, latency median and 99th
percentile in milliseconds. Any response other than the expected status stops the run with exit 1.
"""
import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse


class Client:
    def __init__(self, url, token):
        parsed = urllib.parse.urlparse(url)
        self.host, self.port, self.token = parsed.hostname, parsed.port, token
        self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def call(self, method, path, body=None, expect=200):
        headers = {"X-Auth-Token": self.token}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        for attempt in range(2):
            try:
                self.connection.request(method, path, body=data, headers=headers)
                response = self.connection.getresponse()
                raw = response.read()
                break
            except (http.client.HTTPException, ConnectionError):
                # The server may close an idle keep-alive connection: reconnect once.
                self.connection.close()
                self.connection = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt:
                    raise
        if response.status != expect:
            raise RuntimeError(f"{method} {path}: {response.status} {raw[:300]!r}")
        return json.loads(raw) if raw else None


def run_phase(clients, work, action):
    """Runs `action(client, item)` for every item of `work`, spread over the clients; latencies in ms."""
    lock, position, latencies, failures = threading.Lock(), [0], [], []

    def worker(client):
        mine = []
        while not failures:
            with lock:
                index = position[0]
                position[0] += 1
            if index >= len(work):
                break
            started = time.perf_counter()
            try:
                action(client, work[index])
            except Exception as e:  # noqa: BLE001 - reported and fatal
                failures.append(str(e))
                break
            mine.append((time.perf_counter() - started) * 1000.0)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(c,)) for c in clients]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - started
    if failures:
        sys.exit(f"metadata-load: {failures[0]}")
    return seconds, sorted(latencies)


def report(phase, seconds, latencies):
    n = len(latencies)
    print(json.dumps({
        "phase": phase, "requests": n, "seconds": round(seconds, 3), "per_second": round(n / seconds, 1),
        "p50_ms": round(latencies[n // 2], 2), "p99_ms": round(latencies[min(n - 1, n * 99 // 100)], 2),
    }), flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--token", required=True)
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--lists", type=int)
    parser.add_argument("urls", nargs="+")
    args = parser.parse_args()
    clients = [Client(args.urls[i % len(args.urls)], args.token) for i in range(args.clients)]
    ids = [None] * args.images

    def create(client, i):
        body = {"name": f"bench-{i}", "disk_format": "qcow2", "container_format": "bare", "bench_index": str(i)}
        ids[i] = client.call("POST", "/v2/images", body, expect=201)["id"]

    def show(client, image_id):
        if client.call("GET", f"/v2/images/{image_id}")["id"] != image_id:
            raise RuntimeError(f"GET /v2/images/{image_id} answered another image")

    def list_page(client, marker):
        page = client.call("GET", f"/v2/images?limit=100&marker={marker}")
        if len(page["images"]) > 100:
            raise RuntimeError("a list page of limit=100 held more than 100 images")

    report("create", *run_phase(clients, list(range(args.images)), create))
    report("show", *run_phase(clients, list(ids), show))
    rng = random.Random(9)
    markers = [rng.choice(ids) for _ in range(args.lists or max(1, args.images // 10))]
    report("list", *run_phase(clients, markers, list_page))


main()
