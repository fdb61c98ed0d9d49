"""End to end: the image's cpu target, built with scripts/image.sh (podman, local bases, the
host's pip sources) and run as a user would, with the shared memory vLLM needs. Its layers are
cached outside the clone, so only the first build on a machine is slow (~6 min on 2 cores)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e_server import REPO, free_port
from tests.sse_parse import BackgroundStream, check_grammar, parse_frames
from tests.waiting import until_sync

# The build (cold: ~6 min here), the engine's start (~45 s) and the drain, each bounded below.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2400)]
IMAGE = "localhost/streamchat:cpu"
BUILD_TIMEOUT_S = 1800
READY_TIMEOUT_S = 300
SSE = {"Accept": "text/event-stream"}
# The drained reply streams for about REPLY_S at the container's own pace, measured first: still
# running when `podman stop` delivers SIGTERM on a fast machine, done well within the drain on
# a slow one. A fixed 150 tokens took 12 s in the container on a 2-core AVX2 machine (fp32,
# 12.5 tokens/s) and ~20 s at the slowest seen (7 tokens/s), but a CI run on another machine
# found /ready refusing connections without a 503 first (2026-12-03): the reply had likely
# ended before the stop's SIGTERM came, so there was nothing to drain.
REPLY_S = 20
DRAIN_TIMEOUT_S = 60  # 3x the reply: room for a pace misjudged from a short reply
# The drain, then what docs/deploying.md's --stop-timeout leaves for the rest, then SIGKILL.
STOP_TIMEOUT_S = DRAIN_TIMEOUT_S + 15


def podman(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """podman on the storage scripts/image.sh builds into."""
    return subprocess.run([str(REPO / "scripts" / "image.sh"), "podman", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout_s)


@dataclass
class Container:
    name: str
    url: str

    def state(self, field: str) -> str:
        return podman("inspect", "--format", f"{{{{.State.{field}}}}}", self.name).stdout.strip()

    def logs(self) -> str:
        result = podman("logs", self.name)
        return result.stdout + result.stderr


@pytest.fixture(scope="module")
def image() -> str:
    build = subprocess.run([str(REPO / "scripts" / "image.sh"), "build", "--tag", IMAGE],
                           cwd=REPO, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert build.returncode == 0, (build.stdout + build.stderr)[-6000:]
    return IMAGE


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[Container]:
    port = free_port()
    box = Container(f"streamchat-image-test-{os.getpid()}", f"http://127.0.0.1:{port}")
    started = podman("run", "-d", "--name", box.name, "--network", "host", "--cap-add", "SYS_NICE",
                     "--shm-size", "1g", "-e", f"STREAMCHAT_PORT={port}",
                     "-e", f"STREAMCHAT_DRAIN_TIMEOUT_S={DRAIN_TIMEOUT_S}", image)
    try:
        assert started.returncode == 0, started.stderr

        def ready() -> bool:
            assert box.state("Running") == "true", f"the container exited:\n{box.logs()[-6000:]}"
            try:
                return httpx.get(box.url + "/ready", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        until_sync(ready, READY_TIMEOUT_S, interval_s=1)
        yield box
    finally:
        podman("rm", "-f", "-t", "0", box.name)


def test_ready_and_a_streamed_chat(container: Container) -> None:
    assert httpx.get(container.url + "/ready").json()["status"] == "ready"
    sid = httpx.post(container.url + "/v1/sessions", json={}).json()["id"]
    response = httpx.post(f"{container.url}/v1/sessions/{sid}/messages", headers=SSE, timeout=60,
                          json={"content": "Name three colours.", "params": {"max_tokens": 24}})
    assert response.status_code == 200
    events = check_grammar(parse_frames(response.text))
    assert events[-1]["event"] == "done" and len(events) > 3
    assert "".join(e["data"]["text"] for e in events[1:-1]).strip()


def test_the_healthcheck_passes_once_ready(container: Container) -> None:
    # The image's HEALTHCHECK, run by podman in the container (no systemd here to time it).
    result = podman("healthcheck", "run", container.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "unhealthy" not in result.stdout


def test_every_process_runs_as_the_user_and_its_group(container: Container) -> None:
    identity = podman("exec", container.name, "id").stdout.strip()
    assert identity == "uid=10001(streamchat) gid=10001(streamchat) groups=10001(streamchat)"
    # tini, the service and the engine's processes alike: real, effective, saved and fs ids.
    status = podman("exec", container.name, "sh", "-c", "cat /proc/[0-9]*/status").stdout
    uids, gids = re.findall(r"^Uid:\s+(.+)$", status, re.M), re.findall(r"^Gid:\s+(.+)$", status, re.M)
    assert len(uids) >= 3
    assert {word for line in uids + gids for word in line.split()} == {"10001"}


def test_the_engine_writes_its_caches_beside_streamchats(container: Container) -> None:
    owners = podman("exec", container.name, "stat", "-c", "%u:%g %n", "/home/streamchat/.cache",
                    "/home/streamchat/.cache/streamchat").stdout.split("\n")
    assert [line.split()[0] for line in owners if line] == ["10001:10001"] * 2
    assert "PermissionError" not in container.logs()


def tokens_in(container: Container, seconds: float) -> int:
    """About how many tokens the container streams in `seconds`, from a short reply's pace
    (its `timings`), within 150 (~20 s at the slowest seen) and 1,500 (short of the context)."""
    sid = httpx.post(container.url + "/v1/sessions", json={}).json()["id"]
    response = httpx.post(f"{container.url}/v1/sessions/{sid}/messages", headers=SSE, timeout=60,
                          json={"content": "Count.", "params": {"max_tokens": 32,
                                                                "ignore_eos": True}})
    done = check_grammar(parse_frames(response.text))[-1]
    return max(150, min(1500, round(done["data"]["timings"]["tokens_per_s"] * seconds)))


def test_sigterm_drains_the_reply_in_flight_and_exits_0(container: Container) -> None:
    """Last: it stops the container. The reply under way when podman sends SIGTERM finishes."""
    sid = httpx.post(container.url + "/v1/sessions", json={}).json()["id"]
    reply_tokens = tokens_in(container, REPLY_S)
    with httpx.Client(timeout=120) as client:
        body = {"content": "Tell me a long story.",
                "params": {"max_tokens": reply_tokens, "ignore_eos": True}}
        stream = BackgroundStream(client, "POST", f"{container.url}/v1/sessions/{sid}/messages",
                                  headers=SSE, json=body)
        assert stream.first_token.wait(60), "no token within 60 s"
        stop = subprocess.Popen([str(REPO / "scripts" / "image.sh"), "podman", "stop", "-t",
                                 str(STOP_TIMEOUT_S), container.name], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        def draining() -> bool:
            try:
                return httpx.get(container.url + "/ready", timeout=5).status_code == 503
            except httpx.TransportError:  # stopped already: had the reply ended before?
                pytest.fail(f"/ready refused before it answered 503:\n{container.logs()[-3000:]}")

        try:
            until_sync(draining, 30, interval_s=0.1)
            events = check_grammar(stream.events(STOP_TIMEOUT_S + 15))
        finally:
            stopped = stop.communicate(timeout=STOP_TIMEOUT_S + 30)[0]
    assert stop.returncode == 0, stopped
    assert events[-1]["event"] == "done", (events[-1], container.logs()[-3000:])
    assert events[-1]["data"]["usage"]["completion_tokens"] == reply_tokens
    assert container.state("ExitCode") == "0"
    logs = container.logs()
    assert "SIGTERM: draining 1 generation(s)" in logs and "drained; stopping" in logs, logs[-3000:]
