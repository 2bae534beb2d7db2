#!/usr/bin/env python3
"""Writes the seed corpora of the request-parser fuzz targets (see docs/fuzzing.md):

- nbd_session: the bytes real clients send on NBD connections, recorded by a proxy between
  qemu-img/qemu-io and qemu-nbd serving the export names the target serves (fuzz-ro, fuzz-rw);
- sdk_authorization: requests signed by huaweicloudsdkcore's own signer
  (scripts/sdk-signer-vectors.py, run with the Python that has the SDK), as the target's lines;
- json_patch: the patch bodies the openstack and glance clients send;
- list_query: the query strings the openstack and glance clients and openstacksdk send;
- chunk_object: chunk objects, as stored and as the store's encoder writes them, damaged.

Usage: protocol_seeds.py CORPUS_DIR [SDK_PYTHON]
Without qemu-nbd, or without a Python that has the SDK, those seeds are skipped (and said so).
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_seed(corpus, target, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    name = "seed-" + hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingProxy:
    """Forwards TCP connections to `upstream` and keeps what each client sent."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.sessions = []
        self.threads = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            sent = bytearray()
            self.sessions.append(sent)
            for src, dst, keep in ((client, upstream, sent), (upstream, client, None)):
                t = threading.Thread(target=self.pump, args=(src, dst, keep), daemon=True)
                t.start()
                self.threads.append(t)

    @staticmethod
    def pump(src, dst, keep):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if keep is not None:
                    keep.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def finish(self):
        for t in self.threads:
            t.join(timeout=5)
        self.listener.close()
        return [bytes(s) for s in self.sessions if s]


def wait_for_port(port, proc):
    for _ in range(100):
        if proc.poll() is not None:
            raise RuntimeError("qemu-nbd exited")
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("qemu-nbd did not listen")


