"""The served process (app/server.py): SIGTERM drains instead of dropping the listener."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e_server import REPO, free_port
from tests.sse_parse import check_grammar, parse_frames

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "tests.scripted_server", str(port), "30"],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        process.kill()
        process.wait()
        pytest.fail(f"the scripted server did not start: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
    yield process, url
    if process.poll() is None:
        process.kill()
    process.wait()
    process.stderr.close()  # type: ignore[union-attr]


def test_sigterm_says_not_ready_at_once_and_lets_streams_finish(
        server: tuple[subprocess.Popen[bytes], str]) -> None:
    """Issue 7, bug 2: from the moment SIGTERM arrives, /ready answers 503 (on a new
    connection: the listener stays open) and new generations get 503 with Retry-After, while
    the reply in flight streams to its end; then the process exits by itself, code 0."""
    process, url = server
    sid = httpx.post(url + "/v1/sessions").json()["id"]
    other = httpx.post(url + "/v1/sessions").json()["id"]
    first_token, body = threading.Event(), bytearray()

    def listen() -> None:
        with httpx.stream("POST", f"{url}/v1/sessions/{sid}/messages", headers=SSE,
                          json={"content": "go"}, timeout=30) as response:
            for chunk in response.iter_bytes():
                body.extend(chunk)
                if b"event: token" in body:
                    first_token.set()

    listener = threading.Thread(target=listen)
    listener.start()
    assert first_token.wait(10)
    os.kill(process.pid, signal.SIGTERM)
    time.sleep(0.3)  # the signal is handled between two event-loop steps

    ready = httpx.get(url + "/ready", timeout=5)
    assert ready.status_code == 503 and ready.headers["retry-after"]
    assert ready.json()["error"]["message"] == "not ready: draining"
    refused = httpx.post(f"{url}/v1/sessions/{other}/messages", json={"content": "x"}, timeout=5)
    assert refused.status_code == 503 and refused.headers["retry-after"]
    assert refused.json()["error"]["code"] == "not_ready"
    assert httpx.get(url + "/health", timeout=5).status_code == 200
    assert listener.is_alive(), "the reply should still be streaming"

    listener.join(30)
    events: list[dict[str, Any]] = check_grammar(parse_frames(bytes(body)))
    assert events[-1]["event"] == "done" and events[-1]["data"]["finish_reason"] == "stop"
    assert len(events) == 102
    assert process.wait(15) == 0
