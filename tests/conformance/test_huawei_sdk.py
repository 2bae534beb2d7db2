"""The Huawei Cloud IMS API driven by the official Python SDK (huaweicloudsdkims), unchanged.

Two projects get access keys through our CLI (`ims admin access-key create`); the SDK signs every
request with SDK-HMAC-SHA256 (`BasicCredentials(ak, sk, project_id)`) against the session server.
Every available operation of shared/reference/ims-api.md is called and its answer checked (the image
pipelines in test_huawei_sdk_pipelines.py, images from servers in test_huawei_sdk_compute.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass

import pytest
import requests

from conformance_util import unique

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException, ServerResponseException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkims.v2 import *  # noqa: F401,F403 (the SDK's request and model classes)
from huaweicloudsdkims.v2 import ImsClient


@dataclass
class Account:
    project_id: str
    ak: str
    sk: str
    token: str
    client: ImsClient


def make_client(url: str, ak: str, sk: str, project_id: str) -> ImsClient:
    config = HttpConfig.get_default_config()
    config.ignore_ssl_verification = True
    config.timeout = (10, 60)
    creds = BasicCredentials(ak, sk, project_id)
    return ImsClient.new_builder().with_http_config(config).with_credentials(creds).with_endpoint(url).build()


def new_account(ims, prefix: str) -> Account:
    tenant = ims.new_tenant(prefix)
    key = ims.ims("admin", "access-key", "create", "--user", tenant.user.name, "--project", tenant.project_id,
                  "--output", "json")
    assert set(key) >= {"access", "secret"}, key
    assert key["project_id"] == tenant.project_id, key
    return Account(tenant.project_id, key["access"], key["secret"], tenant.user.token,
                   make_client(ims.url, key["access"], key["secret"], tenant.project_id))


@pytest.fixture(scope="module")
def a(ims) -> Account:
    return new_account(ims, "hw-a")


@pytest.fixture(scope="module")
def b(ims) -> Account:
    return new_account(ims, "hw-b")


def create_image(acct: Account, name: str, **kw) -> str:
    body = GlanceCreateImageMetadataRequestBody(name=name, disk_format=kw.pop("disk_format", "qcow2"),
                                                container_format="bare", **kw)
    resp = acct.client.glance_create_image_metadata(GlanceCreateImageMetadataRequest(body=body))
    assert resp.name == name and resp.status == "queued", resp
    return resp.id


def expect_error(call, status: int, code: str | None = None):
    with pytest.raises((ClientRequestException, ServerResponseException)) as info:
        call()
    e = info.value
    assert e.status_code == status, (e.status_code, e.error_code, e.error_msg)
    if code is not None:
        assert e.error_code == code, (e.status_code, e.error_code, e.error_msg)
    assert e.error_msg, e
    return e


def wait_job(acct: Account, job_id: str) -> ShowJobResponse:
    deadline = time.monotonic() + 30
    while True:
        job = acct.client.show_job(ShowJobRequest(job_id=job_id))
        assert job.job_id == job_id
        assert job.status in ("INIT", "RUNNING", "SUCCESS", "FAIL"), job
        if job.status in ("SUCCESS", "FAIL"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job.status}"
        time.sleep(0.1)


def list_images(acct, **filters):
    client = acct.client if isinstance(acct, Account) else acct
    return client.list_images(ListImagesRequest(**filters))


# --------------------------------------------------------------------------------------- images

def test_list_images_records_filters_and_paging(a):
    tag = unique("hwtag")
    ids = [create_image(a, f"{tag}-{i}", tags=[tag], protected=(i == 0), min_disk=40 if i == 1 else 0)
           for i in range(3)]
    resp = list_images(a, imagetype="private", tag=tag, sort_key="name", sort_dir="asc")
    assert [i.id for i in resp.images] == ids
    img = resp.images[0]
    assert img.imagetype == "private" and img.owner == a.project_id
    assert img.isregistered == "true" and img.os_type == "Linux" and img.image_size == "0"
    assert img.virtual_env_type == "FusionCompute" and img.visibility == "shared"
    assert img.protected is True and img.tags == [tag] and img.disk_format == "qcow2"
    assert img._self == f"/v2/images/{img.id}" and img.file == f"/v2/images/{img.id}/file"
    assert isinstance(img.min_disk, int) and isinstance(img.created_at, str)

    assert [i.id for i in list_images(a, tag=tag, protected=True).images] == [ids[0]]
    assert [i.id for i in list_images(a, tag=tag, min_disk=40).images] == [ids[1]]
    assert [i.id for i in list_images(a, name=f"{tag}-2").images] == [ids[2]]
    assert len(list_images(a, tag=tag, isregistered="true").images) == 3
    assert list_images(a, tag=tag, isregistered="false").images == []
    assert list_images(a, tag=tag, imagetype="gold").images == []
    assert list_images(a, tag=tag, imagetype="shared").images == []
    assert len(list_images(a, tag=tag, os_type="Linux", status="queued").images) == 3
    assert list_images(a, tag=tag, created_at="lt:2000-01-01T00:00:00Z").images == []
    assert len(list_images(a, tag=tag, updated_at="gt:2000-01-01T00:00:00Z").images) == 3

    page1 = list_images(a, tag=tag, limit=2, sort_key="name", sort_dir="desc")
    assert [i.id for i in page1.images] == [ids[2], ids[1]]
    assert page1.page_info.next_marker == ids[1]
    page2 = list_images(a, tag=tag, limit=2, sort_key="name", sort_dir="desc", marker=page1.page_info.next_marker)
    assert [i.id for i in page2.images] == [ids[0]]
    expect_error(lambda: list_images(a, imagetype="bogus"), 400, "IMG.0001")


def test_update_image(a):
    image_id = create_image(a, unique("upd"))
    body = [UpdateImageRequestBody(op="replace", path="/name", value="renamed"),
            UpdateImageRequestBody(op="add", path="/__description", value="a description"),
            UpdateImageRequestBody(op="replace", path="/min_ram", value="1024"),
            UpdateImageRequestBody(op="replace", path="/__support_kvm", value="true")]
    resp = a.client.update_image(UpdateImageRequest(image_id=image_id, body=body))
    assert resp.name == "renamed" and resp.description == "a description"
    assert resp.min_ram == 1024 and resp.support_kvm == "true" and resp.imagetype == "private"
    got = a.client.glance_show_image(GlanceShowImageRequest(image_id=image_id))
    assert got.name == "renamed" and got.description == "a description", "the same record through Glance"
    body = [UpdateImageRequestBody(op="remove", path="/__description")]
    assert a.client.update_image(UpdateImageRequest(image_id=image_id, body=body)).description is None
    body = [UpdateImageRequestBody(op="replace", path="/status", value="active")]
    expect_error(lambda: a.client.update_image(UpdateImageRequest(image_id=image_id, body=body)), 403, "IMG.0003")


def test_another_projects_image_is_not_found(a, b):
    image_id = create_image(a, unique("mine"))
    expect_error(lambda: b.client.glance_show_image(GlanceShowImageRequest(image_id=image_id)), 404)
    body = [UpdateImageRequestBody(op="replace", path="/name", value="stolen")]
    expect_error(lambda: b.client.update_image(UpdateImageRequest(image_id=image_id, body=body)), 404, "IMG.0004")
    assert list_images(b, id=image_id).images == []
    expect_error(lambda: b.client.list_image_tags(ListImageTagsRequest(image_id=image_id)), 404, "IMG.0004")


def test_quota_numbers_and_exceeding_it(ims):
    c = new_account(ims, "hw-quota")
    q = c.client.show_image_quota(ShowImageQuotaRequest()).quotas.resources[0]
    assert (q.type, q.used, q.quota, q.min) == ("image", 0, 50, 0) and q.max >= 50
    for i in range(50):
        create_image(c, f"q-{i}")
    assert c.client.show_image_quota(ShowImageQuotaRequest()).quotas.resources[0].used == 50
    e = expect_error(lambda: create_image(c, "one too many"), 413)
    assert "quota" in e.error_msg.lower(), e.error_msg
    assert c.client.show_image_quota(ShowImageQuotaRequest()).quotas.resources[0].used == 50


# -------------------------------------------------------------------------------------- members

def test_member_flow_across_projects(a, b):
    name = unique("share")
    image_id = create_image(a, name)
    job_id = a.client.batch_add_members(BatchAddMembersRequest(
        body=BatchAddMembersRequestBody(images=[image_id], projects=[b.project_id]))).job_id
    job = wait_job(a, job_id)
    assert job.status == "SUCCESS" and job.job_type == "batchAddMembers", job
    assert job.entities.image_id == image_id and job.entities.process_percent == 1.0
    assert job.begin_time and job.end_time
    expect_error(lambda: b.client.show_job(ShowJobRequest(job_id=job_id)), 404, "IMG.0004")
    progress = a.client.show_job_progress(ShowJobProgressRequest(job_id=job_id))
    assert progress.status == "SUCCESS"

    members = a.client.list_image_members(ListImageMembersRequest(image_id=image_id))
    assert [(m.member_id, m.status) for m in members.members] == [(b.project_id, "pending")]
    m = a.client.show_image_member(ShowImageMemberRequest(image_id=image_id, member_id=b.project_id))
    assert (m.image_id, m.member_id, m.status, m.member_type) == (image_id, b.project_id, "pending", "project")
    glance = a.client.glance_list_image_members(GlanceListImageMembersRequest(image_id=image_id))
    assert [x.member_id for x in glance.members] == [b.project_id], "the same rows through Glance"

    assert [i.id for i in list_images(b, imagetype="shared", member_status="pending", name=name).images] == [image_id]
    assert list_images(b, imagetype="shared", name=name).images == [], "pending shares are not listed by default"

    # Accepting for another project is refused.
    e = expect_error(lambda: a.client.batch_update_members(BatchUpdateMembersRequest(
        body=BatchUpdateMembersRequestBody(images=[image_id], project_id=b.project_id, status="accepted"))), 403)
    assert e.error_code == "IMG.0003"

    job_id = b.client.batch_update_members(BatchUpdateMembersRequest(
        body=BatchUpdateMembersRequestBody(images=[image_id], project_id=b.project_id, status="accepted"))).job_id
    assert wait_job(b, job_id).status == "SUCCESS"
    shared = list_images(b, imagetype="shared", name=name).images
    assert [i.id for i in shared] == [image_id] and shared[0].imagetype == "shared"
    got = b.client.glance_show_image_member(GlanceShowImageMemberRequest(image_id=image_id, member_id=b.project_id))
    assert got.status == "accepted"

    job_id = a.client.batch_delete_members(BatchDeleteMembersRequest(
        body=BatchAddMembersRequestBody(images=[image_id], projects=[b.project_id]))).job_id
    assert wait_job(a, job_id).status == "SUCCESS"
    assert list_images(b, imagetype="shared", name=name).images == []
    assert a.client.list_image_members(ListImageMembersRequest(image_id=image_id)).members == []

    # A share made through Glance is seen through IMS.
    a.client.glance_add_image_member(GlanceAddImageMemberRequest(
        image_id=image_id, body=GlanceAddImageMemberRequestBody(member=b.project_id)))
    m = a.client.show_image_member(ShowImageMemberRequest(image_id=image_id, member_id=b.project_id))
    assert m.status == "pending"
    b.client.glance_update_image_member(GlanceUpdateImageMemberRequest(
        image_id=image_id, member_id=b.project_id, body=GlanceUpdateImageMemberRequestBody(status="rejected")))
    assert a.client.show_image_member(ShowImageMemberRequest(image_id=image_id, member_id=b.project_id)).status == "rejected"
    a.client.glance_delete_image_member(GlanceDeleteImageMemberRequest(image_id=image_id, member_id=b.project_id))

    # Someone else's image cannot be shared.
    expect_error(lambda: b.client.batch_add_members(BatchAddMembersRequest(
        body=BatchAddMembersRequestBody(images=[image_id], projects=[b.project_id]))), 404, "IMG.0004")


# ----------------------------------------------------------------------------------------- tags

def test_resource_tags_v2_and_v1(a):
    name = unique("tags")
    one, two = create_image(a, f"{name}-1"), create_image(a, f"{name}-2")
    a.client.add_image_tag(AddImageTagRequest(image_id=one, body=AddImageTagRequestBody(
        tag=ResourceTag(key="env", value="prod"))))
    a.client.batch_add_or_delete_tags(BatchAddOrDeleteTagsRequest(image_id=one, body=BatchAddOrDeleteTagsRequestBody(
        action="create", tags=[ResourceTag(key="team", value="blue"), ResourceTag(key="tmp", value="x")])))
    a.client.batch_add_or_delete_tags(BatchAddOrDeleteTagsRequest(image_id=one, body=BatchAddOrDeleteTagsRequestBody(
        action="delete", tags=[ResourceTag(key="tmp", value="x")])))
    a.client.add_image_tag(AddImageTagRequest(image_id=two, body=AddImageTagRequestBody(
        tag=ResourceTag(key="env", value="dev"))))
    tags = a.client.list_image_tags(ListImageTagsRequest(image_id=one)).tags
    assert [(t.key, t.value) for t in tags] == [("env", "prod"), ("team", "blue")]
    glance = a.client.glance_show_image(GlanceShowImageRequest(image_id=one))
    assert glance.tags == [], "resource tags are not Glance tags"

    all_tags = {t.key: sorted(t.values) for t in a.client.list_images_tags(ListImagesTagsRequest()).tags}
    assert all_tags["env"] == ["dev", "prod"] and all_tags["team"] == ["blue"]

    def query(**kw):
        return a.client.list_image_by_tags(ListImageByTagsRequest(body=ListImageByTagsRequestBody(**kw)))

    r = query(action="filter", tags=[Tags(key="env", values=["prod", "dev"])],
              matches=[TagKeyValue(key="resource_name", value=name)])
    assert r.total_count == 2 and {x.resource_id for x in r.resources} == {one, two}
    r = query(action="filter", tags=[Tags(key="env", values=["prod"])], limit="10", offset="0")
    assert [x.resource_id for x in r.resources] == [one] and r.resources[0].resource_name == f"{name}-1"
    assert r.resources[0].resource_detail.status == "queued"
    assert {(t.key, t.value) for t in r.resources[0].tags} == {("env", "prod"), ("team", "blue")}
    r = query(action="filter", tags=[Tags(key="env", values=[])], not_tags=[Tags(key="team", values=["blue"])],
              matches=[TagKeyValue(key="resource_name", value=name)])
    assert [x.resource_id for x in r.resources] == [two]
    r = query(action="filter", tags=[Tags(key="env", values=[])], limit="1", offset="1",
              matches=[TagKeyValue(key="resource_name", value=name)])
    assert r.total_count == 2 and len(r.resources) == 1
    assert query(action="count", tags=[Tags(key="team", values=[])]).total_count >= 1

    a.client.delete_image_tag(DeleteImageTagRequest(image_id=one, key="team"))
    expect_error(lambda: a.client.delete_image_tag(DeleteImageTagRequest(image_id=one, key="team")), 404, "IMG.0004")

    # v1 legacy APIs.
    a.client.create_or_update_tags(CreateOrUpdateTagsRequest(body=AddOrUpdateTagsRequestBody(
        image_id=two, image_tag=ResourceTag(key="owner", value="ops"))))
    a.client.create_or_update_tags(CreateOrUpdateTagsRequest(body=AddOrUpdateTagsRequestBody(
        image_id=two, tag="legacy.yes")))
    v1 = a.client.list_tags(ListTagsRequest(name=f"{name}-2")).tags
    assert v1 == ["env.dev", "legacy.yes", "owner.ops"], v1
    assert a.client.list_tags(ListTagsRequest(name=f"{name}-2", limit=1, page=2)).tags == ["legacy.yes"]
    a.client.batch_delete_tags(BatchDeleteTagsRequest(image_id=two, body=BatchDeleteTagsRequestBody(
        tags=[ResourceTag(key="owner", value="ops"), ResourceTag(key="legacy", value="yes")])))
    assert [(t.key, t.value) for t in a.client.list_image_tags(ListImageTagsRequest(image_id=two)).tags] == [("env", "dev")]


# ------------------------------------------------------------------------ catalogue, versions

def test_os_versions(a):
    body = a.client.list_os_versions(ListOsVersionsRequest()).body
    platforms = {p.platform: p for p in body}
    assert {"Ubuntu", "CentOS", "Windows", "Debian", "EulerOS"} <= set(platforms)
    ubuntu = platforms["Ubuntu"].version_list
    assert any(v.os_version_key == "Ubuntu 22.04 server 64bit" for v in ubuntu)
    assert all(v.os_bit == 64 and v.os_type == "Linux" and v.platform == "Ubuntu" for v in ubuntu)
    assert all(v.os_type == "Windows" for v in platforms["Windows"].version_list)


def test_versions(a):
    versions = a.client.list_versions(ListVersionsRequest()).versions
    assert versions and versions[0].status == "CURRENT" and versions[0].id.startswith("v2")
    assert all(v.links for v in versions)
    assert a.client.show_version(ShowVersionRequest(version="v2")).versions


# ------------------------------------------------------------------------------------- Glance

def test_glance_operations(a):
    name = unique("gl")
    image_id = create_image(a, name, tags=["t1"], visibility="private", min_ram=512, os_version="Ubuntu 22.04 server 64bit")
    shown = a.client.glance_show_image(GlanceShowImageRequest(image_id=image_id))
    assert (shown.name, shown.visibility, shown.min_ram, shown.os_version) == (name, "private", 512, "Ubuntu 22.04 server 64bit")
    listed = a.client.glance_list_images(GlanceListImagesRequest(name=name))
    assert [i.id for i in listed.images] == [image_id] and listed.schema == "/v2/schemas/images"
    updated = a.client.glance_update_image(GlanceUpdateImageRequest(image_id=image_id, body=[
        GlanceUpdateImageRequestBody(op="replace", path="/name", value=name + "-x")]))
    assert updated.name == name + "-x"
    a.client.glance_create_tag(GlanceCreateTagRequest(image_id=image_id, tag="t2"))
    a.client.glance_delete_tag(GlanceDeleteTagRequest(image_id=image_id, tag="t1"))
    assert a.client.glance_show_image(GlanceShowImageRequest(image_id=image_id)).tags == ["t2"]
    assert a.client.glance_show_image_schemas(GlanceShowImageSchemasRequest()).name == "image"
    assert a.client.glance_list_image_schemas(GlanceListImageSchemasRequest()).name == "images"
    assert a.client.glance_show_image_member_schemas(GlanceShowImageMemberSchemasRequest()).name == "member"
    assert a.client.glance_list_image_member_schemas(GlanceListImageMemberSchemasRequest()).name == "members"
    a.client.glance_delete_image(GlanceDeleteImageRequest(image_id=image_id))
    expect_error(lambda: a.client.glance_show_image(GlanceShowImageRequest(image_id=image_id)), 404)


# ----------------------------------------------------------------------------- not available

def test_images_from_servers_need_a_server_id(a):
    calls = [
        lambda: a.client.create_image(CreateImageRequest(body=CreateImageRequestBody(name="x", instance_id="i-1"))),
        lambda: a.client.create_whole_image(CreateWholeImageRequest(body=CreateWholeImageRequestBody(name="x", instance_id="i"))),
    ]
    for call in calls:
        e = expect_error(call, 400, "IMG.0001")
        assert "instance_id" in e.error_msg


# ------------------------------------------------------------------------------ authentication

def test_wrong_secret_is_refused(ims, a):
    bad = make_client(ims.url, a.ak, a.sk[:-1] + ("x" if a.sk[-1] != "x" else "y"), a.project_id)
    expect_error(lambda: list_images(bad), 401, "APIGW.0301")
    unknown = make_client(ims.url, "NOSUCHKEY00000000000", a.sk, a.project_id)
    expect_error(lambda: list_images(unknown), 401, "APIGW.0301")


def test_expired_sdk_date_is_refused(a):
    expect_error(lambda: list_images(a, x_sdk_date="20200101T000000Z"), 401, "APIGW.0301")
    recent = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() - 60))
    list_images(a, x_sdk_date=recent)


def test_key_is_only_valid_in_its_project(ims, a, b):
    wrong = make_client(ims.url, a.ak, a.sk, b.project_id)
    expect_error(lambda: list_images(wrong), 401, "APIGW.0301")


def _signed(ims, acct: Account, method: str, path: str, body: bytes):
    """A request signed by the SDK's own signer, as the SDK would send it."""
    from huaweicloudsdkcore.sdk_request import SdkRequest
    from huaweicloudsdkcore.signer.signer import Signer

    host = ims.url.split("://", 1)[1]
    req = SdkRequest(method=method, schema="http", host=host, resource_path=path, query_params=[],
                     header_params={"Content-Type": "application/json", "X-Project-Id": acct.project_id},
                     body=body)
    Signer(BasicCredentials(acct.ak, acct.sk, acct.project_id)).sign(req)
    return req.header_params


