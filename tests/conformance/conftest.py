"""Client conformance suite: fixtures.

One `ims serve` runs for the whole session (a random free port, a temporary data
directory, a random admin token).  The tests drive it with the real OpenStack
clients (`openstack`, `glance`, openstacksdk) and with plain HTTP (requests).

Set-up of projects and users goes through our own CLI (`ims admin ...`), which is
part of what we ship.

Identities used by the suite (see `Env`):

- ``admin``: the admin user of project ``admin`` (token ``IMS_ADMIN_TOKEN``).
- ``member_a``: role ``member`` in project ``admin`` (a non-admin user of the
  project that owns the admin's images).
- ``member_b``: role ``member`` in project ``proj-b`` (another tenant).
- Each test module creates its own owner project (with a member user) through
  ``Env.new_tenant`` so that listings stay independent of other modules; the
  paging tests share 30 images of one more project (fixture ``paging_set``).

Run it with ``scripts/conformance [pytest args]`` (it builds the virtualenv with
the pinned clients in .cache/venv).  Environment:

- ``IMS_BIN``: the server binary (default ``target/debug/ims``).
- ``CONFORMANCE_KEEP=1``: keep the server's data directory and log even when
  everything passed (they are always kept when something failed).
- ``CONFORMANCE_TIMINGS=1`` (or ``-v``): list the slowest client invocations.

On failure the tail of the server's log is printed after the test report.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from conformance_util import (
    CommandFailed,
    parse_glance_table,
)

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0
CLI_TIMEOUT = 120.0


def _venv_bin() -> str:
    """Directory holding the `openstack` and `glance` entry points of our venv."""
    return str(Path(sys.executable).parent)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _clean_env(home: str) -> dict[str, str]:
    """The caller's environment minus anything OpenStack/IMS related."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("OS_") and not k.startswith("IMS_")
    }
    env["PATH"] = _venv_bin() + os.pathsep + env.get("PATH", "")
    # clouds.yaml, keyring and caches of the user must not influence the clients.
    env["HOME"] = home
    env["XDG_CONFIG_HOME"] = os.path.join(home, ".config")
    env["XDG_CACHE_HOME"] = os.path.join(home, ".cache")
    env["PYTHONWARNINGS"] = "ignore"
    env["LC_ALL"] = "C.UTF-8"
    env["LANG"] = "C.UTF-8"
    return env


