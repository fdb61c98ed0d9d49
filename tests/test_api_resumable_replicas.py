"""Resumable OpenAI streams across two replicas sharing one real Redis, each with a scripted
engine (app/replies/detached.py over app/streams/redis.py): a stream started on one is resumed
through the other, live and after its end, with the same bytes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.redis_server import RedisServer
from tests.test_api_resumable import CHAT, RESUMABLE, head_of, resume_url

TOKENS = [f"w{i} " for i in range(40)]


@pytest.fixture
def replicas(redis_server: RedisServer) -> Iterator[tuple[TestClient, TestClient, ScriptedEngine]]:
    redis_server.flush()
    settings = Settings(redis_url=redis_server.url, orphan_grace_s=2)
    engine_a = ScriptedEngine(tokens=TOKENS, delay_s=0.02)
    with TestClient(create_app(settings, engine_a)) as a, \
            TestClient(create_app(settings, ScriptedEngine())) as b:
        yield a, b, engine_a


def test_a_stream_from_one_replica_is_resumed_through_the_other(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b, engine_a = replicas
    with a.stream("POST", "/v1/chat/completions", json=CHAT, headers=RESUMABLE) as response:
        stream_id, head = response.headers["x-stream-id"], head_of(response, 5)
    rest = b.get(resume_url(stream_id), headers={"Last-Event-ID": "5"})  # live, from a's log
    assert rest.status_code == 200 and rest.headers["x-stream-id"] == stream_id
    assert rest.text.endswith("id: 41\ndata: [DONE]\n\n")
    assert not engine_a.aborted
    # Once it ended, either replica replays it whole, byte for byte what was streamed.
    for replica in (a, b):
        assert replica.get(resume_url(stream_id)).text == head + rest.text
    assert b.get(resume_url(stream_id), headers={"Last-Event-ID": "41"}).text == \
        "id: 41\ndata: [DONE]\n\n"


def test_unknown_on_every_replica_is_a_404(replicas) -> None:  # type: ignore[no-untyped-def]
    _, b, _ = replicas
    response = b.get(resume_url("chatcmpl-nope"))
    assert response.status_code == 404 and response.json()["error"]["code"] == "stream_not_found"


def test_a_stream_whose_replica_died_ends_on_the_other(replicas, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    """Its replica wrote two chunks, then died: nobody holds the stream's lease (app/leases/),
    so a follower on another replica gets what was recorded, then the end."""
    import asyncio

    from redis.asyncio import Redis

    from app.streams.redis import RedisReplyLogs

    _, b, _ = replicas
    stream_id = "chatcmpl-orphan"

    async def never_live(kind: str, lease_id: str, holder: str) -> bool:
        return False

    async def die_mid_stream() -> None:
        redis = Redis.from_url(redis_server.url)
        logs = RedisReplyLogs(redis, never_live)
        log = logs.open(stream_id, stream_id)
        log.append("start", {"owner": None})
        for word in ("Hel", "lo"):
            log.append("chunk", {"id": stream_id, "choices": [{"delta": {"content": word}}]})
        await logs.close()  # written to Redis; no `done`: the replica died first
        await redis.aclose()

    asyncio.run(die_mid_stream())
    followed = b.get(resume_url(stream_id), headers={"Last-Event-ID": "1"})
    assert followed.status_code == 200
    assert followed.text.startswith("id: 2\ndata: ") and '"lo"' in followed.text
    assert followed.text.endswith("id: 3\ndata: [DONE]\n\n")
