"""Two replicas sharing one real Redis, each with a scripted engine (app/replies/replicas.py,
app/leases/, app/streams/redis.py): sessions, streams, cancels and crashed replies cross from one to the
other."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.redis_server import RedisServer
from tests.sse_parse import check_grammar, parse_frames

SSE = {"Accept": "text/event-stream"}


@pytest.fixture
def replicas(redis_server: RedisServer) -> Iterator[tuple[TestClient, TestClient, ScriptedEngine]]:
    redis_server.flush()
    settings = Settings(redis_url=redis_server.url, orphan_grace_s=0.5)
    engine_a = ScriptedEngine(tokens=[f"w{i} " for i in range(60)], delay_s=0.01)
    with TestClient(create_app(settings, engine_a)) as a, \
            TestClient(create_app(settings, ScriptedEngine())) as b:
        yield a, b, engine_a


def test_a_session_created_on_one_replica_continues_on_the_other(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = replicas
    sid = a.post("/v1/sessions", json={"system": "S"}).json()["id"]
    first = a.post(f"/v1/sessions/{sid}/messages", json={"content": "one"}, headers=SSE)
    check_grammar(parse_frames(first.text))
    second = b.post(f"/v1/sessions/{sid}/messages", json={"content": "two"}, headers=SSE)
    assert check_grammar(parse_frames(second.text))[-1]["event"] == "done"
    messages = a.get(f"/v1/sessions/{sid}").json()["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["one", "two"]
    assert all(m["status"] == "done" for m in messages)
    assert sid in [s["id"] for s in b.get("/v1/sessions").json()["data"]]


def test_a_reply_from_one_replica_is_followed_and_resumed_through_the_other(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = replicas
    sid = a.post("/v1/sessions").json()["id"]
    mid = a.post(f"/v1/sessions/{sid}/messages", json={"content": "go"}).json()["message_id"]
    with b.stream("GET", f"/v1/sessions/{sid}/messages/{mid}/stream") as stream:
        head = []
        for line in stream.iter_lines():
            if line.startswith("id: "):
                head.append(int(line[4:]))
                if len(head) == 5:
                    break
    resumed = b.get(f"/v1/sessions/{sid}/messages/{mid}/stream",
                    headers={"Last-Event-ID": str(head[-1])})
    rest = parse_frames(resumed.text)
    ids = head + [int(f["id"]) for f in rest]
    assert ids == list(range(len(ids)))
    assert rest[-1]["event"] == "done"
    text = "".join(f["data"]["text"] for f in rest if f["event"] == "token")
    assert text.endswith("w59 ")
    # The reply was stored before its done event: the other replica reads it as done.
    assert b.get(f"/v1/sessions/{sid}/messages/{mid}").json()["status"] == "done"


def test_resume_after_the_reply_stream_expired_gets_the_rest_under_the_original_ids(
        replicas, redis_server: RedisServer) -> None:  # type: ignore[no-untyped-def]
    """Issue 7, bug 1, with Redis: once a finished reply's stream has expired, a resume after
    id 17 through either replica gets exactly the events after 17, with their original ids,
    and ends with the terminal event."""
    a, b, _ = replicas
    sid = a.post("/v1/sessions").json()["id"]
    first = a.post(f"/v1/sessions/{sid}/messages", json={"content": "go"}, headers=SSE)
    original = check_grammar(parse_frames(first.text))
    mid = original[0]["data"]["message_id"]
    subprocess.run(["redis-cli", "-p", str(redis_server.port), "del", f"sc:r:{mid}"], check=True,
                   capture_output=True)
    for replica in (a, b):
        resumed = parse_frames(replica.get(f"/v1/sessions/{sid}/messages/{mid}/stream",
                                           headers={"Last-Event-ID": "17"}).text)
        assert resumed == original[18:]
        assert resumed[-1]["event"] == "done" and resumed[-1]["id"] == original[-1]["id"]


def test_one_reply_in_flight_across_replicas(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b, _ = replicas
    sid = a.post("/v1/sessions").json()["id"]
    assert a.post(f"/v1/sessions/{sid}/messages", json={"content": "go"}).status_code == 202
    conflict = b.post(f"/v1/sessions/{sid}/messages", json={"content": "again"})
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "reply_in_flight"


def test_cancel_through_the_other_replica(replicas) -> None:  # type: ignore[no-untyped-def]
    a, b, engine_a = replicas
    sid = a.post("/v1/sessions").json()["id"]
    mid = a.post(f"/v1/sessions/{sid}/messages", json={"content": "go"}).json()["message_id"]
    time.sleep(0.1)
    cancelled = b.post(f"/v1/sessions/{sid}/messages/{mid}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert mid in engine_a.aborted


def test_a_reply_left_by_a_dead_replica_is_never_stuck(redis_server: RedisServer) -> None:
    """Simulate a replica that died mid-reply: its lease lapses, its message says streaming."""
    import asyncio

    from redis.asyncio import Redis

    from app.leases import REPLY
    from app.leases.redis import RedisLeaseStore
    from app.sessions.models import Message, Session
    from app.sessions.redis import RedisSessionStore

    redis_server.flush()

    async def leave_a_broken_reply() -> tuple[str, str]:
        redis = Redis.from_url(redis_server.url)
        store = RedisSessionStore(redis)
        session = Session.new(system=None, params={}, title=None, owner=None)
        await store.create(session)
        reply = Message.new("assistant", "", "streaming")
        await store.append(session.id, [Message.new("user", "hi", "done"), reply])
        # Its replica took the reply's lease, then died: nobody refreshes it.
        await RedisLeaseStore(redis).acquire(REPLY, session.id, reply.id, 0.05)
        await store.close()
        return session.id, reply.id

    sid, mid = asyncio.run(leave_a_broken_reply())
    time.sleep(0.1)
    with TestClient(create_app(Settings(redis_url=redis_server.url),
                               engine=ScriptedEngine())) as client:
        message = client.get(f"/v1/sessions/{sid}/messages/{mid}").json()
        assert message["status"] == "error"
        replay = parse_frames(client.get(f"/v1/sessions/{sid}/messages/{mid}/stream").text)
        assert replay[-1]["event"] == "error"
        again = client.post(f"/v1/sessions/{sid}/messages", json={"content": "next"}, headers=SSE)
        assert check_grammar(parse_frames(again.text))[-1]["event"] == "done"


async def test_a_reply_stored_as_ended_since_it_was_read_is_not_repaired() -> None:
    """Its replica stores the reply, then lets go of its lease: a reader holding the copy from
    before sees no lease, reads the reply again and leaves it as it is."""
    from dataclasses import replace

    from app.lifecycle import Lifecycle
    from app.replies.live import Replies
    from app.replies.replicas import ReplicaCoordinator
    from app.sessions.memory import MemorySessionStore
    from app.sessions.models import Message, Session
    from app.streams.memory import MemoryReplyLogs

    engine, store, logs = ScriptedEngine(), MemorySessionStore(), MemoryReplyLogs()
    replicas = ReplicaCoordinator(Replies(engine, store, logs, Lifecycle(engine),
                                          orphan_grace_s=1.0), store, logs)
    session = Session.new(system=None, params={}, title=None, owner=None)
    await store.create(session)
    reply = Message.new("assistant", "all of it", "done")
    await store.append(session.id, [Message.new("user", "hi", "done"), reply])
    read_before = await store.get(session.id)
    assert read_before is not None
    read_before.messages[-1] = replace(reply, status="streaming", content="all")
    await replicas.repair_if_abandoned(read_before)
    assert read_before.messages[-1].status == "done"
    stored = await store.get(session.id)
    assert stored is not None and stored.messages[-1].content == "all of it"