def _describe(argv: list[str]) -> str:
    """argv without the connection options, for reports."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in ("--os-auth-type", "--os-token", "--os-endpoint", "--os-image-url", "--os-auth-token"):
            skip = True
            continue
        out.append(os.path.basename(a) if a.startswith("/") else a)
    return " ".join(out)


def _close_stdin() -> None:  # pragma: no cover - runs in the child
    # glanceclient reads image data from stdin when stdin is not a terminal;
    # with fd 0 closed it knows that there is none.
    os.close(0)


@dataclass
class User:
    name: str
    id: str
    project_id: str
    project_name: str
    role: str
    token: str


@dataclass
class Tenant:
    """A project with a member user."""

    project_id: str
    project_name: str
    user: User


class Env:
    """A running IMS server plus the means to talk to it."""

    def __init__(self, url: str, admin_token: str, workdir: Path, log_path: Path, ims_bin: str):
        self.url = url
        self.admin_token = admin_token
        self.workdir = workdir
        self.log_path = log_path
        self.ims_bin = ims_bin
        self.home = str(workdir / "home")
        os.makedirs(self.home, exist_ok=True)
        self.env = _clean_env(self.home)
        self.invocations: list[tuple[float, str]] = []
        self.admin: User | None = None
        self.member_a: User | None = None
        self.member_b: User | None = None
        self.proj_b: dict | None = None
        self.admin_project_id: str | None = None

    # ----------------------------------------------------------------- running
    def run(self, argv: list[str], *, expect_fail: bool = False, env: dict | None = None,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
        """Run a command; raise CommandFailed unless its exit status is as expected."""
        started = time.monotonic()
        proc = subprocess.run(
            argv,
            env=env or self.env,
            cwd=str(self.workdir),
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=_close_stdin,
        )
        self.invocations.append((time.monotonic() - started, _describe(argv)))
        failed = proc.returncode != 0
        if failed != expect_fail:
            raise CommandFailed(argv, proc, expected_failure=expect_fail)
        return proc

    # -------------------------------------------------------------------- ims
    def ims(self, *args: str, token: str | None = None, expect_fail: bool = False):
        """Run our own CLI against the server; parse JSON output when there is any."""
        env = dict(self.env)
        env["IMS_URL"] = self.url
        env["IMS_TOKEN"] = token or self.admin_token
        proc = self.run([self.ims_bin, *args], expect_fail=expect_fail, env=env)
        if expect_fail:
            return proc
        out = proc.stdout.strip()
        return json.loads(out) if out else None

    def create_project(self, name: str) -> dict:
        out = self.ims("admin", "project", "create", name, "--output", "json")
        assert out["name"] == name, out
        assert out["id"], out
        return out

    def create_user(self, name: str, project: str, role: str) -> dict:
        out = self.ims("admin", "user", "create", "--project", project, "--role", role, name,
                       "--output", "json")
        assert out["name"] == name, out
        assert out["role"] == role, out
        assert out["token"], out
        return out

    def new_tenant(self, prefix: str, role: str = "member") -> Tenant:
        """A fresh project with one user of the given role."""
        suffix = secrets.token_hex(3)
        pname = f"{prefix}-{suffix}"
        proj = self.create_project(pname)
        u = self.create_user(f"{prefix}-user-{suffix}", proj["id"], role)
        assert u["project_id"] == proj["id"], u
        user = User(u["name"], u["id"], proj["id"], pname, role, u["token"])
        return Tenant(proj["id"], pname, user)

    # -------------------------------------------------------------- openstack
    def openstack(self, *args: str, token: str | None = None, expect_fail: bool = False,
                  json_out: bool = True):
        """`openstack --os-auth-type admin_token ... ARGS [-f json]`.

        Returns the parsed JSON (or stdout when json_out is False), or the
        CompletedProcess when a failure is expected.
        """
        argv = [
            "openstack",
            "--os-auth-type", "admin_token",
            "--os-token", token or self.admin_token,
            "--os-endpoint", self.url + "/v2",
            *args,
        ]
        if json_out and not expect_fail:
            argv += ["-f", "json"]
        proc = self.run(argv, expect_fail=expect_fail)
        if expect_fail:
            return proc
        if not json_out:
            return proc.stdout
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"openstack {' '.join(args)}: output is not JSON: {proc.stdout!r}") from e

    # ----------------------------------------------------------------- glance
    def glance(self, *args: str, token: str | None = None, expect_fail: bool = False,
               table: bool = True):
        """`glance --os-image-url URL --os-auth-token T ARGS`.

        glanceclient has no JSON output; its prettytable output is parsed
        (a Property/Value table becomes a dict, any other table a list of
        dicts).  Returns the CompletedProcess when a failure is expected.
        """
        argv = [
            "glance",
            "--os-image-url", self.url,
            "--os-auth-token", token or self.admin_token,
            *args,
        ]
        proc = self.run(argv, expect_fail=expect_fail)
        if expect_fail:
            return proc
        if not table:
            return proc.stdout
        return parse_glance_table(proc.stdout)

    # ------------------------------------------------------------------- http
    def http(self, method: str, path: str, token: str | None = None, **kw) -> requests.Response:
        headers = {"X-Auth-Token": token or self.admin_token, "Accept": "application/json"}
        headers.update(kw.pop("headers", {}) or {})
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kw)

    # -------------------------------------------------------------------- sdk
    def sdk(self, token: str | None = None):
        """An openstacksdk Connection without Keystone.

        The admin_token plugin supplies the token; the image endpoint is the
        server's root, so the SDK runs its version discovery on `/` (which
        answers with Glance's versions document, status 300) and picks `/v2/`.
        """
        import openstack

        return openstack.connect(
            auth_type="admin_token",
            auth={"endpoint": self.url, "token": token or self.admin_token},
            image_endpoint_override=self.url,
            load_yaml_config=False,
            load_envvars=False,
        )

    def server_log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:  # pragma: no cover
            return f"<no server log: {e}>"


def _resolve_ims_bin() -> str:
    raw = os.environ.get("IMS_BIN", "target/debug/ims")
    p = Path(raw)
    if not p.is_absolute():
        p = ROOT / p
    return str(p)


@pytest.fixture(scope="session")
def ims(request, tmp_path_factory) -> Env:
    ims_bin = _resolve_ims_bin()
    if not os.access(ims_bin, os.X_OK):
        pytest.fail(f"server binary {ims_bin} not found or not executable (set IMS_BIN)", pytrace=False)

    workdir = tmp_path_factory.mktemp("ims")
    data_dir = workdir / "data"
    data_dir.mkdir()
    log_path = workdir / "server.log"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    admin_token = "adm-" + secrets.token_hex(20)

    server_env = _clean_env(str(workdir))
    server_env["IMS_ADMIN_TOKEN"] = admin_token
    server_env.setdefault("RUST_LOG", "info")
    server_env["RUST_BACKTRACE"] = "1"
    # web-download may reach the suite's own HTTP servers on 127.0.0.1, and no other host; a second
    # Glance store (`second`) receives copy-image copies; imported VMDK files are stored as RAW.
    config_path = workdir / "ims.toml"
    config_path.write_text(
        "[import_conversions]\n"
        "vmdk = \"raw\"\n"
        "[glance_import]\n"
        "web_download_allowed_hosts = [\"127.0.0.1\"]\n"
        "web_download_allow_private_addresses = true\n"
        "[stores.second]\n"
        f"url = \"file://{workdir / 'second-store'}\"\n"
        "description = \"Second store\"\n"
    )
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(
        [ims_bin, "serve", "--config", str(config_path), "--listen", f"127.0.0.1:{port}",
         "--data-dir", str(data_dir)],
        env=server_env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=str(workdir),
        start_new_session=True,
    )
    env = Env(url, admin_token, workdir, log_path, ims_bin)

    def dump_log(reason: str) -> str:
        return f"{reason}\n---- server log ({log_path}) ----\n{env.server_log()}\n---- end of server log ----"

    deadline = time.monotonic() + STARTUP_TIMEOUT
    last_err = None
    while True:
        if proc.poll() is not None:
            log_file.close()
            pytest.fail(dump_log(f"ims serve exited with status {proc.returncode} during start-up"), pytrace=False)
        try:
            r = requests.get(url + "/healthcheck", timeout=2)
            if r.status_code == 200:
                break
            last_err = f"/healthcheck answered {r.status_code}"
        except requests.RequestException as e:
            last_err = repr(e)
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log_file.close()
            pytest.fail(dump_log(f"ims serve did not answer /healthcheck within {STARTUP_TIMEOUT:.0f}s ({last_err})"),
                        pytrace=False)
        time.sleep(0.2)

    try:
        # Who is the admin?
        r = env.http("GET", "/identity/v1/auth")
        assert r.status_code == 200, f"GET /identity/v1/auth as admin: {r.status_code} {r.text}"
        me = r.json()
        assert me["is_admin"] is True, me
        assert me["project"]["name"] == "admin", me
        env.admin_project_id = me["project"]["id"]
        env.admin = User(me["user"]["name"], me["user"]["id"], me["project"]["id"], "admin", "admin", admin_token)

        # A member of the admin project, and a second project with a member.
        ma = env.create_user("member-a", "admin", "member")
        assert ma["project_id"] == env.admin_project_id, ma
        env.member_a = User("member-a", ma["id"], ma["project_id"], "admin", "member", ma["token"])
        env.proj_b = env.create_project("proj-b")
        mb = env.create_user("member-b", "proj-b", "member")
        assert mb["project_id"] == env.proj_b["id"], mb
        env.member_b = User("member-b", mb["id"], mb["project_id"], "proj-b", "member", mb["token"])
    except BaseException:
        proc.kill()
        proc.wait()
        log_file.close()
        print(dump_log("session set-up failed"), file=sys.stderr)
        raise

    yield env

    failed = request.session.testsfailed
    _SESSION["env"] = env
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    log_file.close()
    _SESSION["server_status"] = proc.returncode
    if os.environ.get("CONFORMANCE_KEEP") is None and not failed:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def payload(tmp_path_factory):
    """A few MiB of random bytes on disk, with their digests."""
    from conformance_util import Payload

    d = tmp_path_factory.mktemp("payload")
    return Payload.random(d / "disk.raw", 3 * 1024 * 1024 + 12345)


@pytest.fixture()
def out_dir(tmp_path):
    return tmp_path


_SESSION: dict = {}


def pytest_configure(config):
    # openstacksdk and keystoneauth warn about their own deprecations on every call
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore::PendingDeprecationWarning")
    config.addinivalue_line("filterwarnings", "ignore:.*InfluxDB.*")
LOG_TAIL_LINES = 400


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """On failure, show the server's log (its tail) after the test report."""
    env: Env | None = _SESSION.get("env")
    if env is None:
        return
    if config.getoption("verbose") > 0 or os.environ.get("CONFORMANCE_TIMINGS"):
        terminalreporter.section("slowest client invocations")
        for d, what in sorted(env.invocations, reverse=True)[:15]:
            terminalreporter.line(f"{d:6.1f}s  {what}")
    if exitstatus == 0:
        return
    lines = env.server_log().splitlines()
    tw = terminalreporter
    tw.section(f"ims server log ({env.log_path}; exit status {_SESSION.get('server_status')})")
    if len(lines) > LOG_TAIL_LINES:
        tw.line(f"... {len(lines) - LOG_TAIL_LINES} earlier lines omitted ...")
    for line in lines[-LOG_TAIL_LINES:]:
        tw.line(line)
    total = sum(d for d, _ in env.invocations)
    tw.line(f"CLI invocations in this session: {len(env.invocations)}, {total:.0f}s in total")


def pytest_report_header(config):
    return [f"ims binary: {_resolve_ims_bin()}", f"clients from: {_venv_bin()}"]


@dataclass
class PagingSet:
    tenant: Tenant
    tag: str
    images: list  # [{"id", "name", "created_at"}] in creation order


PAGING_COUNT = 30


@pytest.fixture(scope="session")
def paging_set(ims) -> PagingSet:
    """30 queued images of one project sharing one tag, created in shuffled name order."""
    import random

    from conformance_util import unique

    tenant = ims.new_tenant("paging")
    tag = unique("page")
    order = list(range(PAGING_COUNT))
    random.Random(7).shuffle(order)
    images = []
    for i in order:
        name = f"{tag}-{i:02d}"
        r = ims.http("POST", "/v2/images", token=tenant.user.token, json={
            "name": name, "disk_format": "raw", "container_format": "bare",
            "visibility": "private", "tags": [tag],
        })
        assert r.status_code == 201, f"POST /v2/images: {r.status_code} {r.text}"
        body = r.json()
        assert body["name"] == name and body["tags"] == [tag], body
        images.append({"id": body["id"], "name": name, "created_at": body["created_at"]})
    return PagingSet(tenant, tag, images)
