"""Helpers shared by the conformance tests (no fixtures here)."""

from __future__ import annotations

import hashlib
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path


class CommandFailed(AssertionError):
    """A client command exited with an unexpected status."""

    def __init__(self, argv, proc: subprocess.CompletedProcess, expected_failure: bool = False):
        shown = []
        redact = False
        for a in argv:
            shown.append("<token>" if redact else a)
            redact = a in ("--os-token", "--os-auth-token")
        what = "succeeded but was expected to fail" if expected_failure else f"failed with exit status {proc.returncode}"
        super().__init__(
            f"command {what}: {' '.join(shown)}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
        self.proc = proc


@dataclass
class Payload:
    """Image data with its digests, as Glance reports them."""

    path: Path
    data: bytes

    @classmethod
    def random(cls, path: Path, size: int) -> "Payload":
        data = secrets.token_bytes(size)
        path.write_bytes(data)
        return cls(path, data)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def md5(self) -> str:
        return hashlib.md5(self.data).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def sha512(self) -> str:
        return hashlib.sha512(self.data).hexdigest()


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unique(prefix: str) -> str:
    """A name no other test (or earlier run) uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def osc_field(image: dict, key: str):
    """A field of `openstack image show/create -f json` output.

    python-openstackclient prints the standard attributes at the top level and
    folds everything else (os_hash_value, os_hidden, user properties...) into
    `properties`.
    """
    if key in image:
        return image[key]
    props = image.get("properties") or {}
    if key in props:
        return props[key]
    raise KeyError(f"{key!r} neither a top-level field nor a property of {image!r}")


def osc_props(image: dict) -> dict:
    return image.get("properties") or {}


def parse_glance_table(text: str):
    """Parse glanceclient's prettytable output.

    A ``Property | Value`` table becomes a dict (wrapped values are joined);
    any other table becomes a list of dicts keyed by the column headers.
    Lines outside the first table (warnings, progress) are ignored.
    """
    rows: list[list[str]] = []
    borders = 0
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("+") and s.endswith("+"):
            borders += 1
            if borders == 3:
                break
            continue
        if borders >= 1 and s.startswith("|") and s.endswith("|"):
            rows.append([c.strip() for c in s[1:-1].split("|")])
    if not rows:
        raise AssertionError(f"no table in glance output: {text!r}")
    header, body = rows[0], rows[1:]
    if header == ["Property", "Value"]:
        out: dict[str, str] = {}
        last = None
        for row in body:
            key, val = row[0], "|".join(row[1:])
            if key == "" and last is not None:
                out[last] += val
            else:
                out[key] = val
                last = key
        return out
    return [dict(zip(header, row)) for row in body]


def glance_none(value: str):
    """glanceclient prints None for null fields."""
    return None if value in ("None", "") else value


def error_text(proc: subprocess.CompletedProcess) -> str:
    return (proc.stderr or "") + (proc.stdout or "")
