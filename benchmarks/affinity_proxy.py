"""deploy/nginx.conf run by the real nginx on this machine, in front of local replicas: for
`python -m benchmarks affinity`, and for the tests (tests/nginx_server.py), which share this one
rewrite of the file. Only what cannot hold off the compose network is rewritten: the listen
port, the replicas' addresses (two in the file, any number here), the pid, log and temporary
paths, and, for `balance="round-robin"`, the hash line (the file as it was before affinity)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "deploy" / "nginx.conf"
UPSTREAMS = ("streamchat-1:8000", "streamchat-2:8000")  # the compose services' names
HASH_LINE = "        hash $streamchat_session_key consistent;\n"
Balance = Literal["affine", "round-robin"]


def nginx_binary() -> str | None:
    # /usr/sbin is not on every PATH (a non-root shell's).
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                     else None)


def local_config(conf: str, *, port: int, upstreams: list[int], prefix: Path,
                 balance: Balance = "affine") -> str:
    """`conf` with each rewrite applied to exactly one place, so that a change to the file that
    moves one of them fails here instead of measuring or testing something else."""
    if len(upstreams) < len(UPSTREAMS):
        raise ValueError(f"at least {len(UPSTREAMS)} replicas, got {len(upstreams)}")
    temp = "".join(f"    {kind}_temp_path {prefix}/{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    last = f"server {UPSTREAMS[-1]} "
    line = next(x for x in conf.splitlines(keepends=True) if last in x)
    extra = "".join(line.replace(last, f"server 127.0.0.1:{upstream} ")
                    for upstream in upstreams[len(UPSTREAMS):])
    rewrites = [
        ("listen 8080;", f"listen 127.0.0.1:{port};"),
        (line, line + extra),  # the replicas past the file's two, each with the same options
        *((f"server {name} ", f"server 127.0.0.1:{upstream} ")
          for name, upstream in zip(UPSTREAMS, upstreams, strict=False)),
        ("pid /run/nginx.pid;", f"pid {prefix}/nginx.pid;"),
        ("error_log /dev/stderr ", f"error_log {prefix}/error.log "),
        ("access_log /dev/stdout ", f"access_log {prefix}/access.log "),
        ("http {\n", "http {\n" + temp),
    ]
    if balance == "round-robin":
        rewrites.append((HASH_LINE, ""))
    for old, new in rewrites:
        if conf.count(old) != 1:
            raise ValueError(f"{CONF} should have {old!r} exactly once")
        conf = conf.replace(old, new)
    return conf


class NginxProcess:
    """nginx on a free loopback port in front of `upstreams` (local ports), in a folder of its
    own; `stop()` is safe to call at any point, more than once."""

    def __init__(self, upstreams: list[int], balance: Balance = "affine") -> None:
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.prefix = Path(tempfile.mkdtemp(prefix="streamchat-nginx-"))
        self.prefix.chmod(0o755)  # nginx's workers run as nobody when run as root
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        conf = self.prefix / "nginx.conf"
        conf.write_text(local_config(CONF.read_text(), port=self.port, upstreams=upstreams,
                                     prefix=self.prefix, balance=balance))
        with (self.prefix / "stderr.log").open("wb") as out:
            self.process = subprocess.Popen(
                [binary, "-p", str(self.prefix), "-c", str(conf), "-g", "daemon off;"],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise RuntimeError(f"nginx did not start:\n{tail}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
