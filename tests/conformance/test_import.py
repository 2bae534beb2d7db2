"""Glance interoperable import with the real clients: `glance image-create-via-import`
(glance-direct and web-download), `glance image-stage` + `glance image-import`,
`openstack image create --import`, `openstack image stage` + `openstack image import`,
a refused web-download, and `copy-image` to the second store (`glance image-import --import-method
copy-image --stores second`, `openstack image show` listing both stores, `glance stores-delete` of either
store's copy, copy-image back to `local`).

The server runs with web-download allowed to reach loopback addresses of the host
`127.0.0.1` only (see conftest.py), so the tests can serve sources from a local HTTP
server while any other host (`localhost` included) is refused.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import subprocess
import threading
import time

import pytest

from conformance_util import error_text, unique

IMPORT_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def owner(ims):
    return ims.new_tenant("import")


@pytest.fixture(scope="module")
def file_server(payload):
    """Serves the payload's directory on 127.0.0.1 (a free port) for web-download."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(payload.path.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def source_url(file_server, payload, host="127.0.0.1") -> str:
    return f"http://{host}:{file_server.server_address[1]}/{payload.path.name}"


def wait_active(ims, token, image_id) -> dict:
    deadline = time.monotonic() + IMPORT_TIMEOUT
    while True:
        r = ims.http("GET", f"/v2/images/{image_id}", token=token)
        assert r.status_code == 200, r.text
        img = r.json()
        if img["status"] not in ("uploading", "importing"):
            return img
        assert time.monotonic() < deadline, f"image {image_id} still {img['status']}"
        time.sleep(0.2)


def assert_imported(ims, token, image_id, payload):
    img = wait_active(ims, token, image_id)
    assert img["status"] == "active", img
    assert img["size"] == payload.size
    assert img["checksum"] == payload.md5
    assert img["os_hash_value"] == payload.sha512
    # Glance keeps the property, empty once no store is left to import to.
    assert img["os_glance_importing_to_stores"] == "", img
    r = ims.http("GET", f"/v2/images/{image_id}/tasks", token=token)
    assert r.status_code == 200, r.text
    tasks = r.json()["tasks"]
    assert [t["status"] for t in tasks] == ["success"], tasks
    return img


def test_info_import_lists_the_methods(ims):
    r = ims.http("GET", "/v2/info/import")
    assert r.status_code == 200, r.text
    assert r.json()["import-methods"]["value"] == ["glance-direct", "web-download", "copy-image"]


def test_glance_create_via_import_glance_direct(ims, owner, payload):
    tok = owner.user.token
    img = ims.glance(
        "image-create-via-import", "--name", unique("gl-direct"), "--disk-format", "raw",
        "--container-format", "bare", "--import-method", "glance-direct", "--file", str(payload.path),
        token=tok,
    )
    assert_imported(ims, tok, img["id"], payload)
    got = ims.http("GET", f"/v2/images/{img['id']}/file", token=tok)
    assert got.status_code == 200 and len(got.content) == payload.size


def test_glance_import_converts_vmdk_to_raw(ims, owner, tmp_path):
    """The suite's server stores imported VMDK files as RAW (`[import_conversions] vmdk = "raw"`)."""
    tok = owner.user.token
    vmdk = tmp_path / "disk.vmdk"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vmdk", str(vmdk), "32M"], check=True)
    for pattern, offset in (("0x5a", "1M"), ("0xc3", "17M")):
        subprocess.run(["qemu-io", "-f", "vmdk", "-c", f"write -P {pattern} {offset} 256k", str(vmdk)],
                       check=True, stdout=subprocess.DEVNULL)
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-f", "vmdk", "-O", "raw", str(vmdk), str(raw)], check=True)
    source = vmdk.read_bytes()
    img = ims.glance(
        "image-create-via-import", "--name", unique("gl-convert"), "--disk-format", "vmdk",
        "--container-format", "bare", "--import-method", "glance-direct", "--file", str(vmdk),
        token=tok,
    )
    img = wait_active(ims, tok, img["id"])
    assert img["status"] == "active", img
    # The record describes what is stored; the uploaded file's facts are kept as properties.
    assert (img["disk_format"], img["size"], img["virtual_size"]) == ("raw", 32 << 20, 32 << 20), img
    assert img["checksum"] == hashlib.md5(raw.read_bytes()).hexdigest()
    assert img["__original_disk_format"] == "vmdk"
    assert img["__original_size"] == str(len(source))
    assert img["__original_checksum"] == hashlib.md5(source).hexdigest()
    assert img["__original_os_hash_value"] == hashlib.sha512(source).hexdigest()
    got = ims.http("GET", f"/v2/images/{img['id']}/file", token=tok)
    assert got.status_code == 200 and got.content == raw.read_bytes()
    shown = ims.glance("image-show", img["id"], token=tok)
    assert shown["disk_format"] == "raw" and shown["__original_disk_format"] == "vmdk"


