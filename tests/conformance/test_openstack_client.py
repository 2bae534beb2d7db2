"""python-openstackclient (`openstack image ...`) against IMS, without Keystone.

Every command runs as
`openstack --os-auth-type admin_token --os-token T --os-endpoint URL/v2 ...`.

Notes on the client (python-openstackclient 10.x, image commands go through
openstacksdk):
- `image list --sort` and `--property` are applied client-side; `--limit`
  turns off the SDK's automatic paging, so paging is driven with `--marker`.
- Commands taking a `<project>` argument (`image add project`, `image set
  --project`, `image list --project`) first look the project up in the
  identity service, which with `--os-endpoint URL/v2` is the same endpoint.
- `image set --accept IMG` without `--project` reads the caller's project from
  the Keystone token (auth_ref), which the admin_token plugin does not have: the
  member accepts with `image set --accept --project PROJ IMG` instead.
"""

from __future__ import annotations

import pytest

from conformance_util import (
    error_text,
    osc_field,
    osc_props,
    sha256_file,
    unique,
)


NOT_FOUND_ON_DELETE = "Multi Backend support not enabled."


@pytest.fixture(scope="module")
def owner(ims):
    """The project (with a member user) that owns this module's images."""
    return ims.new_tenant("osc")


@pytest.fixture(scope="module")
def active_image(ims, owner, payload):
    """An image created with `--file`, owned by `owner`."""
    name = unique("osc-file")
    out = ims.openstack(
        "image", "create", "--disk-format", "raw", "--container-format", "bare",
        "--file", str(payload.path), "--tag", "osc-a", "--property", "color=red", name,
        token=owner.user.token,
    )
    return out


def assert_active_with_payload(image: dict, payload, name: str):
    assert image["name"] == name
    assert image["status"] == "active"
    assert image["disk_format"] == "raw"
    assert image["container_format"] == "bare"
    assert image["size"] == payload.size
    assert image["checksum"] == payload.md5
    assert osc_field(image, "os_hash_algo") == "sha512"
    assert osc_field(image, "os_hash_value") == payload.sha512


def test_create_with_file_is_active(ims, owner, active_image, payload):
    img = active_image
    assert_active_with_payload(img, payload, img["name"])
    assert img["owner"] == owner.project_id
    assert img["visibility"] == "shared"  # Glance's default since Images API 2.5
    assert img["protected"] is False
    assert img["tags"] == ["osc-a"]
    assert osc_props(img)["color"] == "red"

    shown = ims.openstack("image", "show", img["id"], token=owner.user.token)
    assert shown["id"] == img["id"]
    assert_active_with_payload(shown, payload, img["name"])
    assert osc_props(shown)["color"] == "red"
    assert shown["tags"] == ["osc-a"]
    assert shown["file"] == f"/v2/images/{img['id']}/file"


def test_create_without_file_is_queued(ims, owner):
    name = unique("osc-empty")
    img = ims.openstack(
        "image", "create", "--disk-format", "qcow2", "--container-format", "bare",
        "--min-disk", "2", "--min-ram", "256", name, token=owner.user.token,
    )
    assert img["name"] == name
    assert img["status"] == "queued"
    assert img["disk_format"] == "qcow2"
    assert img["container_format"] == "bare"
    assert img["min_disk"] == 2
    assert img["min_ram"] == 256
    assert img.get("size") is None
    assert img.get("checksum") is None
    assert img["owner"] == owner.project_id


def test_list_filters(ims, owner, active_image):
    # active_image: shared, active, tag osc-a.  b: private, queued, tag osc-a.
    tok = owner.user.token
    b = ims.openstack("image", "create", "--private", "--tag", "osc-a", "--property", "color=blue",
                      unique("osc-lb"), token=tok)
    assert b["visibility"] == "private"
    assert b["status"] == "queued"

    rows = ims.openstack("image", "list", "--tag", "osc-a", "--long", token=tok)
    assert sorted(r["ID"] for r in rows) == sorted([active_image["id"], b["id"]])
    by_id = {r["ID"]: r for r in rows}
    row = by_id[active_image["id"]]
    assert row["Name"] == active_image["name"]
    assert row["Visibility"] == "shared"
    assert row["Status"] == "active"
    assert row["Project"] == owner.project_id
    assert row["Checksum"] == active_image["checksum"]
    assert row["Size"] == active_image["size"]
    assert row["Disk Format"] == "raw"
    assert row["Tags"] == ["osc-a"]
    assert by_id[b["id"]]["Visibility"] == "private"
    assert by_id[b["id"]]["Status"] == "queued"

    rows = ims.openstack("image", "list", "--name", b["name"], token=tok)
    assert [(r["ID"], r["Name"]) for r in rows] == [(b["id"], b["name"])]

    rows = ims.openstack("image", "list", "--status", "queued", "--tag", "osc-a", token=tok)
    assert [r["ID"] for r in rows] == [b["id"]]

    rows = ims.openstack("image", "list", "--private", "--tag", "osc-a", token=tok)
    assert [r["ID"] for r in rows] == [b["id"]]

    rows = ims.openstack("image", "list", "--shared", "--tag", "osc-a", token=tok)
    assert [r["ID"] for r in rows] == [active_image["id"]]


