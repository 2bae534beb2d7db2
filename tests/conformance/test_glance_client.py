"""python-glanceclient (`glance ...`) against IMS, without Keystone.

Every command runs as `glance --os-image-url URL --os-auth-token T ...`.
glanceclient has no JSON output: its tables are parsed (see
conformance_util.parse_glance_table).  glanceclient also validates requests
against the schemas the server publishes under /v2/schemas.
"""

from __future__ import annotations

import json

import pytest

from conformance_util import error_text, glance_none, sha256_file, unique


@pytest.fixture(scope="module")
def owner(ims):
    return ims.new_tenant("glance")


@pytest.fixture(scope="module")
def active_image(ims, owner, payload):
    name = unique("gl-file")
    return ims.glance(
        "image-create", "--name", name, "--disk-format", "raw", "--container-format", "bare",
        "--property", "color=red", "--tags", "gl-a", "gl-b", "--file", str(payload.path),
        token=owner.user.token,
    )


def assert_active_with_payload(img: dict, payload):
    assert img["status"] == "active"
    assert img["disk_format"] == "raw"
    assert img["container_format"] == "bare"
    assert int(img["size"]) == payload.size
    assert img["checksum"] == payload.md5
    assert img["os_hash_algo"] == "sha512"
    assert img["os_hash_value"] == payload.sha512


def test_create_with_file_is_active(ims, owner, active_image, payload):
    img = active_image
    assert_active_with_payload(img, payload)
    assert img["owner"] == owner.project_id
    assert img["visibility"] == "shared"
    assert img["protected"] == "False"
    assert img["color"] == "red"
    assert sorted(json.loads(img["tags"])) == ["gl-a", "gl-b"]

    shown = ims.glance("image-show", "--max-column-width", "1000", img["id"], token=owner.user.token)
    assert shown["id"] == img["id"]
    assert shown["name"] == img["name"]
    assert_active_with_payload(shown, payload)
    assert shown["color"] == "red"


def test_create_without_file_then_upload(ims, owner, payload):
    tok = owner.user.token
    name = unique("gl-empty")
    img = ims.glance("image-create", "--name", name, "--disk-format", "qcow2",
                     "--container-format", "bare", "--min-ram", "512", token=tok)
    assert img["name"] == name
    assert img["status"] == "queued"
    assert img["disk_format"] == "qcow2"
    assert img["container_format"] == "bare"
    assert img["min_ram"] == "512"
    assert glance_none(img["size"]) is None
    assert glance_none(img["checksum"]) is None
    assert img["owner"] == owner.project_id

    # a second queued image receives its data later (PUT /file)
    raw = ims.glance("image-create", "--name", unique("gl-later"), "--disk-format", "raw",
                     "--container-format", "bare", token=tok)
    assert raw["status"] == "queued"
    ims.glance("image-upload", "--file", str(payload.path), raw["id"], token=tok, table=False)
    shown = ims.glance("image-show", "--max-column-width", "1000", raw["id"], token=tok)
    assert_active_with_payload(shown, payload)


def test_list_filters(ims, owner, active_image):
    # active_image: shared, active, tags gl-a gl-b, color=red.  b: private, queued, tag gl-a.
    tok = owner.user.token
    b = ims.glance("image-create", "--name", unique("gl-lb"), "--visibility", "private",
                   "--property", "color=green", "--tags", "gl-a", token=tok)
    assert (b["visibility"], b["status"]) == ("private", "queued")
    both = sorted([active_image["id"], b["id"]])

    def ids(*args):
        return sorted(r["ID"] for r in ims.glance("image-list", *args, token=tok))

    assert ids("--tag", "gl-a", "--owner", owner.project_id) == both
    assert ids("--tag", "gl-a", "--tag", "gl-b") == [active_image["id"]]
    assert ids("--tag", "gl-a", "--visibility", "private") == [b["id"]]
    assert ids("--tag", "gl-a", "--visibility", "shared") == [active_image["id"]]
    assert ids("--tag", "gl-a", "--property-filter", "color=green") == [b["id"]]
    assert ids("--property-filter", f"name={b['name']}") == [b["id"]]
    assert ids("--tag", "gl-a", "--property-filter", "status=queued") == [b["id"]]

    # verbose listing carries more columns
    rows = ims.glance("--verbose", "image-list", "--tag", "gl-b", token=tok)
    assert rows == [{
        "ID": active_image["id"], "Name": active_image["name"], "Disk_format": "raw",
        "Container_format": "bare", "Size": active_image["size"], "Status": "active",
        "Owner": owner.project_id,
    }]


