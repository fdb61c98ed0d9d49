"""Debian's real nginx running deploy/nginx.conf, for the end-to-end tests (no silent skip: it must
be installed, as `make test` does). The rewrite of the file for a test machine (listen port,
replicas' addresses, pid, log and temporary paths) is benchmarks/affinity_proxy.py's, shared
with `python -m benchmarks affinity`."""

from __future__ import annotations

import time

import pytest

from benchmarks.affinity_proxy import Balance, NginxProcess, nginx_binary


class Nginx(NginxProcess):
    def __init__(self, upstreams: list[int], balance: Balance = "affine") -> None:
        if nginx_binary() is None:
            pytest.fail("nginx is not installed; `make test` installs it (apt-get install nginx)",
                        pytrace=False)
        try:
            super().__init__(upstreams, balance)
        except RuntimeError as exc:
            pytest.fail(str(exc), pytrace=False)

    def logged(self, text: str, timeout_s: float = 5) -> bool:
        """Whether an access log line holds `text` (a line is written once its response has
        been sent, so it may come just after the client has the response)."""
        path, deadline = self.prefix / "access.log", time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if path.exists() and text in path.read_text(errors="replace"):
                return True
            time.sleep(0.05)
        return False
