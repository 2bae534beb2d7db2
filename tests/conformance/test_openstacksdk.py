"""openstacksdk's image proxy against IMS, without Keystone.

The connection uses the admin_token auth plugin and points the image service at
the server's root, so the SDK runs Glance version discovery on `/` (status 300,
the versions document) and then talks to `/v2/` (see Env.sdk in conftest.py).
"""

from __future__ import annotations

import io

import pytest
from openstack import exceptions as sdk_exc

from conformance_util import sha256_file, unique


@pytest.fixture(scope="module")
def owner(ims):
    return ims.new_tenant("sdk")


@pytest.fixture(scope="module")
def conn(ims, owner):
    c = ims.sdk(owner.user.token)
    yield c
    c.close()


@pytest.fixture(scope="module")
def conn_b(ims):
    c = ims.sdk(ims.member_b.token)
    yield c
    c.close()


@pytest.fixture(scope="module")
def active_image(conn, payload):
    return conn.image.create_image(
        unique("sdk-data"), data=payload.data, disk_format="raw", container_format="bare",
        tags=["sdk-a"], validate_checksum=True, allow_duplicates=True, wait=True, color="red",
    )


def test_version_discovery(ims, conn):
    # the SDK found the v2 API through the versions document at /
    ep = conn.image.get_endpoint()
    assert ep.rstrip("/") == ims.url + "/v2", ep
    r = ims.http("GET", "/")
    assert r.status_code == 300
    versions = r.json()["versions"]
    assert any(v["status"] == "CURRENT" and v["id"].startswith("v2.") for v in versions), versions
    for v in versions:
        assert v["links"][0]["rel"] == "self"
        assert v["links"][0]["href"].rstrip("/").endswith("/v2"), v


def test_create_image_with_data(conn, owner, active_image, payload):
    img = conn.image.get_image(active_image.id)
    assert img.status == "active"
    assert img.size == payload.size
    assert img.checksum == payload.md5
    assert img.hash_algo == "sha512"
    assert img.hash_value == payload.sha512
    assert img.disk_format == "raw"
    assert img.container_format == "bare"
    assert img.owner_id == owner.project_id
    assert img.visibility == "shared"
    assert img.is_protected is False
    assert img.tags == ["sdk-a"]
    assert img.properties["color"] == "red"
    assert img.created_at.endswith("Z") and img.updated_at.endswith("Z")
    assert img.file == f"/v2/images/{img.id}/file"


def test_create_image_without_data(conn, owner):
    name = unique("sdk-empty")
    img = conn.image.create_image(name, disk_format="qcow2", container_format="bare",
                                  allow_duplicates=True, min_disk=1)
    assert img.name == name
    assert img.status == "queued"
    assert img.size is None
    assert img.checksum is None
    assert img.min_disk == 1
    got = conn.image.get_image(img.id)
    assert (got.id, got.status, got.disk_format, got.owner_id) == (img.id, "queued", "qcow2", owner.project_id)


def test_images_filters(ims, conn, owner, active_image):
    tag = unique("sdk-list")
    a = conn.image.create_image(unique("sdk-la"), allow_duplicates=True, tags=[tag], visibility="private",
                                disk_format="raw", container_format="bare")
    b = conn.image.create_image(unique("sdk-lb"), allow_duplicates=True, tags=[tag], visibility="shared",
                                disk_format="raw", container_format="bare")

    def ids(**q):
        return sorted(i.id for i in conn.image.images(**q))

    assert ids(tag=tag) == sorted([a.id, b.id])
    assert ids(name=a.name) == [a.id]
    assert ids(tag=tag, visibility="private") == [a.id]
    assert ids(tag=tag, visibility="shared") == [b.id]
    assert ids(tag="sdk-a", status="active") == [active_image.id]
    assert ids(tag=tag, status="active") == []
    assert ids(tag=tag, owner=owner.project_id) == sorted([a.id, b.id])
    assert ids(tag=tag, owner=ims.proj_b["id"]) == []
    names = [i.name for i in conn.image.images(tag=tag, sort_key="name", sort_dir="desc")]
    assert names == sorted([a.name, b.name], reverse=True)
    names = [i.name for i in conn.image.images(tag=tag, sort="name:asc")]
    assert names == sorted([a.name, b.name])


def test_paginated_listing(ims, paging_set):
    c = ims.sdk(paging_set.tenant.user.token)
    names = sorted(i["name"] for i in paging_set.images)

    got = list(c.image.images(tag=paging_set.tag, sort_key="name", sort_dir="asc", limit=7))
    assert [i.name for i in got] == names
    assert len({i.id for i in got}) == len(names)

    # one page at a time: the server honours limit and marker
    first = list(c.image.images(tag=paging_set.tag, sort="name:asc", limit=7, paginated=False))
    assert [i.name for i in first] == names[:7]
    second = list(c.image.images(tag=paging_set.tag, sort="name:asc", limit=7, marker=first[-1].id,
                                 paginated=False))
    assert [i.name for i in second] == names[7:14]

    # default order: newest first, every image exactly once over several pages
    got = list(c.image.images(tag=paging_set.tag, limit=9))
    assert sorted(i.id for i in got) == sorted(i["id"] for i in paging_set.images)
    stamps = [i.created_at for i in got]
    assert stamps == sorted(stamps, reverse=True)
    c.close()