def test_list_sort_and_paging(ims, paging_set):
    tok = paging_set.tenant.user.token
    names = sorted(i["name"] for i in paging_set.images)

    rows = ims.glance("image-list", "--tag", paging_set.tag, "--sort-key", "name", "--sort-dir", "asc",
                      "--page-size", "7", token=tok)
    assert [r["Name"] for r in rows] == names
    assert len({r["ID"] for r in rows}) == len(paging_set.images)

    rows = ims.glance("image-list", "--tag", paging_set.tag, "--sort", "name:desc", "--page-size", "4",
                      token=tok)
    assert [r["Name"] for r in rows] == names[::-1]

    rows = ims.glance("image-list", "--tag", paging_set.tag, "--sort-key", "name", "--sort-dir", "asc",
                      "--limit", "10", "--page-size", "3", token=tok)
    assert [r["Name"] for r in rows] == names[:10]


def test_update_properties_and_tags(ims, owner):
    tok = owner.user.token
    img = ims.glance("image-create", "--name", unique("gl-upd"), "--property", "old=1", "--tags", "t1",
                     token=tok)
    assert img["old"] == "1"
    out = ims.glance("image-update", "--property", "k=v", "--remove-property", "old", "--min-disk", "4",
                     img["id"], token=tok)
    assert out["id"] == img["id"]
    assert out["k"] == "v"
    assert "old" not in out
    assert out["min_disk"] == "4"

    ims.glance("image-tag-update", img["id"], "t2", token=tok, table=False)
    ims.glance("image-tag-delete", img["id"], "t1", token=tok, table=False)
    shown = ims.glance("image-show", img["id"], token=tok)
    assert json.loads(shown["tags"]) == ["t2"]
    assert shown["k"] == "v"
    assert "old" not in shown


def test_download_matches(ims, owner, active_image, payload, out_dir):
    out = out_dir / "gl.raw"
    ims.glance("image-download", "--file", str(out), active_image["id"], token=owner.user.token, table=False)
    assert sha256_file(out) == payload.sha256


def test_share_with_other_project(ims, owner, payload, out_dir):
    tok = owner.user.token
    other = ims.member_b
    img = ims.glance("image-create", "--name", unique("gl-share"), "--visibility", "private",
                     "--disk-format", "raw", "--container-format", "bare", "--file", str(payload.path),
                     token=tok)
    assert img["visibility"] == "private"

    proc = ims.glance("image-show", img["id"], token=other.token, expect_fail=True)
    assert "HTTP 404" in error_text(proc), error_text(proc)

    # sharing a private image is refused (403); the owner makes it shared first
    proc = ims.glance("member-create", img["id"], other.project_id, token=tok, expect_fail=True)
    assert "403" in error_text(proc) or "Forbidden" in error_text(proc), error_text(proc)
    upd = ims.glance("image-update", "--visibility", "shared", img["id"], token=tok)
    assert upd["visibility"] == "shared"

    rows = ims.glance("member-create", img["id"], other.project_id, token=tok)
    assert rows == [{"Image ID": img["id"], "Member ID": other.project_id, "Status": "pending"}]

    pending = ims.glance("image-list", "--member-status", "pending", token=other.token)
    assert img["id"] in [r["ID"] for r in pending]
    default = ims.glance("image-list", token=other.token)
    assert img["id"] not in [r["ID"] for r in default]

    # only the member may change its status
    proc = ims.glance("member-update", img["id"], other.project_id, "accepted", token=tok, expect_fail=True)
    assert "403" in error_text(proc) or "Forbidden" in error_text(proc), error_text(proc)
    rows = ims.glance("member-update", img["id"], other.project_id, "accepted", token=other.token)
    assert rows == [{"Image ID": img["id"], "Member ID": other.project_id, "Status": "accepted"}]

    rows = ims.glance("member-list", "--image-id", img["id"], token=tok)
    assert rows == [{"Image ID": img["id"], "Member ID": other.project_id, "Status": "accepted"}]
    default = ims.glance("image-list", token=other.token)
    assert img["id"] in [r["ID"] for r in default]

    out = out_dir / "shared.raw"
    ims.glance("image-download", "--file", str(out), img["id"], token=other.token, table=False)
    assert sha256_file(out) == payload.sha256

    proc = ims.glance("image-delete", img["id"], token=other.token, expect_fail=True)
    assert f"You are not permitted to delete the image '{img['id']}'" in error_text(proc), error_text(proc)
    r = ims.http("GET", f"/v2/images/{img['id']}", token=tok)
    assert r.status_code == 200 and r.json()["status"] == "active"


