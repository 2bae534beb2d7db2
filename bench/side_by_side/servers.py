"""The two services under test, each started on a free loopback port with a throwaway data dir.

`Service` knows its process tree, so that peak memory covers every process that serves requests
(gunicorn's master and workers for Glance, the one `ims serve` process for IMS).
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(pid):
    """`pid` and all its descendants that are alive now."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    """User + system CPU seconds of one process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Service:
    """A started server: its name, base URL, request headers, data dir and process."""

    def __init__(self, name, url, headers, data_dir, proc, log_path):
        self.name = name
        self.url = url
        self.headers = headers
        self.data_dir = data_dir
        self.proc = proc
        self.log_path = log_path

    def pids(self):
        return process_tree(self.proc.pid)

    def reset_peak_rss(self):
        """Restarts the peak-RSS counter (VmHWM) of every process of the service."""
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/clear_refs", "w") as f:
                    f.write("5")
            except OSError:
                pass

    def peak_rss_mib(self):
        """Sum over the service's processes of their peak RSS since the last reset, in MiB."""
        return sum(status_kib(pid, "VmHWM") for pid in self.pids()) / 1024

    def cpu_seconds(self):
        return sum(cpu_seconds(pid) for pid in self.pids())

    def disk_bytes(self):
        """Bytes allocated on disk under the data dir (`du`: blocks actually used, sparse files count
        for their data only)."""
        out = subprocess.run(["du", "-sB1", self.data_dir], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0])

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wait_ready(service, path, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            break
        try:
            req = urllib.request.Request(service.url + path, headers=service.headers)
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status < 500:
                    return
        except OSError:
            time.sleep(0.2)
    with open(service.log_path, errors="replace") as f:
        tail = f.read()[-3000:]
    raise RuntimeError(f"{service.name} did not start; its log ends with:\n{tail}")


def start_ims(binary, work):
    """`ims serve` with its embedded defaults (SQLite catalog, local chunk store), QCOW2 imports
    converted to RAW."""
    data = os.path.join(work, "ims")
    os.makedirs(data)
    config = os.path.join(work, "ims.toml")
    with open(config, "w") as f:
        f.write('[import_conversions]\nqcow2 = "raw"\n')
    port = free_port()
    token = "bench-" + os.urandom(8).hex()
    env = dict(os.environ, IMS_ADMIN_TOKEN=token, IMS_LOG="warn")
    log_path = os.path.join(work, "ims.log")
    proc = subprocess.Popen(
        [binary, "serve", "--config", config, "--listen", f"127.0.0.1:{port}", "--data-dir", data],
        env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    service = Service("IMS", f"http://127.0.0.1:{port}", {"X-Auth-Token": token}, data, proc, log_path)
    wait_ready(service, "/healthcheck")
    return service


GLANCE_API_CONF = """[DEFAULT]
enabled_backends = fs:file
enabled_import_methods = [glance-direct,web-download]
log_file = {work}/glance-api.log
# No authentication (see GLANCE_PASTE_INI); the legacy policy defaults.
enforce_secure_rbac = false

[database]
connection = sqlite:///{data}/glance.sqlite?timeout=60

[paste_deploy]
flavor =

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false

[glance_store]
default_backend = fs

[fs]
filesystem_store_datadir = {data}/images

[os_glance_staging_store]
filesystem_store_datadir = {data}/staging

[os_glance_tasks_store]
filesystem_store_datadir = {data}/tasks
"""

GLANCE_IMPORT_CONF = """[image_import_opts]
image_import_plugins = ['image_conversion']

[image_conversion]
output_format = raw
"""

# Glance's no-auth pipeline (etc/glance-api-paste.ini, [pipeline:glance-api], chosen by an empty
# `flavor`) with two changes: no healthcheck filter (current oslo.middleware only accepts it as an
# app), and `context` in place of `unauthenticated-context`: no token is checked, the identity comes
# from the X-Project-Id/X-User-Id/X-Roles headers the client sends (with X-Identity-Status:
# Confirmed), because an import task needs an owner project and the unauthenticated context has none.
GLANCE_PASTE_INI = """[pipeline:glance-api]
pipeline = cors http_proxy_to_wsgi versionnegotiation osprofiler context rootapp

[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app

[app:apiversions]
paste.app_factory = glance.api.versions:create_resource

[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory

[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory

[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory

[filter:osprofiler]
paste.filter_factory = osprofiler.web:WsgiMiddleware.factory

[filter:cors]
paste.filter_factory = oslo_middleware.cors:filter_factory
oslo_config_project = glance
oslo_config_program = glance-api

[filter:http_proxy_to_wsgi]
paste.filter_factory = oslo_middleware:HTTPProxyToWSGI.factory
"""


def gunicorn_workers():
    return os.cpu_count() or 2


GUNICORN_THREADS = 8


def start_glance(venv, work):
    """Glance's API under gunicorn (one process per core, threaded workers), SQLite, file store,
    no authentication, the image_conversion import plugin with output_format = raw."""
    conf_dir = os.path.join(work, "glance-etc")
    data = os.path.join(work, "glance")
    for d in (conf_dir, data, f"{data}/images", f"{data}/staging", f"{data}/tasks"):
        os.makedirs(d)
    with open(os.path.join(conf_dir, "glance-api.conf"), "w") as f:
        f.write(GLANCE_API_CONF.format(work=work, data=data))
    with open(os.path.join(conf_dir, "glance-image-import.conf"), "w") as f:
        f.write(GLANCE_IMPORT_CONF)
    with open(os.path.join(conf_dir, "glance-api-paste.ini"), "w") as f:
        f.write(GLANCE_PASTE_INI.format(work=work))
    env = dict(os.environ, OS_GLANCE_CONFIG_DIR=conf_dir)
    env["PATH"] = os.path.join(venv, "bin") + os.pathsep + env.get("PATH", "")
    for var in [v for v in env if v.startswith("OS_") and v != "OS_GLANCE_CONFIG_DIR"]:
        del env[var]
    log_path = os.path.join(work, "glance-gunicorn.log")
    with open(log_path, "w") as log:
        subprocess.run([os.path.join(venv, "bin", "glance-manage"), "--config-dir", conf_dir, "db_sync"],
                       env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
    port = free_port()
    proc = subprocess.Popen(
        [os.path.join(venv, "bin", "gunicorn"), "--bind", f"127.0.0.1:{port}",
         "--workers", str(gunicorn_workers()), "--worker-class", "gthread", "--threads", str(GUNICORN_THREADS),
         "--timeout", "3600", "--no-control-socket", "glance.wsgi.api:application"],
        env=env, stdout=open(log_path, "a"), stderr=subprocess.STDOUT, start_new_session=True, cwd=work)
    identity = {"X-Identity-Status": "Confirmed", "X-Project-Id": "bench" + os.urandom(8).hex(),
                "X-User-Id": "bench" + os.urandom(8).hex(), "X-Roles": "admin,member,reader"}
    service = Service("Glance", f"http://127.0.0.1:{port}", identity, data, proc, log_path)
    wait_ready(service, "/v2/images")
    return service


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)
