"""One behaviour, two stores: every test runs against memory and a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from app.errors import MessageNotFound, SessionNotFound
from app.sessions.memory import MemorySessionStore
from app.sessions.models import Message, Session
from app.sessions.store import SessionStore
from tests.redis_server import RedisServer


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[SessionStore]:
    if request.param == "memory":
        yield MemorySessionStore()
        return
    from redis.asyncio import Redis

    from app.sessions.redis import RedisSessionStore

    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    redis_store = RedisSessionStore(Redis.from_url(server.url))
    yield redis_store
    await redis_store.close()


def session(title: str = "t", owner: str | None = None) -> Session:
    return Session.new(system="sys", params={"temperature": 0.5}, title=title, owner=owner)


async def test_create_get_roundtrip(store: SessionStore) -> None:
    created = session()
    await store.create(created)
    loaded = await store.get(created.id)
    assert loaded is not None
    assert (loaded.id, loaded.title, loaded.system, loaded.params) == (
        created.id, "t", "sys", {"temperature": 0.5})
    assert loaded.messages == []
    assert await store.get("ses_unknown") is None


async def test_messages_append_in_order_and_update_by_id(store: SessionStore) -> None:
    s = session()
    await store.create(s)
    user, reply = Message.new("user", "hi", "done"), Message.new("assistant", "", "queued")
    await store.append(s.id, [user, reply])
    reply.content, reply.status, reply.usage = "hello", "done", {"completion_tokens": 2}
    await store.update_message(s.id, reply)
    loaded = await store.get(s.id)
    assert loaded is not None
    assert [(m.role, m.content, m.status) for m in loaded.messages] == [
        ("user", "hi", "done"), ("assistant", "hello", "done")]
    assert loaded.messages[1].usage == {"completion_tokens": 2}


async def test_a_read_copy_never_edits_the_store(store: SessionStore) -> None:
    s = session()
    await store.create(s)
    await store.append(s.id, [Message.new("user", "hi", "done")])
    view = await store.get(s.id)
    assert view is not None
    view.messages.clear()
    again = await store.get(s.id)
    assert again is not None and len(again.messages) == 1


async def test_append_to_unknown_session_raises(store: SessionStore) -> None:
    with pytest.raises(SessionNotFound):
        await store.append("ses_nope", [Message.new("user", "x", "done")])


async def test_list_newest_first_and_by_owner(store: SessionStore) -> None:
    a, b, c = session("a", "alice"), session("b", "bob"), session("c", "alice")
    for s in (a, b, c):
        await store.create(s)
        await asyncio.sleep(0.002)
    assert [x["id"] for x in await store.summaries()] == [c.id, b.id, a.id]
    assert [x["id"] for x in await store.summaries("alice")] == [c.id, a.id]
    assert (await store.summaries("alice"))[0] == {"id": c.id, "created": c.created, "title": "c",
                                              "model": None, "messages": 0}


async def test_delete(store: SessionStore) -> None:
    s = session(owner="alice")
    await store.create(s)
    assert await store.delete(s.id) is True
    assert await store.get(s.id) is None
    assert await store.delete(s.id) is False
    assert await store.summaries("alice") == []


async def test_update_after_delete_does_not_resurrect(store: SessionStore) -> None:
    s = session()
    await store.create(s)
    reply = Message.new("assistant", "", "queued")
    await store.append(s.id, [reply])
    await store.delete(s.id)
    reply.status = "done"
    await store.update_message(s.id, reply)
    assert await store.get(s.id) is None


async def test_update_meta_changes_only_the_keys_given(store: SessionStore) -> None:
    s = session()
    await store.create(s)
    await store.append(s.id, [Message.new("user", "hi", "done")])
    assert await store.update_meta(s.id, {"title": "renamed", "model": "alias"}) is True
    loaded = await store.get(s.id)
    assert loaded is not None
    assert (loaded.title, loaded.model, loaded.system, loaded.params, loaded.created) == (
        "renamed", "alias", "sys", {"temperature": 0.5}, s.created)
    assert [m.content for m in loaded.messages] == ["hi"]  # never the messages
    assert await store.update_meta(s.id, {"system": None, "params": {}, "title": None}) is True
    cleared = await store.get(s.id)
    assert cleared is not None
    assert (cleared.title, cleared.system, cleared.params, cleared.model) == (
        None, None, {}, "alias")
    assert (await store.summaries())[0]["model"] == "alias"
    assert await store.update_meta("ses_nope", {"title": "x"}) is False
    assert await store.get("ses_nope") is None  # not created by an update


async def test_update_meta_after_delete_does_not_resurrect(store: SessionStore) -> None:
    s = session(owner="alice")
    await store.create(s)
    await store.delete(s.id)
    assert await store.update_meta(s.id, {"title": "x"}) is False
    assert await store.get(s.id) is None and await store.summaries("alice") == []


async def test_concurrent_updates_of_different_keys_both_land(store: SessionStore) -> None:
    s = session()
    await store.create(s)
    for i in range(5):
        await asyncio.gather(store.update_meta(s.id, {"title": f"t{i}"}),
                             store.update_meta(s.id, {"system": f"s{i}"}),
                             store.update_meta(s.id, {"params": {"top_k": i}}))
        loaded = await store.get(s.id)
        assert loaded is not None
        assert (loaded.title, loaded.system, loaded.params) == (f"t{i}", f"s{i}", {"top_k": i})


def turns(*contents: str) -> list[Message]:
    return [Message.new("user" if i % 2 == 0 else "assistant", c, "done")
            for i, c in enumerate(contents)]


async def test_replace_from_removes_that_message_and_the_rest(store: SessionStore) -> None:
    s = session()
    await store.create(s)
    old = turns("q1", "a1", "q2", "a2")
    await store.append(s.id, old)
    new = turns("q2 edited", "")
    await store.replace_from(s.id, old[2].id, new)
    loaded = await store.get(s.id)
    assert loaded is not None
    assert [(m.id, m.content) for m in loaded.messages] == [
        (old[0].id, "q1"), (old[1].id, "a1"), (new[0].id, "q2 edited"), (new[1].id, "")]
    assert loaded.find(old[2].id) is None and loaded.find(old[3].id) is None
    # The replaced messages are gone for good: updating one does not bring it back.
    await store.update_message(s.id, old[3])
    again = await store.get(s.id)
    assert again is not None and [m.id for m in again.messages] == [
        old[0].id, old[1].id, new[0].id, new[1].id]
    new[1].content = "a2 again"
    await store.update_message(s.id, new[1])  # the new reply is updated in place
    last = await store.get(s.id)
    assert last is not None and last.messages[-1].content == "a2 again"


async def test_replace_from_the_first_message(store: SessionStore) -> None:
    s = session()
    await store.create(s)
    old = turns("q1", "a1")
    await store.append(s.id, old)
    new = turns("again", "")
    await store.replace_from(s.id, old[0].id, new)
    loaded = await store.get(s.id)
    assert loaded is not None and [m.id for m in loaded.messages] == [m.id for m in new]
    assert (await store.summaries())[0]["messages"] == 2


async def test_replace_from_an_unknown_message_or_session_changes_nothing(
        store: SessionStore) -> None:
    s = session()
    await store.create(s)
    old = turns("q1", "a1")
    await store.append(s.id, old)
    with pytest.raises(MessageNotFound):
        await store.replace_from(s.id, "msg_nope", turns("x"))
    loaded = await store.get(s.id)
    assert loaded is not None and [m.id for m in loaded.messages] == [m.id for m in old]
    with pytest.raises(SessionNotFound):
        await store.replace_from("ses_nope", old[0].id, turns("x"))
    assert await store.get("ses_nope") is None


async def test_count(store: SessionStore) -> None:
    for _ in range(3):
        await store.create(session())
    assert await store.count() == 3


async def test_memory_store_is_bounded_lru() -> None:
    store = MemorySessionStore(max_sessions=2)
    a, b, c = session(), session(), session()
    await store.create(a)
    await store.create(b)
    await store.get(a.id)  # a is now more recent than b
    await store.create(c)
    assert await store.get(b.id) is None
    assert await store.get(a.id) is not None and await store.get(c.id) is not None


async def test_memory_store_expires_idle_sessions() -> None:
    store = MemorySessionStore(idle_ttl_s=0.05)
    s = session()
    await store.create(s)
    await asyncio.sleep(0.1)
    assert await store.get(s.id) is None
