#!/usr/bin/env python3
# Prints the SDK-HMAC-SHA256 test vectors of crates/ims-server/src/signature.rs, computed with the
# Huawei Cloud SDK's own signer. Run with the conformance venv: .cache/venv/bin/python scripts/sdk-signer-vectors.py
# Generates SDK-HMAC-SHA256 test vectors with huaweicloudsdkcore's own Signer.
import json
from huaweicloudsdkcore.signer.signer import Signer
from huaweicloudsdkcore.sdk_request import SdkRequest

class Cred:
    ak = "HPUAEXAMPLEAK0000001"
    sk = "s3cr3tSKexample/with+chars=="

cases = [
  ("GET", "/v2/cloudimages", [("__imagetype", "private"), ("limit", 10), ("protected", True), ("name", "a b/ü~*")],
   {"Content-Type": "application/json", "X-Project-Id": "p1"}, None),
  ("POST", "/v1/cloudimages/members", [],
   {"Content-Type": "application/json;charset=UTF-8", "X-Project-Id": "p1", "User-Agent": "  ua/1.0  "},
   b'{"images": ["x"], "projects": ["p2"]}'),
  ("DELETE", "/v2/p1/images/abc/tags/k%20%C3%BC", [], {"Content-Type": "application/json", "X-Project-Id": "p1"}, None),
  ("PUT", "/v2/images/abc/file", [], {"Content-Type": "application/octet-stream", "X-Project-Id": "p1"}, b"rawbytes"),
  ("GET", "/", [("b", ["2", "1"]), ("a", "x")], {"Content-Type": "application/json", "X_Ignored": "z"}, None),
]
out = []
for method, path, q, h, body in cases:
    h = dict(h)
    h["X-Sdk-Date"] = "20240102T030405Z"
    req = SdkRequest(method=method, schema="http", host="127.0.0.1:9292", resource_path=path,
                     query_params=list(q), header_params=h, body=body)
    s = Signer(Cred())
    signed_headers = None
    # capture the canonical request too
    orig = s._process_canonical_request
    cap = {}
    def wrap(r, sh, orig=orig):
        c = orig(r, sh); cap["c"] = c; return c
    s._process_canonical_request = wrap
    r = s.sign(req)
    out.append({"method": method, "uri": r.uri, "headers": {k: v for k, v in r.header_params.items()},
                "body": (body or b"").decode(), "canonical": cap["c"]})
print(json.dumps(out, indent=1, ensure_ascii=False))
