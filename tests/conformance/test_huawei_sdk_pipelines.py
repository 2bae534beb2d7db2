"""The IMS image pipelines driven by the official SDK: images from bucket files (CreateImage with
`image_url`, CreateDataImage, ImportImageQuick, RegisterImage), ExportImage in several formats,
CopyImageInRegion and CopyImageCrossRegion, each returning a `job_id` followed with ShowJob/ShowJobProgress
until it ends.

For the copy across regions a second server is started here as region A, configured to copy to the
session's server as `region-b` (with the session's admin token as its service credentials).

Bucket files are put and fetched with our CLI (`ims bucket put|get`) as the same project; every
exported file is compared with its source by qemu-img.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conformance_util import unique
from conftest import STARTUP_TIMEOUT, Env, _clean_env, _free_port, _resolve_ims_bin
from test_huawei_sdk import Account, create_image, expect_error, new_account, wait_job

from huaweicloudsdkims.v2 import *  # noqa: F401,F403 (the SDK's request and model classes)

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def acct(ims) -> Account:
    return new_account(ims, "hw-pipe")


@pytest.fixture(scope="module")
def disk(tmp_path_factory) -> Path:
    """A 64 MiB QCOW2 with known data at scattered offsets."""
    d = tmp_path_factory.mktemp("pipeline-disk")
    path = d / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    for offset, pattern in [(0, 0x11), (5 * MIB + 4096, 0x5A), (40 * MIB, 0xC3), (64 * MIB - 65536, 0x7E)]:
        subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} {offset} 64k", str(path)],
                       check=True, stdout=subprocess.DEVNULL)
    return path


@pytest.fixture(scope="module")
def bucket(ims, acct, disk) -> str:
    name = unique("bkt").lower().replace("_", "-")
    ims.ims("bucket", "put", str(disk), f"{name}:disk.qcow2", "--output", "json", token=acct.token)
    raw = disk.with_suffix(".raw")
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(disk), str(raw)], check=True)
    ims.ims("bucket", "put", str(raw), f"{name}:disk.raw", "--output", "json", token=acct.token)
    return name


def succeeded(acct: Account, job_id: str) -> str:
    """Waits for the job, asserts it succeeded, and returns the image it names."""
    assert job_id, "the answer names a job"
    job = wait_job(acct, job_id)
    assert job.status == "SUCCESS", (job.status, job.error_code, job.fail_reason)
    assert job.entities.image_id, job
    progress = acct.client.show_job_progress(ShowJobProgressRequest(job_id=job_id))
    assert progress.status == "SUCCESS" and progress.entities.image_id == job.entities.image_id, progress
    return job.entities.image_id


def show(acct: Account, image_id: str):
    return acct.client.glance_show_image(GlanceShowImageRequest(image_id=image_id))


def same_disk(a: Path, b: Path, b_format: str) -> None:
    """qemu-img compare of the QCOW2 `a` and `b` read as `b_format` (a fixed VHD is only found by name)."""
    r = subprocess.run(["qemu-img", "compare", "-f", "qcow2", "-F", b_format, str(a), str(b)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"qemu-img compare {a} {b}: {r.stdout} {r.stderr}"


def test_system_disk_image_from_a_bucket_file_then_export_and_copy(ims, acct, bucket, disk, tmp_path):
    name = unique("from-bucket")
    resp = acct.client.create_image(CreateImageRequest(body=CreateImageRequestBody(
        name=name, image_url=f"{bucket}:disk.qcow2", min_disk=40, os_version="Ubuntu 22.04 server 64bit")))
    image_id = succeeded(acct, resp.job_id)
    image = show(acct, image_id)
    assert (image.name, image.status) == (name, "active"), image
    assert image.virtual_size == 64 * MIB, image

    for fmt, suffix, qemu_format in [("vmdk", "vmdk", "vmdk"), ("vhd", "vhd", "vpc"), ("qcow2", "qcow2", "qcow2")]:
        key = f"export/{image_id}.{suffix}"
        resp = acct.client.export_image(ExportImageRequest(image_id=image_id, body=ExportImageRequestBody(
            bucket_url=f"{bucket}:{key}", file_format=fmt)))
        job = wait_job(acct, resp.job_id)
        assert job.status == "SUCCESS", (fmt, job.error_code, job.fail_reason)
        out = tmp_path / f"out.{suffix}"
        ims.ims("bucket", "get", f"{bucket}:{key}", str(out), token=acct.token)
        same_disk(disk, out, qemu_format)

    resp = acct.client.copy_image_in_region(CopyImageInRegionRequest(image_id=image_id, body=CopyImageInRegionRequestBody(
        name=name + "-copy")))
    copy_id = succeeded(acct, resp.job_id)
    assert copy_id != image_id
    copy = show(acct, copy_id)
    assert (copy.status, copy.checksum, copy.size) == ("active", image.checksum, image.size), copy


def test_data_disk_quick_import_and_register(acct, bucket):
    resp = acct.client.create_data_image(CreateDataImageRequest(body=CreateDataImageRequestBody(
        name=unique("data"), image_url=f"{bucket}:disk.qcow2", min_disk=40)))
    assert show(acct, succeeded(acct, resp.job_id)).status == "active"

    resp = acct.client.import_image_quick(ImportImageQuickRequest(body=QuickImportImageByFileRequestBody(
        name=unique("quick"), os_version="Ubuntu 22.04 server 64bit", image_url=f"{bucket}:disk.raw", min_disk=40)))
    quick = show(acct, succeeded(acct, resp.job_id))
    assert (quick.status, quick.size) == ("active", 64 * MIB), quick

    image_id = create_image(acct, unique("registered"))
    resp = acct.client.register_image(RegisterImageRequest(image_id=image_id, body=RegisterImageRequestBody(
        image_url=f"{bucket}:disk.qcow2")))
    assert succeeded(acct, resp.job_id) == image_id
    assert show(acct, image_id).status == "active"


def test_pipeline_refusals_and_failures_change_nothing(ims, acct, bucket):
    image_id = create_image(acct, unique("unchanged"))
    expect_error(lambda: acct.client.export_image(ExportImageRequest(image_id=image_id, body=ExportImageRequestBody(
        bucket_url=f"{bucket}:never.bin", file_format="exe"))), 400)

    resp = acct.client.create_image(CreateImageRequest(body=CreateImageRequestBody(
        name=unique("missing"), image_url=f"{bucket}:no-such-file.qcow2", min_disk=40,
        os_version="Ubuntu 22.04 server 64bit")))
    job = wait_job(acct, resp.job_id)
    assert job.status == "FAIL" and job.error_code and job.fail_reason, job
    assert show(acct, image_id).status == "queued", "the untouched image stays as it was"
    listed = ims.ims("bucket", "ls", bucket, "--output", "json", token=acct.token)
    assert not any("never.bin" in str(o) for o in listed), listed


@pytest.fixture(scope="module")
def region_a(ims, tmp_path_factory):
    """A second `ims serve` (region A) whose `region-b` is the session's server; stopped at the end."""
    workdir = tmp_path_factory.mktemp("region-a")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    admin_token = "adm-" + secrets.token_hex(20)
    config = workdir / "ims.toml"
    config.write_text(f'[regions.region-b]\nendpoint = "{ims.url}"\ntoken = "{ims.admin_token}"\n')
    server_env = _clean_env(str(workdir))
    server_env["IMS_ADMIN_TOKEN"] = admin_token
    log_path = workdir / "server.log"
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(
        [_resolve_ims_bin(), "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(workdir / "data")],
        env=server_env, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        cwd=str(workdir), start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            assert proc.poll() is None, f"region A exited during start-up: {log_path.read_text()}"
            try:
                if requests.get(url + "/healthcheck", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"region A did not start: {log_path.read_text()}"
            time.sleep(0.2)
        yield Env(url, admin_token, workdir, log_path, _resolve_ims_bin())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()


def test_copy_across_regions_sends_only_missing_chunks(ims, region_a):
    source = new_account(region_a, "hw-xr")
    target = new_account(ims, "hw-xr-target")
    target_project = ims.http("GET", f"/identity/v1/projects/{target.project_id}").json()["project"]["name"]
    data = os.urandom(32 * MIB + 1234)

    def image_with(payload: bytes) -> str:
        image_id = create_image(source, unique("xr"), disk_format="raw")
        r = region_a.http("PUT", f"/v2/images/{image_id}/file", token=source.token, data=payload,
                          headers={"Content-Type": "application/octet-stream"})
        assert r.status_code == 204, r.text
        return image_id

    def copy(image_id: str):
        resp = source.client.copy_image_cross_region(CopyImageCrossRegionRequest(
            image_id=image_id, body=CopyImageCrossRegionRequestBody(
                name=unique("xr-copy"), region="region-b", project_name=target_project)))
        copy_id = succeeded(source, resp.job_id)
        sent = region_a.http("GET", f"/jobs/v1/{resp.job_id}", token=source.token).json()["job"]["result"]
        return copy_id, sent

    first = image_with(data)
    copy_id, sent = copy(first)
    original, copied = show(source, first), show(target, copy_id)
    assert (copied.status, copied.checksum, copied.size) == ("active", original.checksum, original.size), copied
    hashes = [env.http("GET", f"/v2/images/{i}", token=a.token).json()["os_hash_value"]
              for env, a, i in [(region_a, source, first), (ims, target, copy_id)]]
    assert hashes[0] and hashes[0] == hashes[1], hashes
    assert sent["chunks_sent"] == sent["chunks_total"] and sent["bytes_sent"] >= len(data) * 0.9, sent
    r = ims.http("GET", f"/v2/images/{copy_id}/file", token=target.token)
    assert r.status_code == 200 and r.content == data

    changed = bytearray(data)
    changed[16 * MIB:16 * MIB + 4096] = os.urandom(4096)
    second = image_with(bytes(changed))
    copy_id, sent2 = copy(second)
    assert show(target, copy_id).checksum == show(source, second).checksum
    # At most the two chunks around the change (chunks are 4 MiB at most) travel again.
    assert sent2["chunks_sent"] <= 2 and sent2["bytes_sent"] * 3 < sent["bytes_sent"], (sent, sent2)

    e = expect_error(lambda: source.client.copy_image_cross_region(CopyImageCrossRegionRequest(
        image_id=first, body=CopyImageCrossRegionRequestBody(name="c", region="no-such-region"))), 400, "IMG.0107")
    assert "region" in e.error_msg
