"""The clients over HTTPS: a server of its own started with `--tls-cert`/`--tls-key`.

A test CA and a server certificate for `localhost` and 127.0.0.1 are made with `openssl` at module set-up.
Each client is given that CA and nothing else (no verification is turned off):

- `openstack --os-cacert CA`, `glance --os-cacert CA`;
- openstacksdk with `cacert=CA` (keystoneauth's session verifies against it);
- huaweicloudsdkims with `HttpConfig.ssl_ca_cert = CA`. That SDK has no call for image data (uploads and
  downloads are Glance's `/file`), so its data goes the IMS way: a bucket file becomes an image
  (CreateImage with `image_url`), which ExportImage writes back to the bucket; the bucket objects are put and
  fetched over HTTPS with requests (`verify=CA`).

Each client creates an image, uploads data, lists and downloads it; the server answers plain HTTP with nothing.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from conformance_util import unique
from conftest import STARTUP_TIMEOUT, Env, _clean_env, _free_port, _resolve_ims_bin

HSTS = "max-age=31536000"


@dataclass
class Pki:
    ca: Path
    cert: Path
    key: Path


def make_pki(d: Path) -> Pki:
    """A CA, and a server certificate it signed for localhost and 127.0.0.1."""
    ca_key, ca, key, csr, cert, ext = (d / n for n in ("ca.key", "ca.crt", "server.key", "server.csr",
                                                      "server.crt", "server.ext"))
    openssl = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", "/CN=IMS conformance CA", "-keyout", str(ca_key), "-out", str(ca))
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=localhost",
            "-keyout", str(key), "-out", str(csr))
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return Pki(ca, cert, key)


@dataclass
class HttpsServer:
    env: Env
    pki: Pki
    port: int

    @property
    def url(self) -> str:
        return self.env.url

    def http(self, method: str, path: str, **kw) -> requests.Response:
        headers = {"X-Auth-Token": self.env.admin_token}
        headers.update(kw.pop("headers", {}) or {})
        return requests.request(method, self.url + path, headers=headers, verify=str(self.pki.ca), timeout=60, **kw)

    def client_env(self) -> dict[str, str]:
        """The clients' environment without CA bundle variables: requests lets them override a session's
        `verify` (glanceclient's `--os-cacert`), and the clients must trust the test CA by their own options."""
        return {k: v for k, v in self.env.env.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}

    def openstack(self, *args: str) -> str:
        argv = ["openstack", "--os-cacert", str(self.pki.ca), "--os-auth-type", "admin_token",
                "--os-token", self.env.admin_token, "--os-endpoint", self.url + "/v2", *args]
        return self.env.run(argv, env=self.client_env()).stdout

    def glance(self, *args: str) -> str:
        argv = ["glance", "--os-cacert", str(self.pki.ca), "--os-image-api-version", "2", "--os-image-url", self.url,
                "--os-auth-token", self.env.admin_token, *args]
        return self.env.run(argv, env=self.client_env()).stdout


@pytest.fixture(scope="module")
def https(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ims-tls")
    pki = make_pki(workdir)
    port = _free_port()
    token = "adm-" + secrets.token_hex(20)
    server_env = _clean_env(str(workdir))
    server_env["IMS_ADMIN_TOKEN"] = token
    log_path = workdir / "server.log"
    log = open(log_path, "wb")
    ims_bin = _resolve_ims_bin()
    proc = subprocess.Popen(
        [ims_bin, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(workdir / "data"),
         "--nbd-listen", "off", "--tls-cert", str(pki.cert), "--tls-key", str(pki.key)],
        env=server_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(workdir),
        start_new_session=True,
    )
    env = Env(f"https://localhost:{port}", token, workdir, log_path, ims_bin)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert proc.poll() is None, f"ims serve with TLS exited at start:\n{env.server_log()}"
            try:
                if requests.get(env.url + "/healthcheck", verify=str(pki.ca), timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"ims serve with TLS did not answer:\n{env.server_log()}"
            time.sleep(0.2)
        yield HttpsServer(env, pki, port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tls-data") / "disk.raw"
    path.write_bytes(os.urandom(2 * 1024 * 1024 + 777))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_https_only_with_hsts(https):
    r = requests.get(https.url + "/healthcheck", verify=str(https.pki.ca), timeout=10)
    assert r.status_code == 200 and r.headers["Strict-Transport-Security"] == HSTS
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{https.port}/healthcheck", timeout=10)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https.url + "/healthcheck", timeout=10)  # the system's CAs do not know the test CA
    versions = requests.get(https.url + "/versions", verify=str(https.pki.ca), timeout=10).json()
    assert versions["versions"][0]["links"][0]["href"] == https.url + "/v2/"


def test_openstack_client_over_https(https, data, tmp_path):
    import json

    name = unique("osc-tls")
    created = json.loads(https.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                                         "--file", str(data), name, "-f", "json"))
    assert created["status"] == "active" and created["size"] == data.stat().st_size, created
    listed = json.loads(https.openstack("image", "list", "--name", name, "-f", "json"))
    assert [i["ID"] for i in listed] == [created["id"]], listed
    out = tmp_path / "osc.raw"
    https.openstack("image", "save", "--file", str(out), created["id"])
    assert sha256(out) == sha256(data)


def test_glance_client_over_https(https, data, tmp_path):
    from conformance_util import parse_glance_table

    name = unique("glance-tls")
    created = parse_glance_table(https.glance("image-create", "--name", name, "--disk-format", "raw",
                                              "--container-format", "bare", "--file", str(data)))
    assert created["status"] == "active", created
    listed = parse_glance_table(https.glance("image-list", "--property-filter", f"name={name}"))
    assert [i["ID"] for i in listed] == [created["id"]], listed
    out = tmp_path / "glance.raw"
    https.glance("image-download", "--file", str(out), created["id"])
    assert sha256(out) == sha256(data)


def test_openstacksdk_over_https(https, data, tmp_path):
    import openstack

    conn = openstack.connect(
        auth_type="admin_token",
        auth={"endpoint": https.url, "token": https.env.admin_token},
        image_endpoint_override=https.url,
        cacert=str(https.pki.ca),
        load_yaml_config=False,
        load_envvars=False,
    )
    name = unique("sdk-tls")
    image = conn.image.create_image(name=name, filename=str(data), disk_format="raw", container_format="bare",
                                    wait=True, allow_duplicates=True)
    assert conn.image.get_image(image.id).status == "active"
    assert [i.id for i in conn.image.images(name=name)] == [image.id]
    out = tmp_path / "sdk.raw"
    conn.image.download_image(image.id, output=str(out))
    assert sha256(out) == sha256(data)


def test_huawei_sdk_over_https(https, tmp_path):
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkims.v2 import (
        CreateImageRequest, CreateImageRequestBody, ExportImageRequest, ExportImageRequestBody,
        GlanceListImagesRequest, ImsClient, ShowJobRequest,
    )

    me = https.http("GET", "/identity/v1/auth").json()
    r = https.http("POST", "/identity/v1/access-keys", json={"user": me["user"]["name"], "project": me["project"]["id"]})
    assert r.status_code == 201, r.text
    key = r.json()["access_key"]
    config = HttpConfig.get_default_config()
    config.ssl_ca_cert = str(https.pki.ca)
    config.timeout = (10, 60)
    client = (ImsClient.new_builder().with_http_config(config)
              .with_credentials(BasicCredentials(key["access"], key["secret"], me["project"]["id"]))
              .with_endpoint(https.url).build())

    # A QCOW2 with data, put in a bucket over HTTPS.
    disk = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "16M"], check=True)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 0x5A 1M 64k", str(disk)], check=True,
                   stdout=subprocess.DEVNULL)
    bucket = unique("tls-bkt").lower()
    assert https.http("PUT", f"/buckets/v1/{bucket}").status_code in (200, 201)
    r = https.http("PUT", f"/buckets/v1/{bucket}/objects/disk.qcow2", data=disk.read_bytes())
    assert r.status_code in (200, 201), r.text

    def finished(job_id: str):
        deadline = time.monotonic() + 60
        while True:
            job = client.show_job(ShowJobRequest(job_id=job_id))
            if job.status in ("SUCCESS", "FAIL"):
                assert job.status == "SUCCESS", (job.error_code, job.fail_reason)
                return job
            assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
            time.sleep(0.3)

    name = unique("hw-tls")
    resp = client.create_image(CreateImageRequest(body=CreateImageRequestBody(
        name=name, image_url=f"{bucket}:disk.qcow2", min_disk=40, os_version="Ubuntu 22.04 server 64bit")))
    image_id = finished(resp.job_id).entities.image_id
    listed = client.glance_list_images(GlanceListImagesRequest(name=name)).images
    assert [(i.id, i.status) for i in listed] == [(image_id, "active")], listed

    resp = client.export_image(ExportImageRequest(image_id=image_id, body=ExportImageRequestBody(
        bucket_url=f"{bucket}:export.qcow2", file_format="qcow2")))
    finished(resp.job_id)
    r = https.http("GET", f"/buckets/v1/{bucket}/objects/export.qcow2")
    assert r.status_code == 200, r.text
    out = tmp_path / "export.qcow2"
    out.write_bytes(r.content)
    compare = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", str(disk), str(out)],
                             capture_output=True, text=True)
    assert compare.returncode == 0, compare.stdout + compare.stderr
