"""What another site's page may do (app/api/http/browser_guard.py): the Host table, the Origin table
for WebSockets and HTTP, and CORS for the origins listed, streaming and not."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient, WebSocketDenialResponse

from app.api.http.browser_guard import BrowserGuard
from app.errors import BadHost, HostNotAllowed, OriginNotAllowed
from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine

APP_ORIGIN = "http://app.example:3000"  # a web app on another origin
ATTACKER = "http://attacker.example"
API_HEADERS = ("authorization", "content-type", "last-event-id", "x-request-id",
               "x-stream-resumable")
EXPOSED = ("x-request-id", "x-stream-id", "retry-after")
CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}


def serve(**settings: Any) -> TestClient:
    return TestClient(create_app(Settings(orphan_grace_s=0.2, **settings), ScriptedEngine()))


@pytest.fixture
def local() -> Iterator[TestClient]:
    """The defaults: listening on 127.0.0.1, no keys, no CORS origins."""
    with serve() as client:
        yield client


@pytest.fixture
def cors() -> Iterator[TestClient]:
    with serve(cors_origins=APP_ORIGIN) as client:
        yield client


# -- Host ------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1", "127.0.0.1:8000",
                                  "127.0.0.2:1", "[::1]", "[::1]:8000", "app.localhost:8000",
                                  "LOCALHOST:8000"])
@pytest.mark.parametrize("path", ["/v1/models", "/health", "/ready", "/"])
def test_loopback_hosts_are_served_by_default(local: TestClient, host: str, path: str) -> None:
    assert local.get(path, headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "10.0.0.5:8000",
                                  "localhost.attacker.example", "127.0.0.1.nip.io:8000"])
@pytest.mark.parametrize("path", ["/v1/models", "/v1/sessions", "/health", "/"])
def test_a_foreign_host_is_421_in_the_error_shape(local: TestClient, host: str,
                                                  path: str) -> None:
    """DNS rebinding: the attacker's name still arrives in Host."""
    response = local.get(path, headers={"host": host})
    assert response.status_code == 421
    error = response.json()["error"]
    assert error["code"] == "host_not_allowed" and "STREAMCHAT_ALLOWED_HOSTS" in error["message"]


def test_a_foreign_host_cannot_open_a_websocket(local: TestClient) -> None:
    sid = local.post("/v1/sessions").json()["id"]
    with pytest.raises(WebSocketDenialResponse) as denied:
        with local.websocket_connect(f"ws://attacker.example:8000/v1/sessions/{sid}/ws"):
            pass
    assert denied.value.status_code == 421


@pytest.mark.parametrize(("hosts", "origin", "error"), [
    (("loopback",), None, BadHost),         # no Host at all
    (None, "http://localhost", BadHost),    # a page's request always names its host
])
def test_a_missing_host_is_400(hosts: tuple[str, ...] | None, origin: str | None,
                               error: type[Exception]) -> None:
    guard = BrowserGuard(lambda *a: None, hosts, ())  # type: ignore[arg-type, return-value]
    with pytest.raises(error) as raised:
        guard.check(None, origin)
    assert not isinstance(raised.value, HostNotAllowed)  # 400, not 421


def test_a_missing_host_passes_when_any_host_is_served() -> None:
    BrowserGuard(lambda *a: None, None, ()).check(None, None)  # type: ignore[arg-type, return-value]


def test_listening_beyond_loopback_serves_any_host() -> None:
    with serve(host="0.0.0.0") as client:
        assert client.get("/v1/models", headers={"host": "10.0.0.5:8000"}).status_code == 200


def test_allowed_hosts_replace_the_default() -> None:
    with serve(allowed_hosts="chat.example.com,*.internal.example:8000") as client:
        assert client.get("/health", headers={"host": "chat.example.com"}).status_code == 200
        assert client.get("/health", headers={"host": "a.internal.example:8000"}).status_code == 200
        assert client.get("/health", headers={"host": "a.internal.example:9"}).status_code == 421
        assert client.get("/health", headers={"host": "localhost"}).status_code == 421


# -- Origin ----------------------------------------------------------------------------------

def _ws(client: TestClient, origin: str | None) -> int:
    """The handshake's status: 101 accepted, else the refusal's."""
    sid = client.post("/v1/sessions").json()["id"]
    headers = {"origin": origin} if origin is not None else {}
    try:
        with client.websocket_connect(f"/v1/sessions/{sid}/ws", headers=headers):
            return 101
    except WebSocketDenialResponse as denied:
        assert denied.json()["error"]["code"] == "origin_not_allowed"
        return denied.status_code


@pytest.mark.parametrize(("origin", "status"), [
    (None, 101),                           # SDKs, curl, the websockets library
    ("http://localhost", 101),             # the page's own (Host: localhost)
    ("https://localhost", 101),            # the same page behind TLS
    ("http://localhost:3000", 403),        # another port is another origin
    (ATTACKER, 403),
    ("null", 403),                         # a sandboxed frame, a file:// page
    (APP_ORIGIN, 403),                     # listed nowhere by default
])
def test_websocket_origins_by_default(local: TestClient, origin: str | None, status: int) -> None:
    assert _ws(local, origin) == status


