"""deploy/nginx.conf's affinity, run by the real nginx in front of stub replicas (each answers
with its own name, no engine): which requests share a replica, where they go when it is down,
and that a replica added moves only its share. tests/test_e2e_nginx.py checks the same with
real replicas."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.nginx_server import Nginx

KEYS = 60  # conversations per check: enough that every replica gets some


class Stub:
    """A replica that answers every request with its name, until it is stopped."""

    def __init__(self, name: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = name.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = do_PATCH = answer

            def log_message(self, *args: object) -> None:
                pass

        self.name = name
        self.stopped = False
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.server.shutdown()
        self.server.server_close()  # connections to its port are refused from here on


@pytest.fixture
def stubs() -> Iterator[list[Stub]]:
    replicas = [Stub(f"replica-{i}") for i in range(3)]
    yield replicas
    for stub in replicas:
        stub.stop()


def start(stubs: list[Stub]) -> Nginx:
    return Nginx([stub.port for stub in stubs])


CLIENT = httpx.Client(timeout=10)  # one client: a new one per request costs ~20 ms


def served_by(nginx: Nginx, method: str, path: str, **headers: str) -> str:
    response = CLIENT.request(method, nginx.url + path, headers=headers, json={})
    assert response.status_code == 200, response.text
    return response.text


def session_routes(sid: str) -> list[tuple[str, str]]:
    base = f"/v1/sessions/{sid}"
    return [("GET", base), ("PATCH", base), ("DELETE", base), ("POST", base + "/messages"),
            ("GET", base + "/messages/m1"), ("GET", base + "/messages/m1/stream"),
            ("POST", base + "/messages/m1/cancel"), ("GET", base + "/ws")]


def chain_routes() -> list[tuple[str, str]]:
    # The stateless calls, and the paths that name what they started (resume, cancel).
    return [("POST", "/v1/chat/completions"), ("POST", "/v1/completions"),
            ("POST", "/v1/responses"), ("GET", "/v1/responses/resp_a"),
            ("GET", "/v1/responses/resp_b"), ("POST", "/v1/responses/resp_b/cancel"),
            ("GET", "/v1/chat/completions/streams/cs_1")]


def test_a_sessions_requests_share_one_replica(stubs: list[Stub]) -> None:
    nginx = start(stubs)
    try:
        homes = set()
        for k in range(KEYS):
            [home] = {served_by(nginx, m, p) for m, p in session_routes(f"s{k}")}
            homes.add(home)
        assert homes == {s.name for s in stubs}, "sessions should spread over every replica"
    finally:
        nginx.stop()


def test_a_chain_follows_its_affinity_header_else_its_client(stubs: list[Stub]) -> None:
    nginx = start(stubs)
    try:
        homes = set()
        for k in range(KEYS):
            [home] = {served_by(nginx, m, p, **{"X-Session-Affinity": f"conv-{k}"})
                      for m, p in chain_routes()}
            homes.add(home)
        assert homes == {s.name for s in stubs}
        # Without the header: one client's calls together, by its credentials...
        for k in range(5):
            auth = {"Authorization": f"Bearer key-{k}"}
            assert len({served_by(nginx, m, p, **auth) for m, p in chain_routes()}) == 1
        # ...or, without them, by its address (all of this test's calls come from one).
        assert len({served_by(nginx, m, p) for m, p in chain_routes()}) == 1
        # A session's path wins over the header: every client of a session meets on one.
        sid_home = served_by(nginx, "GET", "/v1/sessions/s-pinned")
        assert {served_by(nginx, "GET", "/v1/sessions/s-pinned",
                          **{"X-Session-Affinity": f"conv-{k}"}) for k in range(10)} == {sid_home}
    finally:
        nginx.stop()


def test_a_down_replicas_conversations_go_on_elsewhere_and_only_they_move(
        stubs: list[Stub]) -> None:
    nginx = start(stubs)
    try:
        before = {k: served_by(nginx, "GET", f"/v1/sessions/s{k}") for k in range(KEYS)}
        victim = stubs[0]
        victim.stop()
        after = {k: served_by(nginx, "GET", f"/v1/sessions/s{k}") for k in range(KEYS)}
        moved = {k for k in before if before[k] != after[k]}
        assert moved == {k for k in before if before[k] == victim.name}
        assert victim.name not in after.values()
        # Each moved conversation stays together on its next replica (the next on the ring).
        for k in moved:
            assert {served_by(nginx, m, p) for m, p in session_routes(f"s{k}")} == {after[k]}
    finally:
        nginx.stop()


def test_a_replica_added_takes_only_its_share(stubs: list[Stub]) -> None:
    two = start(stubs[:2])
    try:
        before = {k: served_by(two, "GET", f"/v1/sessions/s{k}") for k in range(KEYS)}
    finally:
        two.stop()
    three = start(stubs)
    try:
        after = {k: served_by(three, "GET", f"/v1/sessions/s{k}") for k in range(KEYS)}
    finally:
        three.stop()
    moved = {after[k] for k in before if before[k] != after[k]}
    assert moved == {stubs[2].name}, "only the new replica's share should move, all to it"
    # About a third moves (ketama: 160 points per replica); round robin would move most.
    assert 0.1 * KEYS < sum(before[k] != after[k] for k in before) < 0.6 * KEYS


def test_round_robin_without_the_hash_line_spreads_one_session(stubs: list[Stub]) -> None:
    # The benchmark's baseline (benchmarks/affinity_proxy.py drops the hash line): what the
    # file did before, turns of one session taken in turn by the replicas.
    nginx = Nginx([stub.port for stub in stubs], balance="round-robin")
    try:
        assert len({served_by(nginx, "GET", "/v1/sessions/s0") for _ in range(6)}) > 1
    finally:
        nginx.stop()
