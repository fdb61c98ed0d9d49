"""Authentication over every route and transport (app/api/http/auth.py), table-driven: no key, a bad
key, an expired JWT, the wrong scope, another key's session -> 401 / 401 / 401 / 403 / 404,
with nothing in the error body that tells more."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from app.auth import UNAUTHENTICATED
from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine

KEYS = "alice:sk-alice-1:chat,bob:sk-bob-1:chat,ops:sk-ops-1:admin"
SECRET, AUDIENCE = "jwt-test-secret-of-32-bytes-or-more!", "streamchat"
ALICE, BOB, OPS = ("sk-alice-1", "sk-bob-1", "sk-ops-1")
SSE = {"Accept": "text/event-stream"}


def token(sub: str = "carol", exp: float | None = None, aud: str = AUDIENCE, **claims: Any) -> str:
    body = {"sub": sub, "aud": aud, "exp": int(exp if exp is not None else time.time() + 300),
            **claims}
    return jwt.encode(body, SECRET, algorithm="HS256")


def auth(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(api_keys=KEYS, jwt_secret=SECRET, jwt_audience=AUDIENCE,
                        default_max_tokens=8)
    with TestClient(create_app(settings, ScriptedEngine())) as test_client:
        yield test_client


@pytest.fixture
def alices(client: TestClient) -> dict[str, str]:
    """A session of alice's with a finished reply: the ids every session route needs."""
    sid = client.post("/v1/sessions", headers=auth(ALICE)).json()["id"]
    reply = client.post(f"/v1/sessions/{sid}/messages", json={"content": "hi"},
                        headers={**auth(ALICE), **SSE})
    mid = reply.text.split('"message_id":"')[1].split('"')[0]
    return {"sid": sid, "mid": mid}


CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}
# (method, path template, body): every route that needs the chat scope.
CHAT_ROUTES: list[tuple[str, str, Any]] = [
    ("POST", "/v1/sessions", {}),
    ("GET", "/v1/sessions", None),
    ("GET", "/v1/sessions/{sid}", None),
    ("PATCH", "/v1/sessions/{sid}", {"title": "taken"}),
    ("DELETE", "/v1/sessions/{sid}", None),
    ("POST", "/v1/sessions/{sid}/messages", {"content": "x"}),
    ("GET", "/v1/sessions/{sid}/messages/{mid}", None),
    ("GET", "/v1/sessions/{sid}/messages/{mid}/stream", None),
    ("POST", "/v1/sessions/{sid}/messages/{mid}/cancel", None),
    ("POST", "/v1/chat/completions", CHAT),
    ("POST", "/v1/completions", {"model": "scripted", "prompt": "x"}),
    ("POST", "/v1/engines/scripted/completions", {"prompt": "x"}),
    ("GET", "/v1/models", None),
    ("GET", "/no/such/route", None),
]
SESSION_ROUTES = [route for route in CHAT_ROUTES if "{sid}" in route[1]]
BAD = {
    "no key": {},
    "bad key": auth("sk-alice-2"),
    "not bearer": {"Authorization": f"Basic {ALICE}"},
    "expired JWT": auth(token(exp=time.time() - 10)),
    "JWT for another audience": auth(token(aud="elsewhere")),
    "JWT signed with another secret": auth(jwt.encode(
        {"sub": "x", "aud": AUDIENCE, "exp": int(time.time()) + 60}, "x" * 40, algorithm="HS256")),
}


