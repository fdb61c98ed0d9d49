"""Debian's real nginx running deploy/nginx.conf, for the end-to-end tests (no silent skip: it must
be installed, as `make test` does). Only what cannot hold on a test machine is rewritten: the
listen port, the replicas' addresses, and the pid, log and temporary paths."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.e2e_server import REPO, free_port

CONF = REPO / "deploy" / "nginx.conf"
UPSTREAMS = ("streamchat-1:8000", "streamchat-2:8000")  # the compose services' names


def nginx_binary() -> str:
    # /usr/sbin is not on every PATH (a non-root shell's).
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                       else None)
    if binary is None:
        pytest.fail("nginx is not installed; `make test` installs it (apt-get install nginx)",
                    pytrace=False)
    return binary


def local_config(conf: str, *, port: int, upstreams: list[int], prefix: Path) -> str:
    """`conf` with each rewrite applied to exactly one place, so that a change to the file that
    moves one of them fails here instead of testing something else."""
    temp = "".join(f"    {kind}_temp_path {prefix}/{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    rewrites = [
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
        *((f"server {name} ", f"server 127.0.0.1:{upstream} ")
          for name, upstream in zip(UPSTREAMS, upstreams, strict=True)),
        ("pid /run/nginx.pid;", f"pid {prefix}/nginx.pid;"),
        ("error_log /dev/stderr ", f"error_log {prefix}/error.log "),
        ("access_log /dev/stdout ", f"access_log {prefix}/access.log "),
        ("http {\n", "http {\n" + temp),
    ]
    for old, new in rewrites:
        assert conf.count(old) == 1, f"{CONF} should have {old!r} exactly once"
        conf = conf.replace(old, new)
    return conf


class Nginx:
    def __init__(self, upstreams: list[int]) -> None:
        self.prefix = Path(tempfile.mkdtemp(prefix="streamchat-nginx-"))
        self.prefix.chmod(0o755)  # nginx's workers run as nobody when the test runs as root
        self.port = free_port()
        conf = self.prefix / "nginx.conf"
        conf.write_text(local_config(CONF.read_text(), port=self.port, upstreams=upstreams,
                                     prefix=self.prefix))
        with (self.prefix / "stderr.log").open("wb") as out:
            self.process = subprocess.Popen(
                [nginx_binary(), "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        pytest.fail(f"nginx did not start:\n{self.log_tail()}", pytrace=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logged(self, text: str, timeout_s: float = 5) -> bool:
        """Whether an access log line holds `text` (a line is written once its response has
        been sent, so it may come just after the client has the response)."""
        path, deadline = self.prefix / "access.log", time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if path.exists() and text in path.read_text(errors="replace"):
                return True
            time.sleep(0.05)
        return False

    def log_tail(self, lines: int = 20) -> str:
        text = "".join(path.read_text(errors="replace") for path in
                       (self.prefix / "stderr.log", self.prefix / "error.log") if path.exists())
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM: fast shutdown, streams are not waited for
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.prefix, ignore_errors=True)
