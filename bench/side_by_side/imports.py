"""Import with conversion (QCOW2 → RAW) end to end, and export to VMDK streamOptimized."""

import math
import os
import subprocess
import time

from .client import Client, HttpError

OS_VERSION = "Ubuntu 22.04 server 64bit"


def glance_direct(service, qcow2, size):
    """Interoperable import: create (qcow2), `PUT /stage`, `POST /import` glance-direct, wait until
    active. Returns the time of each step, the whole, and the stored disk format."""
    c = Client(service)
    t0 = time.monotonic()
    image_id = c.create_image("bench-import", disk_format="qcow2")
    c.upload(image_id, qcow2, size, stage=True)
    t1 = time.monotonic()
    c.request("POST", f"/v2/images/{image_id}/import", {"method": {"name": "glance-direct"}})
    image = c.wait_status(image_id)
    t2 = time.monotonic()
    c.close()
    return {"stage_s": t1 - t0, "import_s": t2 - t1, "total_s": t2 - t0,
            "stored_format": image["disk_format"], "stored_size": image["size"], "image_id": image_id}


def wait_job(c, job_id, timeout=3600):
    """Polls ShowJobProgress until the job ends; returns it, or fails with its reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = c.json("GET", f"/v1/cloudimages/job/{job_id}")
        if job["status"] == "SUCCESS":
            return job
        if job["status"] == "FAIL":
            raise HttpError(f"job {job_id} failed: {job.get('error_code')} {job.get('fail_reason')}")
        time.sleep(0.05)
    raise HttpError(f"job {job_id} did not end within {timeout} s")


def ims_pipeline(service, qcow2, size, virtual_size, key):
    """IMS CreateImage from a bucket file: the file is put into a bucket (`PUT /buckets/v1/...`),
    then imported with `POST /v2/cloudimages/action`; the server converts it to RAW (setting
    `import_conversions`). Returns the time of each part, the whole, and the stored format."""
    c = Client(service)
    t0 = time.monotonic()
    with open(qcow2, "rb") as f:
        c.request("PUT", f"/buckets/v1/bench/objects/{key}", body=f,
                  headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)})
    t1 = time.monotonic()
    body = {"name": "bench-pipeline", "image_url": f"bench:{key}", "os_version": OS_VERSION,
            "min_disk": max(1, math.ceil(virtual_size / (1 << 30)))}
    job = wait_job(c, c.json("POST", "/v2/cloudimages/action", body)["job_id"])
    t2 = time.monotonic()
    image_id = job["entities"]["image_id"]
    image = c.show(image_id)
    c.request("DELETE", f"/buckets/v1/bench/objects/{key}")
    c.close()
    return {"put_s": t1 - t0, "import_s": t2 - t1, "total_s": t2 - t0,
            "stored_format": image["disk_format"], "stored_size": image["size"], "image_id": image_id}


def ims_export(service, image_id, key):
    """ExportImage of an image to a bucket as VMDK streamOptimized; the job's wall time."""
    c = Client(service)
    t0 = time.monotonic()
    body = {"bucket_url": f"bench:{key}", "file_format": "vmdk"}
    wait_job(c, c.json("POST", f"/v1/cloudimages/{image_id}/file", body)["job_id"])
    wall = time.monotonic() - t0
    c.request("DELETE", f"/buckets/v1/bench/objects/{key}")
    c.close()
    return {"total_s": wall}


def download_and_convert(service, image_id, work):
    """What a Glance user does for an export (Glance has none): download the image and convert it
    with `qemu-img convert -O vmdk -o subformat=streamOptimized` (flushed, as IMS's export is)."""
    c = Client(service)
    raw, vmdk = os.path.join(work, "export.raw"), os.path.join(work, "export.vmdk")
    t0 = time.monotonic()
    c.download(image_id, raw)
    t1 = time.monotonic()
    subprocess.run(["qemu-img", "convert", "-t", "writeback", "-f", "raw", "-O", "vmdk",
                    "-o", "subformat=streamOptimized", raw, vmdk], check=True)
    t2 = time.monotonic()
    os.remove(raw)
    os.remove(vmdk)
    c.close()
    return {"download_s": t1 - t0, "convert_s": t2 - t1, "total_s": t2 - t0}
