"""The adapters every replica serves, by name: the shared registry each replica's engine
follows (`serving.py`), and when a name was first served (its `created` in /v1/models).

Memory mode (one replica): a dict; nothing to announce. Redis (every replica): the entries in
the hash `sc:adapters` (name -> JSON `Entry`), an adapter's files, when it has them there, in
the hash `sc:adapter:{version}` (file name -> bytes), and each change announced on the pub/sub
channel `sc:adapters:changed` (the name; a replica reads the whole registry again, so one that
missed an announcement converges at its next read). A name is taken with HSETNX: two replicas
loading the same name at once, one wins, the other is the caller's 409."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from app.errors import Conflict, NotFound
from app.records import Records, RedisRecords

PREFIX = "sc:adapter"
ENTRIES = PREFIX + "s"
CHANNEL = PREFIX + "s:changed"
CREATED = PREFIX + "s:created"  # base model name -> when it was first served


class Entry(BaseModel):
    """One adapter served under `name`. `version` changes whenever the name is loaded again
    (a replica that still serves an older one loads it again); `root` is where it was loaded
    from (its `root` in /v1/models, the same on every replica); `stored`: its files are in the
    registry (else every replica reads them at `root`, a shared volume)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    version: str
    root: str
    created: int
    stored: bool = False


class Registry(Protocol):
    shared: bool  # other replicas follow it (Redis); False: memory, this replica alone

    async def register(self, entry: Entry, files: Mapping[str, bytes] | None) -> None:
        """Adds `entry` (its files with it, when given); Conflict when the name is taken."""
        ...

    async def unregister(self, name: str) -> Entry:
        """Removes the name (and its files); NotFound when it is not registered."""
        ...

    async def entries(self) -> dict[str, Entry]: ...

    async def files(self, entry: Entry) -> dict[str, bytes] | None:
        """The adapter's stored files; None once it is gone."""
        ...

    async def first_served(self, name: str, now: int) -> int:
        """When `name` was first served: `now` unless a replica said so before."""
        ...

    def changes(self) -> AsyncGenerator[str, None] | None:
        """Announcements of other replicas' changes; None: nothing to follow (memory)."""
        ...


def taken(name: str) -> Conflict:
    return Conflict(f"a LoRA adapter named {name!r} is already loaded; unload it first",
                    param="lora_name", code="lora_exists")


def unknown(name: str) -> NotFound:
    return NotFound(f"no LoRA adapter named {name!r} is loaded", param="lora_name",
                    code="lora_not_found")


class MemoryRegistry:
    shared = False

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    async def register(self, entry: Entry, files: Mapping[str, bytes] | None) -> None:
        if entry.name in self._entries:
            raise taken(entry.name)
        self._entries[entry.name] = entry

    async def unregister(self, name: str) -> Entry:
        entry = self._entries.pop(name, None)
        if entry is None:
            raise unknown(name)
        return entry

    async def entries(self) -> dict[str, Entry]:
        return dict(self._entries)

    async def files(self, entry: Entry) -> dict[str, bytes] | None:
        return None

    async def first_served(self, name: str, now: int) -> int:
        return now

    def changes(self) -> AsyncGenerator[str, None] | None:
        return None


class RedisRegistry:
    shared = True

    def __init__(self, redis: Any) -> None:
        self.redis = redis  # the service's client (app/redis_calls.py): bounded, translated

    async def register(self, entry: Entry, files: Mapping[str, bytes] | None) -> None:
        # Files first: a replica that reads the entry finds them.
        if files:
            await self.redis.hset(_files_key(entry.version), mapping=dict(files))
        if not await self.redis.hsetnx(ENTRIES, entry.name, entry.model_dump_json()):
            if files:
                await self.redis.delete(_files_key(entry.version))
            raise taken(entry.name)
        await self.redis.publish(CHANNEL, entry.name)

    async def unregister(self, name: str) -> Entry:
        raw = await self.redis.hget(ENTRIES, name)
        if raw is None or not await self.redis.hdel(ENTRIES, name):
            raise unknown(name)
        entry = Entry.model_validate_json(raw)
        await self.redis.delete(_files_key(entry.version))
        await self.redis.publish(CHANNEL, name)
        return entry

    async def entries(self) -> dict[str, Entry]:
        raw = await self.redis.hgetall(ENTRIES)
        entries = (Entry.model_validate_json(value) for value in raw.values())
        return {entry.name: entry for entry in entries}

    async def files(self, entry: Entry) -> dict[str, bytes] | None:
        raw = await self.redis.hgetall(_files_key(entry.version))
        return {_text(k): bytes(v) for k, v in raw.items()} or None

    async def first_served(self, name: str, now: int) -> int:
        await self.redis.hsetnx(CREATED, name, now)
        return int(await self.redis.hget(CREATED, name))

    async def changes(self) -> AsyncGenerator[str, None]:
        """Names announced, from the moment it yields its first item: an empty name, once
        subscribed (a change made before it was listening is in the registry it reads then).
        An empty name again whenever redis-py subscribed again (a connection that broke: the
        announcements meanwhile are lost) and after `RESYNC_S` without any."""
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)
            while True:
                message = await pubsub.get_message(timeout=RESYNC_S)
                if message is None or message["type"] == "subscribe":
                    yield ""
                elif message["type"] == "message":
                    yield _text(message["data"])
        finally:
            await pubsub.aclose()


RESYNC_S = 30.0  # a replica reads the registry at least this often, announced or not


def _files_key(version: str) -> str:
    return f"{PREFIX}:{version}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def registry_for(records: Records) -> Registry:
    """Shared through the service's Redis when its records are there, else this replica's."""
    return RedisRegistry(records.redis) if isinstance(records, RedisRecords) else MemoryRegistry()