def test_deactivate_reactivate(ims, payload, out_dir):
    img = ims.glance("image-create", "--name", unique("gl-deact"), "--disk-format", "raw",
                     "--container-format", "bare", "--file", str(payload.path))
    assert img["status"] == "active"
    ims.glance("image-deactivate", img["id"], table=False)
    assert ims.glance("image-show", img["id"])["status"] == "deactivated"

    out = out_dir / "deact.raw"
    proc = ims.glance("image-download", "--file", str(out), img["id"], token=ims.member_a.token,
                      expect_fail=True)
    assert "403" in error_text(proc) or "Forbidden" in error_text(proc), error_text(proc)

    ims.glance("image-reactivate", img["id"], table=False)
    ims.glance("image-download", "--file", str(out), img["id"], token=ims.member_a.token, table=False)
    assert sha256_file(out) == payload.sha256


def test_protect_and_delete(ims, owner):
    tok = owner.user.token
    img = ims.glance("image-create", "--name", unique("gl-prot"), "--protected", "True", token=tok)
    assert img["protected"] == "True"
    proc = ims.glance("image-delete", img["id"], token=tok, expect_fail=True)
    assert f"You are not permitted to delete the image '{img['id']}'" in error_text(proc), error_text(proc)
    upd = ims.glance("image-update", "--protected", "False", img["id"], token=tok)
    assert upd["protected"] == "False"
    ims.glance("image-delete", img["id"], token=tok, table=False)
    proc = ims.glance("image-show", img["id"], token=tok, expect_fail=True)
    assert "HTTP 404" in error_text(proc), error_text(proc)


def test_private_image_invisible_to_other_project(ims, owner):
    img = ims.glance("image-create", "--name", unique("gl-priv"), "--visibility", "private",
                     token=owner.user.token)
    proc = ims.glance("image-delete", img["id"], token=ims.member_b.token, expect_fail=True)
    assert f"No image with an ID of '{img['id']}' exists" in error_text(proc), error_text(proc)
    rows = ims.glance("image-list", "--visibility", "all", token=ims.member_b.token)
    assert img["id"] not in [r["ID"] for r in rows]


def test_bad_disk_format_rejected(ims, owner):
    name = unique("gl-bogus")
    proc = ims.glance("image-create", "--name", name, "--disk-format", "bogus", "--container-format", "bare",
                      token=owner.user.token, expect_fail=True)
    # glanceclient checks the value against the enum of the server's image schema
    assert "'bogus' is not one of" in error_text(proc), error_text(proc)
    r = ims.http("GET", "/v2/images", token=owner.user.token, params={"name": name})
    assert r.status_code == 200 and r.json()["images"] == []
