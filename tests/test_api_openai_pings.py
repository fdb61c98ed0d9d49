"""Keep-alive comments on OpenAI streams (app/api/http/sse.py `ping_s`): a `: ping` after any
silence of the interval (queued, a long prefill, a slow token), none while chunks flow."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from app.api.http import sse
from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine

CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
INTERVAL_S = 0.1


def pieces(client: TestClient, path: str, body: dict[str, Any]) -> list[str]:
    """The stream as a list of "ping" and "data" in the order they came."""
    text = client.post(path, json=body).text
    out = []
    for block in text.split("\n\n"):
        if block.startswith(": ping"):
            out.append("ping")
        elif "data: " in block:
            out.append("data")
    return out


@pytest.fixture
def fast_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "PING_INTERVAL_S", INTERVAL_S)


def test_the_default_interval_is_15_s() -> None:
    assert sse.PING_INTERVAL_S == 15.0


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_pings_during_a_long_prefill_and_none_while_chunks_flow(fast_pings: None,
                                                                path: str) -> None:
    engine = ScriptedEngine(tokens=["a"] * 10, prefill_s=0.45, delay_s=0.005)
    body = CHAT if path.endswith("chat/completions") else {"model": "scripted", "prompt": "Hi",
                                                           "stream": True}
    with TestClient(create_app(Settings(), engine)) as client:
        got = pieces(client, path, body)
    first = got.index("data")
    assert got[:first] == ["ping"] * first and 3 <= first <= 5, got
    assert "ping" not in got[first:], got  # 10 tokens 5 ms apart: never silent for 100 ms


def test_pings_between_slow_chunks(fast_pings: None) -> None:
    engine = ScriptedEngine(tokens=["a", "b", "c"], delay_s=0.35)
    with TestClient(create_app(Settings(), engine)) as client:
        got = pieces(client, "/v1/chat/completions", CHAT)
    assert got.count("data") == 4  # three chunks and [DONE]
    between = got[got.index("data"):]
    assert between.count("ping") >= 4, got  # ~3 pings before each of the next two tokens
    assert between[-2:] == ["data", "data"]  # the last token, then [DONE] at once


def test_the_frame_after_a_ping_starts_with_an_empty_comment(fast_pings: None) -> None:
    engine = ScriptedEngine(tokens=["a"], prefill_s=0.25)
    with TestClient(create_app(Settings(), engine)) as client:
        text = client.post("/v1/chat/completions", json=CHAT).text
    assert ": ping\n\n:\n\ndata: " in text
