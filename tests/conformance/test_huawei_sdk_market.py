"""Marketplace and public images through the official IMS SDK (huaweicloudsdkims), unchanged.

A publisher project lists an image on the marketplace (`/v1/marketplace/listings`, plain HTTP: the SDK has
no marketplace calls); a second project finds it with `ListImages(__imagetype=market)`, whose records carry
`__productcode` and `__is_offshelved`, and a public image with `ListImages(__imagetype=gold)`. Off shelf,
the listing leaves the market list.
"""

from __future__ import annotations

import os

from conformance_util import unique

from huaweicloudsdkims.v2 import ListImagesRequest

from test_huawei_sdk import new_account


def test_market_and_gold_image_types(ims):
    publisher = new_account(ims, "mk-pub")
    member = new_account(ims, "mk-mem")

    name = unique("market")
    created = ims.http("POST", "/v2/images", token=publisher.token,
                       json={"name": name, "disk_format": "raw", "container_format": "bare"})
    assert created.status_code == 201, created.text
    image_id = created.json()["id"]
    upload = ims.http("PUT", f"/v2/images/{image_id}/file", token=publisher.token, data=os.urandom(4096),
                      headers={"Content-Type": "application/octet-stream"})
    assert upload.status_code == 204, upload.text
    code = unique("prod")
    listed = ims.http("POST", "/v1/marketplace/listings", token=publisher.token,
                      json={"image_id": image_id, "product_code": code, "version": "1.0", "description": "demo"})
    assert listed.status_code == 201, listed.text
    listing_id = listed.json()["id"]

    market = member.client.list_images(ListImagesRequest(imagetype="market", name=name)).images
    assert [i.id for i in market] == [image_id]
    assert market[0].imagetype == "market" and market[0].productcode == code, market[0]
    assert market[0].is_offshelved == "false", market[0]

    gold_name = unique("gold")
    gold = ims.http("POST", "/v2/images", json={"name": gold_name, "disk_format": "qcow2", "container_format": "bare",
                                                "visibility": "public", "__platform": "Ubuntu", "__os_bit": "64",
                                                "__os_version": "Ubuntu 22.04 server 64bit", "min_disk": 10})
    assert gold.status_code == 201, gold.text
    found = member.client.list_images(ListImagesRequest(imagetype="gold", name=gold_name)).images
    assert [(i.id, i.imagetype, i.platform, i.os_bit, i.min_disk) for i in found] == \
        [(gold.json()["id"], "gold", "Ubuntu", "64", 10)]
    assert member.client.list_images(ListImagesRequest(imagetype="gold", name=name)).images == []

    off = ims.http("POST", f"/v1/marketplace/listings/{listing_id}/offshelf", token=publisher.token)
    assert off.status_code == 200 and off.json()["offshelved"] is True, off.text
    assert member.client.list_images(ListImagesRequest(imagetype="market", name=name)).images == []