def test_glance_create_via_import_web_download(ims, owner, payload, file_server):
    tok = owner.user.token
    img = ims.glance(
        "image-create-via-import", "--name", unique("gl-web"), "--disk-format", "raw",
        "--container-format", "bare", "--import-method", "web-download",
        "--uri", source_url(file_server, payload), token=tok,
    )
    assert_imported(ims, tok, img["id"], payload)


def test_glance_image_stage_then_image_import(ims, owner, payload):
    tok = owner.user.token
    img = ims.glance("image-create", "--name", unique("gl-stage"), "--disk-format", "raw",
                     "--container-format", "bare", token=tok)
    assert img["status"] == "queued"
    ims.glance("image-stage", "--file", str(payload.path), img["id"], token=tok, table=False)
    staged = ims.glance("image-show", img["id"], token=tok)
    assert staged["status"] == "uploading"
    ims.glance("image-import", "--import-method", "glance-direct", img["id"], token=tok, table=False)
    assert_imported(ims, tok, img["id"], payload)
    tasks = ims.glance("image-tasks", img["id"], token=tok, table=False)
    assert "success" in tasks, tasks


def test_openstack_image_create_import(ims, owner, payload):
    tok = owner.user.token
    img = ims.openstack("image", "create", "--import", "--disk-format", "raw", "--container-format", "bare",
                        "--file", str(payload.path), unique("osc-import"), token=tok)
    assert_imported(ims, tok, img["id"], payload)


def test_openstack_image_stage_and_import(ims, owner, payload, file_server):
    tok = owner.user.token
    img = ims.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                        unique("osc-stage"), token=tok)
    ims.openstack("image", "stage", "--file", str(payload.path), img["id"], token=tok, json_out=False)
    ims.openstack("image", "import", "--method", "glance-direct", img["id"], token=tok)
    assert_imported(ims, tok, img["id"], payload)

    web = ims.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                        unique("osc-web"), token=tok)
    ims.openstack("image", "import", "--method", "web-download", "--uri", source_url(file_server, payload),
                  web["id"], token=tok)
    assert_imported(ims, tok, web["id"], payload)


def test_refused_web_download(ims, owner, payload, file_server):
    tok = owner.user.token
    img = ims.glance("image-create", "--name", unique("gl-refused"), "--disk-format", "raw",
                     "--container-format", "bare", token=tok)
    for uri in (source_url(file_server, payload, host="localhost"), "http://169.254.169.254/latest/meta-data/"):
        proc = ims.glance("image-import", "--import-method", "web-download", "--uri", uri, img["id"],
                          token=tok, expect_fail=True)
        assert "400" in error_text(proc) or "not" in error_text(proc), error_text(proc)
        # openstacksdk's Image.import_image does not check the answer, so `openstack image import`
        # exits 0 on the server's 400: the refusal shows in the image, which stays queued without task.
        ims.openstack("image", "import", "--method", "web-download", "--uri", uri, img["id"], token=tok)
        r = ims.http("POST", f"/v2/images/{img['id']}/import", token=tok,
                     json={"method": {"name": "web-download", "uri": uri}})
        assert r.status_code == 400, r.text
        assert "allowlist" in r.text, r.text
    r = ims.http("GET", f"/v2/images/{img['id']}", token=tok)
    assert r.json()["status"] == "queued"
    assert ims.http("GET", f"/v2/images/{img['id']}/tasks", token=tok).json()["tasks"] == []


