"""A dead engine is restarted in place (app/engine/supervisor.py), on the real service: its
vLLM EngineCore process SIGKILLed, as the OOM killer would, mid-reply and then over and over.

One server for the module, whose engine these tests kill (never the session's shared one):
the first test kills it once and sees it come back, the second kills each new engine core as
soon as it appears until the process gives up (3 deaths within 5 minutes, the default).
Each fault's timeline is printed (`pytest -s`), not asserted: timing belongs in benchmarks/."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.e2e_server import LiveServer, start_server, stop_server
from tests.sse_parse import BackgroundStream, parse_frames
from tests.waiting import until_sync

RESTART_TIMEOUT_S = 420  # a new engine on 2 cores: 20-50 s; minutes when others load them
# Each test's bound, its module's server start included (pytest-timeout counts fixtures).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(2 * RESTART_TIMEOUT_S + 120)]

SSE = {"Accept": "text/event-stream"}
LONG_REPLY = {"max_tokens": 400, "ignore_eos": True, "temperature": 0}


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    live = start_server({"STREAMCHAT_LOG_FORMAT": "text"})
    try:
        yield live
    finally:
        stop_server(live)


def engine_cores(server: LiveServer) -> list[psutil.Process]:
    """The service's live vLLM engine core processes (titled VLLM::EngineCore by vLLM)."""
    cores = []
    try:
        children = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            if "EngineCore" in " ".join([child.name(), *child.cmdline()]) and (
                    child.status() != psutil.STATUS_ZOMBIE):
                cores.append(child)
        except psutil.Error:
            pass
    return cores


def with_descendants(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return [process]


def lingering(processes: list[psutil.Process], server: LiveServer) -> list[psutil.Process]:
    """Those still running, or dead but not reaped by the service (a zombie whose parent is
    the service); a zombie of another parent is for that parent (init, in a container) to
    reap."""
    left = []
    for process in processes:
        try:
            if process.is_running() and (process.status() != psutil.STATUS_ZOMBIE
                                         or process.ppid() == server.process.pid):
                left.append(process)
        except psutil.NoSuchProcess:
            pass
    return left


class ReadyWatch:
    """Polls /ready on a thread from before a fault: when it first said 503, and when 200
    again after that."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.first_503: float | None = None
        self.ready_again: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set() and self.ready_again is None:
                try:
                    status = client.get(self.url + "/ready").status_code
                except httpx.TransportError:
                    status = 0
                now = time.monotonic()
                if status == 503 and self.first_503 is None:
                    self.first_503 = now
                elif status == 200 and self.first_503 is not None:
                    self.ready_again = now
                self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_a_killed_engine_core_is_restarted_in_place(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        sid = client.post("/v1/sessions", json={}).json()["id"]
        first = client.post(f"/v1/sessions/{sid}/messages", headers=SSE,
                            json={"content": "Say hello.", "params": {"max_tokens": 8}})
        assert parse_frames(first.content)[-1]["event"] == "done"
        [core] = engine_cores(server)
        old_engine = with_descendants(core)
        stream = BackgroundStream(client, "POST", f"/v1/sessions/{sid}/messages", headers=SSE,
                                  json={"content": "Count to a thousand.", "params": LONG_REPLY})
        assert stream.first_token.wait(60)
        watch = ReadyWatch(server.url)
        core.kill()
        killed = time.monotonic()
        events = stream.events(timeout_s=30)
        ended = time.monotonic()
        assert events[-1]["event"] == "error", events[-3:]
        assert events[-1]["data"]["code"] == "engine_error"

        refused = client.post(f"/v1/sessions/{sid}/messages", headers=SSE,
                              json={"content": "Are you there?"})
        refused_at = time.monotonic()
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
        assert refused.json()["error"]["code"] == "engine_restarting"
        assert client.get("/health").status_code == 200  # alive: no orchestrator needed

        until_sync(lambda: watch.ready_again is not None, timeout_s=RESTART_TIMEOUT_S,
                   interval_s=0.2)
        watch.stop()
        assert watch.first_503 is not None and watch.ready_again is not None
        print(f"\nengine core killed mid-reply: terminal event after {ended - killed:.2f} s, "
              f"/ready 503 after {watch.first_503 - killed:.2f} s, a generation refused 503 "
              f"{refused_at - killed:.2f} s after, ready again after "
              f"{watch.ready_again - killed:.1f} s")

        # The same session in memory, and a new engine: one core, none of the old processes.
        again = client.post(f"/v1/sessions/{sid}/messages", headers=SSE,
                            json={"content": "Say hello again.", "params": {"max_tokens": 8}})
        assert parse_frames(again.content)[-1]["event"] == "done"
        messages = client.get(f"/v1/sessions/{sid}").json()["messages"]
        assert [(m["role"], m["status"]) for m in messages] == [
            ("user", "done"), ("assistant", "done"), ("user", "done"), ("assistant", "error"),
            ("user", "done"), ("assistant", "done")]
        [new_core] = engine_cores(server)
        assert new_core.pid != core.pid
        until_sync(lambda: not lingering(old_engine, server), timeout_s=10)
        metrics = client.get("/metrics").text
        assert "streamchat_engine_deaths_total 1.0" in metrics
        assert "streamchat_engine_restarts_total 1.0" in metrics
    log = server.log_path.read_text(errors="replace")
    assert "engine: died: its core process is gone; restarting it" in log
    assert "engine: restarted in" in log


def test_an_engine_that_keeps_dying_stops_the_process(server: LiveServer) -> None:
    """Each new engine core is killed as soon as it appears: within 3 deaths (counting the
    previous test's, whose window has not passed) the process exits 1."""
    cores: list[psutil.Process] = []
    killed: list[psutil.Process] = []  # the cores and what ran under them
    health = HealthWatch(server.url)
    began = time.monotonic()

    def new_core() -> psutil.Process | None:
        fresh = [c for c in engine_cores(server) if c not in cores]
        return fresh[0] if fresh else None

    while server.process.poll() is None and len(cores) < 3:
        until_sync(lambda: new_core() is not None or server.process.poll() is not None,
                   timeout_s=RESTART_TIMEOUT_S, interval_s=0.05)
        core = new_core()
        if core is None:
            break
        cores.append(core)
        killed.extend(with_descendants(core))
        core.kill()
    code = server.process.wait(timeout=RESTART_TIMEOUT_S)
    exited = time.monotonic()
    health.stop()
    assert code == 1
    print(f"\nan engine that keeps dying: {len(cores)} core(s) killed here, the process exited "
          f"{code} {exited - began:.1f} s after the first kill; /health said 503 before it "
          f"exited: {health.saw_503}")
    log = server.log_path.read_text(errors="replace")
    assert "giving up, the process exits" in log
    assert "stopped: the engine died 3 times within 300 s" in log
    until_sync(lambda: not lingering(killed, server), timeout_s=10)


class HealthWatch:
    """Polls /health on a thread until stopped: whether it ever answered 503."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.saw_503 = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        with httpx.Client(timeout=2) as client:
            while not self._stop.is_set():
                try:
                    self.saw_503 |= client.get(self.url + "/health").status_code == 503
                except httpx.TransportError:
                    pass
                self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
