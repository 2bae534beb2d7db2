"""The Images API v2 on the wire (requests), where the clients hide the details:
status codes, Glance's error body, upload and download corner cases."""

from __future__ import annotations

import hashlib

import pytest

from conformance_util import unique

JSON = {"Content-Type": "application/json"}
OCTETS = {"Content-Type": "application/octet-stream"}


def assert_glance_error(r, status: int, title: str):
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) >= {"message", "code", "title"}, body
    assert body["code"] == f"{status} {title}", body
    assert body["title"] == title, body
    assert isinstance(body["message"], str) and body["message"], body
    assert r.headers.get("x-openstack-request-id", "").startswith("req-"), dict(r.headers)


@pytest.fixture(scope="module")
def owner(ims):
    return ims.new_tenant("http")


@pytest.fixture(scope="module")
def uploaded(ims, owner, payload):
    tok = owner.user.token
    r = ims.http("POST", "/v2/images", token=tok, json={
        "name": unique("http-img"), "disk_format": "raw", "container_format": "bare"})
    assert r.status_code == 201, r.text
    img = r.json()
    r = ims.http("PUT", f"/v2/images/{img['id']}/file", token=tok, data=payload.data, headers=OCTETS)
    assert r.status_code == 204, (r.status_code, r.text)
    return img


def test_create_response(ims, owner):
    r = ims.http("POST", "/v2/images", token=owner.user.token, json={"name": unique("http-new")})
    assert r.status_code == 201, r.text
    img = r.json()
    assert r.headers["Location"].endswith(f"/v2/images/{img['id']}")
    for key in ("id", "name", "status", "visibility", "protected", "os_hidden", "checksum", "os_hash_algo",
                "os_hash_value", "owner", "size", "virtual_size", "container_format", "disk_format",
                "min_disk", "min_ram", "created_at", "updated_at", "tags", "self", "file", "schema"):
        assert key in img, (key, img)
    assert img["status"] == "queued"
    assert img["visibility"] == "shared"
    assert img["owner"] == owner.project_id
    assert img["self"] == f"/v2/images/{img['id']}"
    assert img["schema"] == "/v2/schemas/image"


def test_bad_disk_format_is_400(ims, owner):
    name = unique("http-bogus")
    r = ims.http("POST", "/v2/images", token=owner.user.token, headers=JSON,
                 json={"name": name, "disk_format": "bogus", "container_format": "bare"})
    assert_glance_error(r, 400, "Bad Request")
    r = ims.http("GET", "/v2/images", token=owner.user.token, params={"name": name})
    assert r.status_code == 200 and r.json()["images"] == []


def test_upload_to_active_image_is_409(ims, owner, uploaded, payload):
    r = ims.http("PUT", f"/v2/images/{uploaded['id']}/file", token=owner.user.token, data=b"again",
                 headers=OCTETS)
    assert_glance_error(r, 409, "Conflict")
    r = ims.http("GET", f"/v2/images/{uploaded['id']}", token=owner.user.token)
    assert r.json()["status"] == "active"
    assert r.json()["size"] == payload.size


def test_image_size_header_mismatch_is_400(ims, owner):
    tok = owner.user.token
    r = ims.http("POST", "/v2/images", token=tok, json={
        "name": unique("http-size"), "disk_format": "raw", "container_format": "bare"})
    img = r.json()
    data = b"x" * 4096
    r = ims.http("PUT", f"/v2/images/{img['id']}/file", token=tok, data=data,
                 headers={**OCTETS, "x-openstack-image-size": str(len(data) + 1)})
    assert_glance_error(r, 400, "Bad Request")
    # the failed upload leaves the image queued, ready for another try
    r = ims.http("GET", f"/v2/images/{img['id']}", token=tok)
    assert r.json()["status"] == "queued"
    assert r.json()["size"] is None
    r = ims.http("PUT", f"/v2/images/{img['id']}/file", token=tok, data=data,
                 headers={**OCTETS, "x-openstack-image-size": str(len(data))})
    assert r.status_code == 204, r.text
    r = ims.http("GET", f"/v2/images/{img['id']}", token=tok)
    assert (r.json()["status"], r.json()["size"]) == ("active", len(data))
    assert r.json()["checksum"] == hashlib.md5(data).hexdigest()


