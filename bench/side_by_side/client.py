"""A small HTTP client over `http.client` for the Images API of both services: persistent
connections, file bodies streamed in 1 MiB blocks, downloads read in 1 MiB blocks and dropped."""

import http.client
import json
import time
import urllib.parse

BLOCK = 1 << 20


class HttpError(RuntimeError):
    pass


class Prefix:
    """The first `size` bytes of an open file, as a body `http.client` streams (it reads to the end)."""

    def __init__(self, f, size):
        self.f, self.left = f, size

    def read(self, amt=BLOCK):
        block = self.f.read(min(amt, self.left))
        self.left -= len(block)
        return block


class Client:
    def __init__(self, service, timeout=3600):
        self.service = service
        parsed = urllib.parse.urlsplit(service.url)
        self.host, self.port = parsed.hostname, parsed.port
        self.timeout = timeout
        self.conn = None

    def _connection(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout, blocksize=BLOCK)
        return self.conn

    def request(self, method, path, body=None, headers=None, expect=(200, 201, 202, 204), sink=False):
        """One request; JSON bodies are encoded, file objects streamed. Returns (status, decoded
        JSON or text, headers); with `sink` the response body is read and dropped (its byte count
        is returned in place of the body)."""
        hdrs = dict(self.service.headers)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=hdrs)
                response = conn.getresponse()
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # A kept-alive connection the server closed meanwhile: once more on a new one,
                # unless a streamed body was already partly sent.
                self.close()
                if attempt or (body is not None and not isinstance(body, bytes)):
                    raise
        if sink:
            n = 0
            while True:
                block = response.read(BLOCK)
                if not block:
                    break
                n += len(block)
            data = n
        else:
            raw = response.read()
            try:
                data = json.loads(raw) if raw else None
            except ValueError:
                data = raw.decode(errors="replace")
        if response.getheader("Connection", "").lower() == "close":
            self.close()
        if response.status not in expect:
            raise HttpError(f"{self.service.name}: {method} {path}: {response.status} {data}")
        return response.status, data, response.headers

    def json(self, method, path, body=None, **kw):
        return self.request(method, path, body=body, **kw)[1]

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # The Images API (Glance v2) calls both services answer.

    def create_image(self, name, disk_format="raw", **extra):
        body = {"name": name, "disk_format": disk_format, "container_format": "bare"}
        body.update(extra)
        return self.json("POST", "/v2/images", body)["id"]

    def upload(self, image_id, path, size, stage=False):
        """Uploads the first `size` bytes of `path`."""
        with open(path, "rb") as f:
            self.request("PUT", f"/v2/images/{image_id}/{'stage' if stage else 'file'}", body=Prefix(f, size),
                         headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})

    def download(self, image_id, out=None):
        """Reads the image's data; writes it to `out` (a path) when given. Returns the byte count."""
        if out is None:
            return self.request("GET", f"/v2/images/{image_id}/file", sink=True)[1]
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", f"/v2/images/{image_id}/file", headers=self.service.headers)
            response = conn.getresponse()
            if response.status != 200:
                raise HttpError(f"{self.service.name}: download {image_id}: {response.status}")
            n = 0
            with open(out, "wb") as f:
                while block := response.read(BLOCK):
                    f.write(block)
                    n += len(block)
            return n
        finally:
            conn.close()

    def show(self, image_id):
        return self.json("GET", f"/v2/images/{image_id}")

    def wait_status(self, image_id, wanted="active", timeout=3600):
        """Polls the image until it has `wanted`; fails at once on a status it cannot leave for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            image = self.show(image_id)
            if image["status"] == wanted:
                return image
            if image["status"] in ("killed", "deleted", "pending_delete") or (
                    image["status"] == "queued" and image.get("os_glance_failed_import")):
                raise HttpError(f"{self.service.name}: image {image_id} ended {image['status']}: {image}")
            time.sleep(0.05)
        raise HttpError(f"{self.service.name}: image {image_id} not {wanted} after {timeout} s")