def nbd_seeds(corpus):
    if not shutil.which("qemu-nbd") or not shutil.which("qemu-img") or not shutil.which("qemu-io"):
        print("protocol seeds: no qemu-nbd/qemu-img/qemu-io: no NBD seeds")
        return 0
    count = 0
    with tempfile.TemporaryDirectory() as tmp:
        disk = os.path.join(tmp, "disk.raw")
        with open(disk, "wb") as f:
            f.write(bytes(i % 251 for i in range(512 * 1024)))
            f.truncate(1 << 20)
        # (export name, read-only, client commands with {url}); writes are small, so that the
        # seeds (whole client sessions) stay a few KiB.
        sessions = [
            ("fuzz-ro", True, [
                ["qemu-img", "info", "{url}"],
                ["qemu-img", "map", "--output=json", "{url}"],
                ["qemu-img", "convert", "-f", "raw", "-O", "raw", "{url}", os.path.join(tmp, "out.raw")],
                ["qemu-io", "-r", "-f", "raw", "-c", "read -v 0 512", "-c", "read 4096 65536", "{url}"],
            ]),
            ("fuzz-rw", False, [
                ["qemu-io", "-f", "raw", "-c", "write -P 0xab 0 4096", "-c", "read -P 0xab 0 4096",
                 "-c", "discard 131072 65536", "-c", "write -z 262144 65536", "-c", "flush",
                 "-c", "write -P 0x11 1000 3000", "-c", "write -z -u 524288 4096", "{url}"],
                ["qemu-img", "map", "--output=json", "{url}"],
            ]),
        ]
        for name, read_only, commands in sessions:
            port = free_port()
            args = ["qemu-nbd", "-f", "raw", "-x", name, "-b", "127.0.0.1", "-p", str(port), "-t",
                    "--allocation-depth"]
            if read_only:
                args.append("-r")
            server = subprocess.Popen(args + [disk], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for_port(port, server)
                proxy = RecordingProxy(port)
                url = f"nbd://127.0.0.1:{proxy.port}/{name}"
                for cmd in commands:
                    subprocess.run([a.replace("{url}", url) for a in cmd], check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
                for data in proxy.finish():
                    write_seed(corpus, "nbd_session", data)
                    count += 1
            finally:
                server.terminate()
                server.wait()
    return count


def sdk_seeds(corpus, python):
    script = os.path.join(ROOT, "scripts", "sdk-signer-vectors.py")
    try:
        out = subprocess.run([python, script], check=True, capture_output=True, timeout=120).stdout
    except (OSError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
        print(f"protocol seeds: {python} cannot run the SDK signer: no sdk_authorization seeds")
        return 0
    count = 0
    for case in json.loads(out):
        path, _, query = case["uri"].partition("?")
        headers = {k: v for k, v in case["headers"].items()}
        lines = [headers.pop("Authorization"), case["method"], path, query, headers.get("X-Sdk-Date", "")]
        lines += [f"{k}:{v}" for k, v in headers.items()]
        write_seed(corpus, "sdk_authorization", "\n".join(lines).encode())
        count += 1
    return count


# What `openstack image set/unset`, `glance image-update` and openstacksdk send. The first byte
# selects the media type in the target: 0 = v2.1, 1 = v2.0.
PATCHES = [
    (0, [{"op": "replace", "path": "/name", "value": "web-2"}]),
    (0, [{"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
         {"op": "add", "path": "/hw_scsi_model", "value": "virtio-scsi"}]),
    (0, [{"op": "remove", "path": "/os_distro"}]),
    (0, [{"op": "replace", "path": "/visibility", "value": "shared"},
         {"op": "replace", "path": "/protected", "value": True},
         {"op": "replace", "path": "/min_disk", "value": 10},
         {"op": "replace", "path": "/min_ram", "value": 1024}]),
    (0, [{"op": "replace", "path": "/tags", "value": ["a", "b"]},
         {"op": "add", "path": "/deprecate_at", "value": "2030-01-01T00:00:00Z"}]),
    (0, [{"op": "add", "path": "/a~1b~0c", "value": "escaped"}]),
    (0, [{"op": "replace", "path": "/os_hidden", "value": False},
         {"op": "replace", "path": "/disk_format", "value": "qcow2"},
         {"op": "replace", "path": "/container_format", "value": "bare"}]),
    (1, [{"replace": "/name", "value": "old-form"}, {"add": "/k", "value": "v"}, {"remove": "/os_distro"}]),
]

# Query strings of `openstack image list` (with its filters), `glance image-list`, openstacksdk.
QUERIES = [
    "limit=25",
    "limit=20&sort_key=name&sort_dir=asc",
    "sort=name:asc,created_at:desc&limit=1000",
    "visibility=shared&member_status=all",
    "status=active&disk_format=qcow2&container_format=bare&owner=0123456789abcdef",
    "tag=a&tag=b&name=in:%22a,b%22,c",
    "created_at=gt:2024-01-01T00:00:00Z&updated_at=lte:2030-01-01T00:00:00Z",
    "size_min=1&size_max=1073741824&protected=true&os_hidden=false",
    "marker=7b2f3a10-0000-4000-8000-000000000000&limit=2",
    "visibility=community&os_distro=debian",
    "id=in:7b2f3a10-0000-4000-8000-000000000000,7b2f3a10-0000-4000-8000-000000000001",
    "sort_key=created_at&sort_key=id&sort_dir=desc&sort_dir=asc",
]


def chunk_seeds(corpus):
    """chunk_object: plaintexts the target encodes itself (framed and not), with and without damage, and
    objects given as stored (the tags of every codec, a frame table cut short)."""
    seeds = []
    for length in (100, 60_000, 65_537, 200_000, 300_000):
        head = bytes([1]) + length.to_bytes(3, "little")
        seeds.append(head + b"a chunk of text, " * 8)
        seeds.append(head + bytes([0x10, 0x00, 0xff, 0x80, 0x00, 0x01]) + bytes(range(256)))
    for tag in (0, 1, 2, 0x80, 0x81, 0x82):
        for mode in (0, 2):
            seeds.append(bytes([mode]) + (150_000).to_bytes(3, "little") + bytes([tag]) + bytes(range(64)) * 4)
    for seed in seeds:
        write_seed(corpus, "chunk_object", seed)
    return len(seeds)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    corpus = sys.argv[1]
    python = sys.argv[2] if len(sys.argv) > 2 else sys.executable
    n_nbd = nbd_seeds(corpus)
    n_sdk = sdk_seeds(corpus, python)
    for selector, ops in PATCHES:
        write_seed(corpus, "json_patch", bytes([selector]) + json.dumps(ops).encode())
    for query in QUERIES:
        write_seed(corpus, "list_query", query.encode())
    n_chunk = chunk_seeds(corpus)
    print(f"protocol seeds: nbd_session {n_nbd}, sdk_authorization {n_sdk}, "
          f"json_patch {len(PATCHES)}, list_query {len(QUERIES)}, chunk_object {n_chunk}")


if __name__ == "__main__":
    main()