def test_download_headers_and_ranges(ims, owner, uploaded, payload):
    tok = owner.user.token
    path = f"/v2/images/{uploaded['id']}/file"
    r = ims.http("GET", path, token=tok)
    assert r.status_code == 200
    assert r.content == payload.data
    assert r.headers["Content-Type"] == "application/octet-stream"
    assert r.headers["Content-MD5"] == payload.md5
    assert int(r.headers["Content-Length"]) == payload.size

    lo, hi = 1_000_000, 1_065_535
    r = ims.http("GET", path, token=tok, headers={"Range": f"bytes={lo}-{hi}"})
    assert r.status_code == 206, r.status_code
    assert r.content == payload.data[lo:hi + 1]
    assert r.headers["Content-Range"] == f"bytes {lo}-{hi}/{payload.size}"

    r = ims.http("GET", path, token=tok, headers={"Range": "bytes=-500"})
    assert r.status_code == 206
    assert r.content == payload.data[-500:]
    assert r.headers["Content-Range"] == f"bytes {payload.size - 500}-{payload.size - 1}/{payload.size}"

    r = ims.http("GET", path, token=tok, headers={"Range": f"bytes={payload.size - 10}-"})
    assert r.status_code == 206
    assert r.content == payload.data[-10:]

    r = ims.http("GET", path, token=tok, headers={"Range": f"bytes={payload.size + 10}-{payload.size + 20}"})
    assert r.status_code == 416, r.status_code


def test_download_of_image_without_data_is_204(ims, owner):
    r = ims.http("POST", "/v2/images", token=owner.user.token, json={"name": unique("http-nodata")})
    img = r.json()
    r = ims.http("GET", f"/v2/images/{img['id']}/file", token=owner.user.token)
    assert r.status_code == 204, r.status_code
    assert r.content == b""


def test_list_limit_next_and_bad_marker(ims, paging_set):
    tok = paging_set.tenant.user.token
    r = ims.http("GET", "/v2/images", token=tok, params={"tag": paging_set.tag, "limit": 4, "sort": "name:asc"})
    assert r.status_code == 200
    body = r.json()
    names = sorted(i["name"] for i in paging_set.images)
    assert [i["name"] for i in body["images"]] == names[:4]
    assert body["schema"] == "/v2/schemas/images"
    assert body["first"].startswith("/v2/images")
    nxt = body["next"]
    assert "marker=" + body["images"][-1]["id"] in nxt
    assert f"tag={paging_set.tag}" in nxt and "limit=4" in nxt, nxt
    r = ims.http("GET", nxt, token=tok)
    assert [i["name"] for i in r.json()["images"]] == names[4:8]

    r = ims.http("GET", "/v2/images", token=tok, params={"marker": "00000000-0000-0000-0000-000000000000"})
    assert_glance_error(r, 400, "Bad Request")
    r = ims.http("GET", "/v2/images", token=tok, params={"sort": "name:asc", "sort_key": "name"})
    assert_glance_error(r, 400, "Bad Request")


def test_errors_of_other_operations(ims, owner, uploaded):
    tok = owner.user.token
    iid = uploaded["id"]
    # unknown image
    r = ims.http("GET", "/v2/images/00000000-0000-0000-0000-000000000000", token=tok)
    assert_glance_error(r, 404, "Not Found")
    # removing a property that is not there
    r = ims.http("PATCH", f"/v2/images/{iid}", token=tok,
                 headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                 json=[{"op": "remove", "path": "/no_such_property"}])
    assert_glance_error(r, 409, "Conflict")
    # read-only attribute
    r = ims.http("PATCH", f"/v2/images/{iid}", token=tok,
                 headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                 json=[{"op": "replace", "path": "/status", "value": "killed"}])
    assert_glance_error(r, 403, "Forbidden")
    # wrong patch media type
    r = ims.http("PATCH", f"/v2/images/{iid}", token=tok, headers=JSON,
                 json=[{"op": "replace", "path": "/name", "value": "x"}])
    assert r.status_code == 415
    assert "Accept-Patch" in r.headers
    # deleting a tag that is not there
    r = ims.http("DELETE", f"/v2/images/{iid}/tags/never-there", token=tok)
    assert r.status_code == 404
    # sharing a non-shared image
    r = ims.http("PATCH", f"/v2/images/{iid}", token=tok,
                 headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
                 json=[{"op": "replace", "path": "/visibility", "value": "private"}])
    assert r.status_code == 200 and r.json()["visibility"] == "private"
    r = ims.http("POST", f"/v2/images/{iid}/members", token=tok, json={"member": ims.proj_b["id"]})
    assert_glance_error(r, 403, "Forbidden")
    # no token at all
    r = ims.http("GET", "/v2/images", token="", headers={"X-Auth-Token": None})
    assert r.status_code == 401