def test_tampered_body_is_refused(ims, a, b):
    image_id = create_image(a, unique("tamper"))
    body = json.dumps({"images": [image_id], "projects": [b.project_id]}).encode()
    headers = _signed(ims, a, "POST", "/v1/cloudimages/members", body)
    tampered = body.replace(b.project_id.encode(), a.project_id.encode())
    r = requests.post(ims.url + "/v1/cloudimages/members", headers=headers, data=tampered, timeout=30)
    assert r.status_code == 401, r.text
    assert r.json()["error_code"] == "APIGW.0301"
    r = requests.post(ims.url + "/v1/cloudimages/members", headers=headers, data=body, timeout=30)
    assert r.status_code == 200 and r.json()["job_id"], r.text


def test_revoked_key_and_bearer_tokens_on_ims_paths(ims, a):
    c = new_account(ims, "hw-revoke")
    list_images(c)
    listed = ims.ims("admin", "access-key", "list", "--output", "json")
    assert any(k["access"] == c.ak and "secret" not in k for k in listed)
    ims.ims("admin", "access-key", "revoke", c.ak)
    expect_error(lambda: list_images(c), 401, "APIGW.0301")
    # Bearer tokens keep working on the same paths.
    r = ims.http("GET", "/v2/cloudimages?__imagetype=private", token=a.token)
    assert r.status_code == 200 and "images" in r.json(), r.text
    r = ims.http("GET", "/v2/cloudimages", token="not-a-token")
    assert r.status_code == 401 and r.json()["error_code"] == "APIGW.0301", r.text
