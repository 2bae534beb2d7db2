"""Prepares a bootstrapped Keystone for IMS, as a cloud operator would (docs/openstack.md).

Creates the `service` role and project and IMS's service user with that role there, and registers IMS as
the `image` service with public, internal and admin endpoints in RegionOne. Uses only the standard library
(Keystone's REST API); scripts/tempest runs it with the tempest virtualenv's interpreter.

    python keystone_catalog.py KEYSTONE_V3_URL IMS_URL

The admin credentials come from IMS_TEST_KEYSTONE_ADMIN_USER, IMS_TEST_KEYSTONE_ADMIN_PASSWORD and
IMS_TEST_KEYSTONE_ADMIN_PROJECT (what `scripts/keystone start` prints); the service user's name and
password from IMS_KEYSTONE_USERNAME and IMS_KEYSTONE_PASSWORD. Every step is idempotent: what exists is kept.
"""

import json
import os
import sys
import urllib.error
import urllib.request


def call(method, url, token=None, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("X-Auth-Token", token)
    with urllib.request.urlopen(request, timeout=30) as response:
        text = response.read()
        return response.headers, (json.loads(text) if text else None)


def admin_token(keystone):
    body = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": os.environ["IMS_TEST_KEYSTONE_ADMIN_USER"],
                        "domain": {"name": "Default"},
                        "password": os.environ["IMS_TEST_KEYSTONE_ADMIN_PASSWORD"],
                    }
                },
            },
            "scope": {
                "project": {"name": os.environ["IMS_TEST_KEYSTONE_ADMIN_PROJECT"], "domain": {"name": "Default"}}
            },
        }
    }
    headers, _ = call("POST", f"{keystone}/auth/tokens", body=body)
    return headers["X-Subject-Token"]


def find_or_create(keystone, token, collection, key, name, body):
    """The id of the `collection` entry named `name`, created from `body` when there is none."""
    _, listing = call("GET", f"{keystone}/{collection}?name={urllib.request.quote(name)}", token)
    if listing[collection]:
        return listing[collection][0]["id"]
    _, created = call("POST", f"{keystone}/{collection}", token, {key: body})
    return created[key]["id"]


def main():
    keystone, ims = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/")
    token = admin_token(keystone)
    role = find_or_create(keystone, token, "roles", "role", "service", {"name": "service"})
    project = find_or_create(
        keystone, token, "projects", "project", "service",
        {"name": "service", "domain_id": "default", "description": "OpenStack services"},
    )
    username = os.environ["IMS_KEYSTONE_USERNAME"]
    user = find_or_create(
        keystone, token, "users", "user", username,
        {"name": username, "domain_id": "default", "password": os.environ["IMS_KEYSTONE_PASSWORD"]},
    )
    call("PUT", f"{keystone}/projects/{project}/users/{user}/roles/{role}", token)
    service = find_or_create(
        keystone, token, "services", "service", "glance",
        {"name": "glance", "type": "image", "description": "IMS, the image service"},
    )
    _, endpoints = call("GET", f"{keystone}/endpoints?service_id={service}", token)
    have = {e["interface"] for e in endpoints["endpoints"]}
    for interface in ("public", "internal", "admin"):
        if interface not in have:
            call(
                "POST", f"{keystone}/endpoints", token,
                {"endpoint": {"service_id": service, "interface": interface, "url": ims, "region_id": "RegionOne"}},
            )


if __name__ == "__main__":
    try:
        main()
    except urllib.error.HTTPError as e:
        sys.exit(f"keystone_catalog: {e.url}: {e.code} {e.read().decode(errors='replace')}")
