"""Images from servers through the official SDK: a server of the built-in compute driver (made with our
CLI, `ims server create`), then CreateImage with `instance_id` (and `data_images`), CreateImage with
`volume_id`, and CreateWholeImage, each followed with ShowJob until it ends; the images are checked with
GlanceShowImage and a server is restored from the whole-server image.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from conformance_util import unique
from test_huawei_sdk import Account, expect_error, new_account, wait_job

from huaweicloudsdkims.v2 import *  # noqa: F401,F403 (the SDK's request and model classes)

MIB = 1024 * 1024
GIB = 1024 * MIB


@pytest.fixture(scope="module")
def acct(ims) -> Account:
    return new_account(ims, "hw-compute")


@pytest.fixture(scope="module")
def server(ims, acct, tmp_path_factory) -> dict:
    """A server from a 64 MiB RAW image with data at its start, with one empty 1 GiB data volume."""
    d = tmp_path_factory.mktemp("compute-disk")
    path = Path(d) / "disk.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), "64M"], check=True)
    subprocess.run(["qemu-io", "-f", "raw", "-c", "write -P 0x5A 0 1M", str(path)], check=True,
                   stdout=subprocess.DEVNULL)
    img = ims.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                        "--file", str(path), unique("compute-base"), token=acct.token)
    return ims.ims("server", "create", unique("web"), "--image", img["id"], "--ram-mb", "2048",
                   "--data-volume", "1", "--output", "json", token=acct.token)


def succeeded(acct: Account, job_id: str):
    assert job_id, "the answer names a job"
    job = wait_job(acct, job_id)
    assert job.status == "SUCCESS", (job.status, job.error_code, job.fail_reason)
    assert job.entities.image_id, job
    return job


def show(acct: Account, image_id: str):
    return acct.client.glance_show_image(GlanceShowImageRequest(image_id=image_id))


def test_create_image_from_instance_with_data_images(acct, server):
    data_volume = server["volumes"][1]
    body = CreateImageRequestBody(
        name=unique("from-server"), instance_id=server["id"], min_ram=1024, description="system disk",
        data_images=[CreateDataImage(name=unique("from-data"), volume_id=data_volume["id"])])
    job = succeeded(acct, acct.client.create_image(CreateImageRequest(body=body)).job_id)
    system = show(acct, job.entities.image_id)
    assert system.status == "active" and system.disk_format == "raw", system
    # The system volume was 1 GiB (whole GiB, at least the 64 MiB disk): so is the image of it.
    assert system.min_ram == 1024 and system.size == GIB, system


def test_create_image_from_volume(acct, server):
    body = CreateImageRequestBody(name=unique("from-volume"), volume_id=server["volumes"][1]["id"])
    job = succeeded(acct, acct.client.create_image(CreateImageRequest(body=body)).job_id)
    image = show(acct, job.entities.image_id)
    assert image.status == "active" and image.virtual_env_type == "DataImage", image


def test_create_whole_image_and_restore_a_server(ims, acct, server):
    body = CreateWholeImageRequestBody(name=unique("whole"), instance_id=server["id"])
    job = succeeded(acct, acct.client.create_whole_image(CreateWholeImageRequest(body=body)).job_id)
    whole = show(acct, job.entities.image_id)
    assert whole.status == "active", whole
    record = ims.http("GET", f"/v2/images/{whole.id}", token=acct.token).json()
    assert record["__whole_image"] == "true" and record["__system_image_id"], record
    restored = ims.ims("server", "create", unique("restored"), "--image", whole.id, "--ram-mb", "2048",
                       "--output", "json", token=acct.token)
    assert [v["device_index"] for v in restored["volumes"]] == [0, 1], restored
    assert [v["size_bytes"] for v in restored["volumes"]] == [GIB, GIB], restored


def test_create_image_from_unknown_instance_is_refused(acct):
    body = CreateImageRequestBody(name=unique("nothing"), instance_id="00000000-0000-4000-8000-000000000000")
    expect_error(lambda: acct.client.create_image(CreateImageRequest(body=body)), 404)