def test_get_update_tags(conn):
    img = conn.image.create_image(unique("sdk-upd"), allow_duplicates=True, disk_format="raw",
                                  container_format="bare", tags=["t1"])
    new_name = unique("sdk-renamed")
    upd = conn.image.update_image(img, name=new_name, min_ram=128, flavour="vanilla")
    assert upd.name == new_name
    assert upd.min_ram == 128
    got = conn.image.get_image(img.id)
    assert got.name == new_name
    assert got.min_ram == 128
    assert got.properties["flavour"] == "vanilla"

    conn.image.add_tag(img, "t2")
    conn.image.remove_tag(img, "t1")
    assert conn.image.get_image(img.id).tags == ["t2"]
    with pytest.raises(sdk_exc.NotFoundException):
        conn.image.remove_tag(img, "never-there")


def test_download(conn, active_image, payload, out_dir):
    resp = conn.image.download_image(active_image)
    assert resp.content == payload.data

    out = out_dir / "sdk.raw"
    conn.image.download_image(active_image, output=str(out))
    assert sha256_file(out) == payload.sha256

    buf = io.BytesIO()
    conn.image.download_image(active_image, output=buf)
    assert buf.getvalue() == payload.data

    resp = conn.image.download_image(active_image, stream=True)
    data = b"".join(resp.iter_content(chunk_size=65536))
    assert data == payload.data


def test_share_with_other_project(ims, conn, conn_b, payload):
    other = ims.member_b
    img = conn.image.create_image(unique("sdk-share"), data=payload.data, disk_format="raw",
                                  container_format="bare", allow_duplicates=True, visibility="private")
    with pytest.raises(sdk_exc.NotFoundException):
        conn_b.image.get_image(img.id)
    with pytest.raises(sdk_exc.ForbiddenException):
        conn.image.add_member(img, member_id=other.project_id)

    conn.image.update_image(img, visibility="shared")
    m = conn.image.add_member(img, member_id=other.project_id)
    assert m.member_id == other.project_id
    assert m.status == "pending"
    with pytest.raises(sdk_exc.ConflictException):
        conn.image.add_member(img, member_id=other.project_id)

    assert img.id in [i.id for i in conn_b.image.images(member_status="pending")]
    assert img.id not in [i.id for i in conn_b.image.images()]
    got = conn_b.image.get_image(img.id)  # a pending member can already see it
    assert got.id == img.id

    m = conn_b.image.update_member(other.project_id, img, status="accepted")
    assert m.status == "accepted"
    members = list(conn.image.members(img))
    assert [(x.member_id, x.status) for x in members] == [(other.project_id, "accepted")]
    assert img.id in [i.id for i in conn_b.image.images()]
    assert conn_b.image.download_image(img).content == payload.data

    with pytest.raises(sdk_exc.ForbiddenException):
        conn_b.image.delete_image(img, ignore_missing=False)
    with pytest.raises(sdk_exc.ForbiddenException):
        conn_b.image.update_image(img, name="stolen")
    assert conn.image.get_image(img.id).status == "active"

    conn.image.remove_member(other.project_id, img)
    assert list(conn.image.members(img)) == []
    with pytest.raises(sdk_exc.NotFoundException):
        conn_b.image.get_image(img.id)


def test_deactivate_reactivate(ims, payload):
    admin = ims.sdk()
    member = ims.sdk(ims.member_a.token)
    img = admin.image.create_image(unique("sdk-deact"), data=payload.data, disk_format="raw",
                                   container_format="bare", allow_duplicates=True)
    admin.image.deactivate_image(img)
    assert admin.image.get_image(img.id).status == "deactivated"
    assert member.image.get_image(img.id).status == "deactivated"
    with pytest.raises(sdk_exc.SDKException):
        # the SDK does not raise on the 403 itself: it fails the checksum of the error body
        member.image.download_image(img)
    r = ims.http("GET", f"/v2/images/{img.id}/file", token=ims.member_a.token)
    assert r.status_code == 403
    assert admin.image.download_image(img).content == payload.data
    admin.image.reactivate_image(img)
    assert member.image.get_image(img.id).status == "active"
    assert member.image.download_image(img).content == payload.data
    admin.close()
    member.close()


def test_protect_and_delete(conn):
    img = conn.image.create_image(unique("sdk-del"), allow_duplicates=True, disk_format="raw",
                                  container_format="bare", is_protected=True)
    assert img.is_protected is True
    with pytest.raises(sdk_exc.ForbiddenException):
        conn.image.delete_image(img, ignore_missing=False)
    conn.image.update_image(img, is_protected=False)
    conn.image.delete_image(img, ignore_missing=False)
    with pytest.raises(sdk_exc.NotFoundException):
        conn.image.get_image(img.id)
    with pytest.raises(sdk_exc.NotFoundException):
        conn.image.delete_image(img, ignore_missing=False)
    assert conn.image.delete_image(img, ignore_missing=True) is None