def wait_stores(ims, token, image_id, expected) -> dict:
    deadline = time.monotonic() + IMPORT_TIMEOUT
    while True:
        img = ims.http("GET", f"/v2/images/{image_id}", token=token).json()
        if img.get("stores") == expected and img.get("os_glance_importing_to_stores") == "":
            return img
        assert time.monotonic() < deadline, f"image {image_id} is in {img.get('stores')}, not {expected}: {img}"
        time.sleep(0.2)


def test_copy_image_to_a_second_store(ims, owner, payload):
    tok = owner.user.token
    stores = ims.glance("stores-info", token=tok, table=False)
    assert "second" in stores and "local" in stores, stores
    img = ims.glance(
        "image-create-via-import", "--name", unique("gl-copy"), "--disk-format", "raw",
        "--container-format", "bare", "--import-method", "glance-direct", "--file", str(payload.path),
        token=tok,
    )
    assert_imported(ims, tok, img["id"], payload)
    ims.glance("image-import", "--import-method", "copy-image", "--stores", "second", img["id"],
               token=tok, table=False)
    copied = wait_stores(ims, tok, img["id"], "local,second")
    assert copied["status"] == "active" and copied["checksum"] == payload.md5, copied
    shown = ims.openstack("image", "show", img["id"], token=tok)
    # openstackclient shows the fields it does not know (`stores` among them) under `properties`.
    assert shown["properties"]["stores"] == "local,second", shown
    deadline = time.monotonic() + IMPORT_TIMEOUT
    while True:  # the task ends right after the image records the copy
        tasks = ims.http("GET", f"/v2/images/{img['id']}/tasks", token=tok).json()["tasks"]
        if sorted(t["status"] for t in tasks) == ["success", "success"]:
            break
        assert time.monotonic() < deadline, tasks
        time.sleep(0.2)
    copy_task = [t for t in tasks if t["input"]["import_req"]["method"]["name"] == "copy-image"][0]
    assert copy_task["result"]["chunks_copied"] >= 1, copy_task

    # Unknown store: refused by the client itself, and by the server.
    proc = ims.glance("image-import", "--import-method", "copy-image", "--stores", "nowhere", img["id"],
                      token=tok, expect_fail=True)
    assert "nowhere" in error_text(proc), error_text(proc)
    r = ims.http("POST", f"/v2/images/{img['id']}/import", token=tok,
                 json={"method": {"name": "copy-image"}, "stores": ["nowhere"]})
    assert r.status_code == 409, r.text

    # The default store's copy can go while another store keeps one: the image is read from that copy.
    ims.glance("stores-delete", "--store", "local", img["id"], token=tok, table=False)
    assert ims.openstack("image", "show", img["id"], token=tok)["properties"]["stores"] == "second"
    got = ims.http("GET", f"/v2/images/{img['id']}/file", token=tok)
    assert got.status_code == 200 and hashlib.md5(got.content).hexdigest() == payload.md5
    proc = ims.glance("stores-delete", "--store", "second", img["id"], token=tok, expect_fail=True)
    assert "409" in error_text(proc) or "only copy" in error_text(proc), error_text(proc)

    # copy-image brings it back to the default store; then the second store's copy can go.
    ims.glance("image-import", "--import-method", "copy-image", "--stores", "local", img["id"],
               token=tok, table=False)
    wait_stores(ims, tok, img["id"], "local,second")
    ims.glance("stores-delete", "--store", "second", img["id"], token=tok, table=False)
    assert ims.openstack("image", "show", img["id"], token=tok)["properties"]["stores"] == "local"
    got = ims.http("GET", f"/v2/images/{img['id']}/file", token=tok)
    assert got.status_code == 200 and hashlib.md5(got.content).hexdigest() == payload.md5