@pytest.mark.parametrize(("origin", "status"), [
    (None, 101), ("http://localhost", 101), (APP_ORIGIN, 101), (ATTACKER, 403)])
def test_websocket_origins_with_cors_origins(cors: TestClient, origin: str | None,
                                             status: int) -> None:
    assert _ws(cors, origin) == status


def test_any_origin_with_a_star() -> None:
    with serve(cors_origins="*") as client:
        assert _ws(client, ATTACKER) == 101


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/x-www-form-urlencoded", b'{"content": "hi"}'),  # JSON in a form's clothes
    ("text/plain", b'{"content": "hi"}'),
    ("multipart/form-data; boundary=x", b"--x--"),
])
def test_a_simple_post_from_another_site_is_refused_before_any_work(
        local: TestClient, content_type: str, body: bytes) -> None:
    """What a page may send without a preflight: refused with 403, nothing created."""
    before = local.get("/v1/sessions").json()["data"]
    response = local.post("/v1/sessions", content=body,
                          headers={"origin": ATTACKER, "content-type": content_type})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert local.get("/v1/sessions").json()["data"] == before


def test_the_page_own_posts_pass(local: TestClient) -> None:
    response = local.post("/v1/sessions", json={}, headers={"origin": "http://localhost"})
    assert response.status_code == 201


def _rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("streamchat_rejected_requests_total", {"reason": reason}) or 0


def test_refusals_are_counted(local: TestClient) -> None:
    before = _rejected("origin"), _rejected("host")
    local.get("/v1/models", headers={"origin": ATTACKER})
    local.get("/v1/models", headers={"host": "attacker.example"})
    local.get("/v1/models", headers={"host": "attacker.example"})
    assert (_rejected("origin"), _rejected("host")) == (before[0] + 1, before[1] + 2)


def test_refusal_errors_are_distinct() -> None:
    assert issubclass(HostNotAllowed, BadHost) and not issubclass(OriginNotAllowed, BadHost)


# -- CORS ------------------------------------------------------------------------------------

def _preflight(client: TestClient, origin: str, method: str = "POST") -> Any:
    return client.options("/v1/chat/completions", headers={
        "origin": origin, "access-control-request-method": method,
        "access-control-request-headers": ",".join(API_HEADERS)})


def test_no_cors_by_default(local: TestClient) -> None:
    response = _preflight(local, APP_ORIGIN)
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


def test_a_preflight_from_a_listed_origin(cors: TestClient) -> None:
    response = _preflight(cors, APP_ORIGIN)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    allowed = response.headers["access-control-allow-headers"].lower()
    assert all(header in allowed for header in API_HEADERS)
    assert {"GET", "POST", "DELETE"} <= set(
        response.headers["access-control-allow-methods"].replace(" ", "").split(","))
    assert _preflight(cors, ATTACKER).status_code == 403


def _cors_headers(response: Any) -> None:
    assert response.headers["access-control-allow-origin"] == APP_ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert all(header in exposed for header in EXPOSED)


def test_cors_on_plain_and_streamed_answers(cors: TestClient) -> None:
    origin = {"origin": APP_ORIGIN}
    _cors_headers(cors.get("/v1/models", headers=origin))
    _cors_headers(cors.post("/v1/chat/completions", json=CHAT, headers=origin))
    with cors.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True},
                     headers=origin) as streamed:
        _cors_headers(streamed)
        assert b"data: [DONE]" in b"".join(streamed.iter_bytes())
    sid = cors.post("/v1/sessions", headers=origin).json()["id"]
    with cors.stream("POST", f"/v1/sessions/{sid}/messages", json={"content": "hi"},
                     headers={**origin, "accept": "text/event-stream"}) as session_stream:
        _cors_headers(session_stream)
        assert b"event: done" in b"".join(session_stream.iter_bytes())
    with cors.stream("POST", "/v1/responses", headers=origin, json={
            "model": "scripted", "input": "hi", "stream": True}) as responses:
        _cors_headers(responses)
        assert b"response.completed" in b"".join(responses.iter_bytes())


def test_cors_on_refusals_so_the_page_can_read_them() -> None:
    with serve(cors_origins=APP_ORIGIN, api_keys="alice:sk-a:chat") as client:
        refused = client.get("/v1/models", headers={"origin": APP_ORIGIN})
        assert refused.status_code == 401
        _cors_headers(refused)
        assert client.get("/v1/models", headers={
            "origin": APP_ORIGIN, "authorization": "Bearer sk-a"}).status_code == 200


def test_a_star_answers_any_origin() -> None:
    with serve(cors_origins="*") as client:
        response = client.get("/v1/models", headers={"origin": ATTACKER})
        assert response.headers["access-control-allow-origin"] == "*"
