"""Load shedding (app/api/http/shed.py): a generation the queue could not hold is refused before
its request is read; everything else goes on to its route."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import orjson
import pytest

from app.settings import Settings
from tests.asgi import LeavingClient
from tests.conftest import Running, Start
from tests.fakes import ScriptedEngine
from tests.waiting import until

CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 50}
FULL = Settings(max_concurrent_generations=1, max_queue=0)
HELD: set[asyncio.Task[None]] = set()  # the requests holding the place, until the app stops


async def call(app: Running, method: str, path: str, body: bytes | None) -> dict[str, Any]:
    """The response's status, headers and body; `body` None: reading it fails the test."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if body is None:
            pytest.fail("the request's body was read")
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = app.scope(method, path, {"content-type": "application/json"})
    await asyncio.wait_for(app.app(scope, receive, send), 5)
    start = sent[0]
    return {"status": start["status"], "headers": dict(start["headers"]),
            "body": b"".join(m.get("body", b"") for m in sent[1:])}


async def full(running: Start, engine: ScriptedEngine) -> Running:
    """The app with its one place taken and no room to wait."""
    app = await running(FULL, engine)
    holder = LeavingClient(json.dumps({**CHAT, "max_tokens": 200}).encode(), after_chunks=None)
    scope = app.scope("POST", "/v1/chat/completions", {"content-type": "application/json"})
    HELD.add(asyncio.create_task(app.app(scope, holder.receive, holder.send)))
    await until(lambda: app.services.chat.gate.admission.active == 1)
    return app


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions", "/v1/responses",
                                  "/v1/engines/scripted/completions",
                                  "/v1/sessions/ses_x/messages"])
async def test_a_full_queue_refuses_a_generation_before_reading_it(running: Start,
                                                                   path: str) -> None:
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.05)
    app = await full(running, engine)
    answer = await call(app, "POST", path, None)
    assert answer["status"] == 429 and int(answer["headers"][b"retry-after"]) >= 1
    assert orjson.loads(answer["body"])["error"]["code"] == "queue_full"
    assert len(engine.prompts) == 1  # only the generation holding the place


async def test_what_starts_no_generation_goes_on_to_its_route(running: Start) -> None:
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.05)
    app = await full(running, engine)
    cancel = await call(app, "POST", "/v1/responses/resp_unknown/cancel", b"")
    assert cancel["status"] == 404
    created = await call(app, "POST", "/v1/sessions", b"{}")
    assert created["status"] in (200, 201)


async def test_with_room_a_bad_request_is_still_a_400(running: Start) -> None:
    app = await running(FULL, ScriptedEngine())
    answer = await call(app, "POST", "/v1/chat/completions", b"{")
    assert answer["status"] == 400


async def test_a_draining_replica_says_503_not_429(running: Start) -> None:
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.05)
    app = await full(running, engine)
    app.services.chat.gate.lifecycle.drain()
    answer = await call(app, "POST", "/v1/chat/completions", json.dumps(CHAT).encode())
    assert answer["status"] == 503  # as the generation path says it, body read
    assert "draining" in orjson.loads(answer["body"])["error"]["message"]
