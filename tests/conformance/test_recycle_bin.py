"""The recycle bin and lineage seen by real clients: `openstack image delete` moves an image to the
bin (the server runs with the default retention), our API restores it, and `openstack image show`
and `glance image-download` find it again with the same checksums and data."""

from __future__ import annotations

import pytest

from conformance_util import error_text, osc_field, sha256_file, unique


@pytest.fixture(scope="module")
def owner(ims):
    return ims.new_tenant("bin")


def test_openstack_delete_then_restore_keeps_checksums(ims, owner, payload, out_dir):
    tok = owner.user.token
    name = unique("bin-osc")
    img = ims.openstack(
        "image", "create", "--disk-format", "raw", "--container-format", "bare",
        "--file", str(payload.path), name, token=tok,
    )
    assert img["checksum"] == payload.md5
    assert osc_field(img, "os_ims_source_type") == "upload"

    out = ims.openstack("image", "delete", img["id"], token=tok, json_out=False)
    assert out.strip() == ""
    proc = ims.openstack("image", "show", img["id"], token=tok, expect_fail=True)
    assert "No Image found" in error_text(proc) or "404" in error_text(proc), error_text(proc)
    listed = ims.openstack("image", "list", token=tok)
    assert img["id"] not in [i["ID"] for i in listed]

    r = ims.http("GET", "/v1/recycle-bin/images", token=tok)
    assert r.status_code == 200, r.text
    binned = [i for i in r.json()["images"] if i["id"] == img["id"]]
    assert len(binned) == 1 and binned[0]["status"] == "active" and binned[0]["checksum"] == payload.md5

    r = ims.http("POST", f"/v1/recycle-bin/images/{img['id']}/restore", token=tok)
    assert r.status_code == 200, r.text
    shown = ims.openstack("image", "show", img["id"], token=tok)
    assert shown["status"] == "active"
    assert shown["checksum"] == payload.md5
    assert osc_field(shown, "os_hash_value") == payload.sha512
    target = out_dir / "restored.raw"
    ims.glance("image-download", "--file", str(target), img["id"], token=tok, table=False)
    assert sha256_file(target) == payload.sha256


def test_lineage_properties_are_read_only_for_openstack(ims, owner):
    tok = owner.user.token
    img = ims.openstack("image", "create", unique("bin-ro"), token=tok)
    proc = ims.openstack(
        "image", "set", "--property", "os_ims_parent_id=forged", img["id"], token=tok, expect_fail=True,
    )
    assert "403" in error_text(proc) or "Forbidden" in error_text(proc), error_text(proc)
    # A forced delete skips the bin.
    r = ims.http("DELETE", f"/v2/images/{img['id']}", token=tok, headers={"X-Ims-Force-Delete": "true"})
    assert r.status_code == 204, r.text
    r = ims.http("POST", f"/v1/recycle-bin/images/{img['id']}/restore", token=tok)
    assert r.status_code == 404, r.text


def test_huawei_sdk_delete_goes_to_the_bin_and_shows_lineage(ims):
    from huaweicloudsdkims.v2 import GlanceDeleteImageRequest, GlanceShowImageRequest, ListImagesRequest

    from test_huawei_sdk import create_image, expect_error, new_account

    acct = new_account(ims, "bin-sdk")
    name = unique("bin-sdk")
    image_id = create_image(acct, name, disk_format="raw")
    acct.client.glance_delete_image(GlanceDeleteImageRequest(image_id=image_id))
    expect_error(lambda: acct.client.glance_show_image(GlanceShowImageRequest(image_id=image_id)), 404)
    assert acct.client.list_images(ListImagesRequest(id=image_id)).images == []

    r = ims.http("POST", f"/v1/recycle-bin/images/{image_id}/restore", token=acct.token)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "queued"
    shown = acct.client.glance_show_image(GlanceShowImageRequest(image_id=image_id))
    assert shown.name == name and shown.status == "queued"
    r = ims.http("GET", f"/v1/cloudimages/{image_id}/ancestry", token=acct.token)
    assert r.status_code == 200, r.text
    assert [link["id"] for link in r.json()["ancestry"]] == [image_id]