def test_list_paging_with_limit_and_marker(ims, paging_set):
    # `openstack image list` sorts client-side (default name:asc); sorting by
    # created_at:desc (a stable sort) keeps the server's default order, so the
    # last row of a page is the marker for the next one.
    tok = paging_set.tenant.user.token
    order = ["--sort", "created_at:desc"]
    full = ims.openstack("image", "list", "--tag", paging_set.tag, *order, token=tok)
    want_ids = {i["id"] for i in paging_set.images}
    assert len(full) == len(want_ids)
    assert {r["ID"] for r in full} == want_ids

    seen: list[str] = []
    sizes = []
    marker = None
    for _ in range(6):
        args = ["image", "list", "--tag", paging_set.tag, "--limit", "12", *order]
        if marker:
            args += ["--marker", marker]
        page = ims.openstack(*args, token=tok)
        sizes.append(len(page))
        seen += [r["ID"] for r in page]
        if len(page) < 12:
            break
        marker = page[-1]["ID"]
    assert sizes == [12, 12, 6], sizes
    assert len(seen) == len(set(seen)), "an image came back on two pages"
    assert seen == [r["ID"] for r in full]


def test_set_unset_properties_and_tags(ims, owner):
    tok = owner.user.token
    img = ims.openstack("image", "create", "--tag", "t1", unique("osc-set"), token=tok)
    new_name = unique("osc-renamed")
    out = ims.openstack("image", "set", "--name", new_name, "--min-disk", "3",
                        "--property", "k1=v1", "--property", "k2=v2", "--tag", "t2", img["id"],
                        token=tok, json_out=False)
    assert out.strip() == ""
    shown = ims.openstack("image", "show", img["id"], token=tok)
    assert shown["name"] == new_name
    assert shown["min_disk"] == 3
    assert osc_props(shown)["k1"] == "v1"
    assert osc_props(shown)["k2"] == "v2"
    assert sorted(shown["tags"]) == ["t1", "t2"]

    ims.openstack("image", "unset", "--property", "k1", "--tag", "t1", img["id"], token=tok, json_out=False)
    shown = ims.openstack("image", "show", img["id"], token=tok)
    assert "k1" not in osc_props(shown)
    assert osc_props(shown)["k2"] == "v2"
    assert shown["tags"] == ["t2"]


def test_download_matches(ims, owner, active_image, payload, out_dir):
    out = out_dir / "saved.raw"
    ims.openstack("image", "save", "--file", str(out), active_image["id"], token=owner.user.token,
                  json_out=False)
    assert out.stat().st_size == payload.size
    assert sha256_file(out) == payload.sha256


def test_share_with_other_project(ims, owner, payload, out_dir):
    tok = owner.user.token
    other = ims.member_b
    name = unique("osc-share")
    img = ims.openstack("image", "create", "--private", "--disk-format", "raw",
                        "--container-format", "bare", "--file", str(payload.path), name, token=tok)
    assert img["visibility"] == "private"

    # before sharing, proj-b cannot see it
    proc = ims.openstack("image", "show", img["id"], token=other.token, expect_fail=True)
    assert "No Image found" in error_text(proc) or "404" in error_text(proc), error_text(proc)

    ims.openstack("image", "set", "--shared", img["id"], token=tok, json_out=False)
    member = ims.openstack("image", "add", "project", img["id"], other.project_id, token=tok)
    assert member["image_id"] == img["id"]
    assert member["member_id"] == other.project_id
    assert member["status"] == "pending"

    # proj-b sees the pending share only when asking for it
    pending = ims.openstack("image", "list", "--member-status", "pending", token=other.token)
    assert img["id"] in [r["ID"] for r in pending]
    default = ims.openstack("image", "list", token=other.token)
    assert img["id"] not in [r["ID"] for r in default]

    ims.openstack("image", "set", "--accept", "--project", other.project_id, img["id"],
                  token=other.token, json_out=False)
    members = ims.openstack("image", "member", "list", img["id"], token=tok)
    assert [(m["Image ID"], m["Member ID"], m["Status"]) for m in members] == [
        (img["id"], other.project_id, "accepted")]

    default = ims.openstack("image", "list", token=other.token)
    assert img["id"] in [r["ID"] for r in default]
    out = out_dir / "shared.raw"
    ims.openstack("image", "save", "--file", str(out), img["id"], token=other.token, json_out=False)
    assert sha256_file(out) == payload.sha256

    # a member of another project may use the image but not delete it (403)
    proc = ims.openstack("image", "delete", img["id"], token=other.token, expect_fail=True)
    assert "403" in error_text(proc) or "Forbidden" in error_text(proc), error_text(proc)
    r = ims.http("GET", f"/v2/images/{img['id']}", token=tok)
    assert r.status_code == 200 and r.json()["status"] == "active"