def call(client: TestClient, method: str, path: str, body: Any, headers: dict[str, str],
         ids: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": headers}
    if body is not None:
        kwargs["json"] = body
    return client.request(method, path.format(**ids), **kwargs)


def assert_refused(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["code"] == code
    for secret in ("alice", "bob", "sk-", SECRET, "expired", "audience", "signature"):
        assert secret not in error["message"]


@pytest.mark.parametrize("case", BAD)
@pytest.mark.parametrize(("method", "path", "body"), CHAT_ROUTES)
def test_bad_credentials_are_401_everywhere(client: TestClient, alices: dict[str, str],
                                           case: str, method: str, path: str, body: Any) -> None:
    response = call(client, method, path, body, BAD[case], alices)
    assert_refused(response, 401, "unauthorized")
    assert response.json()["error"]["message"] == UNAUTHENTICATED
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path", "body"), CHAT_ROUTES)
def test_a_key_without_the_chat_scope_is_403(client: TestClient, alices: dict[str, str],
                                            method: str, path: str, body: Any) -> None:
    assert_refused(call(client, method, path, body, auth(OPS), alices), 403, "forbidden")


@pytest.mark.parametrize(("method", "path", "body"), SESSION_ROUTES)
def test_another_keys_session_is_404_as_if_it_did_not_exist(
        client: TestClient, alices: dict[str, str], method: str, path: str, body: Any) -> None:
    for other in (auth(BOB), auth(token(sub="alice-impostor"))):
        response = call(client, method, path, body, other, alices)
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "session_not_found"
    mine = client.get(f"/v1/sessions/{alices['sid']}", headers=auth(ALICE))
    assert mine.status_code == 200 and mine.json()["title"] is None  # untouched


def test_each_key_lists_only_its_own_sessions(client: TestClient, alices: dict[str, str]) -> None:
    mine = [s["id"] for s in client.get("/v1/sessions", headers=auth(ALICE)).json()["data"]]
    assert mine == [alices["sid"]]
    assert client.get("/v1/sessions", headers=auth(BOB)).json()["data"] == []


def test_a_jwt_subject_owns_its_sessions(client: TestClient) -> None:
    carol = auth(token(sub="carol", scope="chat"))
    sid = client.post("/v1/sessions", headers=carol).json()["id"]
    assert client.get(f"/v1/sessions/{sid}", headers=carol).status_code == 200
    assert client.get(f"/v1/sessions/{sid}", headers=auth(token(sub="dave"))).status_code == 404


@pytest.mark.parametrize("path", ["/health", "/ready", "/", "/static/chat.js"])
def test_health_ready_and_the_page_need_no_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


def test_metrics_need_admin(client: TestClient) -> None:
    assert_refused(client.get("/metrics"), 401, "unauthorized")
    assert_refused(client.get("/metrics", headers=auth(ALICE)), 403, "forbidden")
    assert client.get("/metrics", headers=auth(OPS)).status_code == 200


def rejected(client: TestClient, reason: str) -> float:
    line = f'streamchat_rejected_requests_total{{reason="{reason}"}} '
    text = client.get("/metrics").text
    return float(text.split(line)[1].split("\n")[0])


def test_metrics_can_be_public_and_count_refusals() -> None:
    settings = Settings(api_keys=KEYS, metrics_public=True)
    with TestClient(create_app(settings, ScriptedEngine())) as client:
        before = rejected(client, "auth")
        assert_refused(client.get("/v1/models"), 401, "unauthorized")
        assert_refused(client.get("/v1/models", headers=auth(OPS)), 403, "forbidden")
        assert rejected(client, "auth") == before + 2


# -- WebSocket ------------------------------------------------------------------------------

@pytest.mark.parametrize("case", BAD)
def test_a_websocket_with_bad_credentials_is_refused_at_the_handshake(
        client: TestClient, alices: dict[str, str], case: str) -> None:
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect(f"/v1/sessions/{alices['sid']}/ws", headers=BAD[case]):
            pass
    assert_refused(denied.value, 401, "unauthorized")


def test_a_websocket_without_the_chat_scope_is_403(client: TestClient,
                                                   alices: dict[str, str]) -> None:
    with pytest.raises(WebSocketDenialResponse) as denied:
        with client.websocket_connect(f"/v1/sessions/{alices['sid']}/ws", headers=auth(OPS)):
            pass
    assert_refused(denied.value, 403, "forbidden")


def test_a_browser_websocket_carries_its_key_as_a_subprotocol(
        client: TestClient, alices: dict[str, str]) -> None:
    url = f"/v1/sessions/{alices['sid']}/ws"
    with client.websocket_connect(url, subprotocols=["streamchat", f"bearer.{ALICE}"]) as ws:
        assert ws.accepted_subprotocol == "streamchat"  # never the key itself, when avoidable
        ws.send_json({"type": "message", "content": "hi"})
        frames = [ws.receive_json() for _ in range(3)]
        assert frames[0]["type"] == "start"
    with pytest.raises(WebSocketDenialResponse):
        with client.websocket_connect(url, subprotocols=["streamchat", "bearer.sk-nope"]):
            pass


def test_another_keys_session_socket_closes_4404(client: TestClient,
                                                alices: dict[str, str]) -> None:
    with client.websocket_connect(f"/v1/sessions/{alices['sid']}/ws", headers=auth(BOB)) as ws, \
            pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 4404


def test_a_websocket_resume_of_another_keys_reply_is_404(client: TestClient,
                                                        alices: dict[str, str]) -> None:
    bobs = client.post("/v1/sessions", headers=auth(BOB)).json()["id"]
    with client.websocket_connect(f"/v1/sessions/{bobs}/ws", headers=auth(BOB)) as ws:
        ws.send_json({"type": "resume", "message_id": alices["mid"], "after": -1})
        error = ws.receive_json()
    assert (error["type"], error["status"]) == ("error", 4404)
