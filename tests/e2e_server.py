"""The real service for end-to-end tests: uvicorn on a free port, the real vLLM engine with the
default model, started once per test session and shared by every e2e test."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 600  # a cold machine converts the default model first
# How long a reply outlives its last listener. A loaded CI machine took 1.46 s to resume a
# dropped stream (tests/test_e2e_resumable.py), after a 1 s grace had aborted it.
ORPHAN_GRACE_S = 5.0
LOG_WAIT_S = 10.0  # a line the service is about to write (a request's, as it ends)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    max_model_len: int
    orphan_grace_s: float
    ca_file: str | None = None  # the certificate of a TLS server started with its own

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx needs to trust this server."""
        return True if self.ca_file is None else ssl.create_default_context(cafile=self.ca_file)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def metric(self, name: str) -> float:
        """One unlabelled sample from /metrics."""
        text = httpx.get(self.url + "/metrics", verify=self.verify).text
        match = re.search(rf"^{name} ([0-9.e+-]+)$", text, re.M)
        assert match, f"{name} missing from /metrics"
        return float(match.group(1))

    def wait_for_metric(self, name: str, value: float, timeout_s: float = 3.0) -> None:
        """Until `name` reads `value`; read once more after the time is up, so that this
        process being kept off the CPU meanwhile fails nothing."""
        deadline = time.monotonic() + timeout_s
        while (read := self.metric(name)) != value:
            assert time.monotonic() < deadline, f"{name} is {read}, not {value}, {timeout_s} s on"
            time.sleep(0.05)

    def records(self) -> list[dict[str, Any]]:
        """The service's JSON log lines so far (vLLM's own lines are text)."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):  # the line being written as this reads
                    records.append(json.loads(line))
        return records

    def wait_for_record(self, wanted: Callable[[dict[str, Any]], bool],
                        timeout_s: float = LOG_WAIT_S) -> dict[str, Any]:
        """The first log line `wanted` picks, waiting for it to be written (a request's line
        comes as it ends)."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = next((record for record in self.records() if wanted(record)), None)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"no such line logged in {timeout_s} s:\n{self.log_tail()}")
            time.sleep(0.05)


def warm_prefix_cache(server: LiveServer, model: str, messages: list[dict[str, str]]) -> None:
    """Prefill `messages` once, so that replies compared at temperature 0 all read their
    prompt from vLLM's prefix cache. A cold prefill and a cached one round bf16 differently:
    on an Intel Xeon with AMX, "Say hello in one short sentence." gave "Hello" and "I" both
    at logprob -1.593 cold (37 tokens) and -1.498 / -1.623 cached (32 of them), so the first
    reply began with "I" and every later one with "Hello"."""
    response = httpx.post(server.url + "/v1/chat/completions", verify=server.verify, timeout=60,
                          json={"model": model, "messages": messages, "max_tokens": 1})
    assert response.status_code == 200, response.text


def start_server(extra_env: dict[str, str] | None = None, *, max_model_len: int = 2048,
                 orphan_grace_s: float = ORPHAN_GRACE_S, tls: tuple[Path, Path] | None = None,
                 port: int | None = None) -> LiveServer:
    """The real service; with `tls` (certificate, key) it serves https and wss; on `port`
    when given (a replica started again where a proxy expects it), else on a free one."""
    port = port or free_port()
    log_path = Path(tempfile.mkstemp(prefix="streamchat-e2e-", suffix=".log")[1])
    # Admission small enough that a burst test can go past it (test_e2e_admission.py).
    env = {**os.environ, "STREAMCHAT_PORT": str(port),
           "STREAMCHAT_MAX_MODEL_LEN": str(max_model_len),
           "STREAMCHAT_ORPHAN_GRACE_S": str(orphan_grace_s),
           "STREAMCHAT_MODEL_ALIASES": "open-autoglm",
           "STREAMCHAT_MAX_CONCURRENT_GENERATIONS": "4", "STREAMCHAT_MAX_QUEUE": "4",
           **(extra_env or {})}
    if tls is not None:
        env.update(STREAMCHAT_SSL_CERTFILE=str(tls[0]), STREAMCHAT_SSL_KEYFILE=str(tls[1]))
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([sys.executable, "-m", "app"], cwd=REPO, env=env,
                                   stdout=log_file, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    scheme = "https" if tls is not None else "http"
    server = LiveServer(f"{scheme}://127.0.0.1:{port}", process, log_path, max_model_len,
                        orphan_grace_s, str(tls[0]) if tls is not None else None)
    deadline, verify = time.monotonic() + START_TIMEOUT_S, server.verify
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with {process.returncode}:\n"
                                   f"{server.log_tail()}")
            try:
                if httpx.get(server.url + "/ready", timeout=2, verify=verify).status_code == 200:
                    return server
            except httpx.TransportError:
                pass
            time.sleep(0.5)
    except BaseException:
        stop_server(server)
        raise
    stop_server(server)
    raise RuntimeError(f"the service was not ready in {START_TIMEOUT_S} s:\n{server.log_tail()}")


def stop_server(server: LiveServer) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


@pytest.fixture(scope="session")
def live_server() -> Iterator[LiveServer]:
    try:
        server = start_server()
    except RuntimeError as exc:
        pytest.fail(f"could not start the real service: {exc}", pytrace=False)
    try:
        yield server
    finally:
        stop_server(server)