def test_private_image_invisible_to_other_project(ims, owner):
    img = ims.openstack("image", "create", "--private", unique("osc-priv"), token=owner.user.token)
    rows = ims.openstack("image", "list", token=ims.member_b.token)
    assert img["id"] not in [r["ID"] for r in rows]
    proc = ims.openstack("image", "delete", img["id"], token=ims.member_b.token, expect_fail=True)
    # python-openstackclient words any 404 on delete as this (sic)
    assert NOT_FOUND_ON_DELETE in error_text(proc) or "404" in error_text(proc), error_text(proc)
    r = ims.http("GET", f"/v2/images/{img['id']}", token=owner.user.token)
    assert r.status_code == 200


def test_protect_unprotect_delete(ims, owner):
    tok = owner.user.token
    img = ims.openstack("image", "create", "--protected", unique("osc-prot"), token=tok)
    assert img["protected"] is True
    proc = ims.openstack("image", "delete", img["id"], token=tok, expect_fail=True)
    assert "403" in error_text(proc) or "Forbidden" in error_text(proc), error_text(proc)

    ims.openstack("image", "set", "--unprotected", img["id"], token=tok, json_out=False)
    assert ims.openstack("image", "show", img["id"], token=tok)["protected"] is False

    out = ims.openstack("image", "delete", img["id"], token=tok, json_out=False)
    assert out.strip() == ""
    proc = ims.openstack("image", "show", img["id"], token=tok, expect_fail=True)
    assert "No Image found" in error_text(proc) or "404" in error_text(proc), error_text(proc)
    r = ims.http("GET", f"/v2/images/{img['id']}", token=tok)
    assert r.status_code == 404


def test_deactivate_reactivate(ims, payload, out_dir):
    # admin-owned image; member-a is a non-admin member of the owning project
    name = unique("osc-deact")
    img = ims.openstack("image", "create", "--disk-format", "raw", "--container-format", "bare",
                        "--file", str(payload.path), name)
    assert img["status"] == "active"

    ims.openstack("image", "set", "--deactivate", img["id"], json_out=False)
    assert ims.openstack("image", "show", img["id"])["status"] == "deactivated"

    out = out_dir / "deact.raw"
    proc = ims.openstack("image", "save", "--file", str(out), img["id"], token=ims.member_a.token,
                         expect_fail=True)
    # openstacksdk writes the error body to the file and then reports a
    # checksum mismatch; older versions report the 403 itself.
    assert any(s in error_text(proc) for s in ("403", "Forbidden", "checksum mismatch")), error_text(proc)
    assert not out.exists() or sha256_file(out) != payload.sha256
    r = ims.http("GET", f"/v2/images/{img['id']}/file", token=ims.member_a.token)
    assert r.status_code == 403, (r.status_code, r.text[:300])

    ims.openstack("image", "set", "--activate", img["id"], json_out=False)
    ims.openstack("image", "save", "--file", str(out), img["id"], token=ims.member_a.token, json_out=False)
    assert sha256_file(out) == payload.sha256


def test_bad_disk_format_rejected(ims, owner):
    name = unique("osc-bogus")
    proc = ims.openstack("image", "create", "--disk-format", "bogus", name, token=owner.user.token,
                         expect_fail=True)
    # python-openstackclient validates the choice itself
    assert "invalid choice: 'bogus'" in error_text(proc), error_text(proc)
    r = ims.http("GET", "/v2/images", token=owner.user.token, params={"name": name})
    assert r.status_code == 200 and r.json()["images"] == []
