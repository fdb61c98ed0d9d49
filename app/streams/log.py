"""A reply's event log: what makes a live reply resumable.

Every event of a reply (start, token..., done | error) is appended to its log with a sequence
number. Listeners follow the log from any point: events after `after` are replayed, then the
live ones follow, in order and without duplicates, always ending with the terminal event (even
for a listener that claims to have seen it). That rule is written here once: `ReplyLog.follow`
for a live log and for one read back from another replica (`ReplyLog.ended`), and
`follow_until_gone` for a log whose replica stopped before its end; a stored session reply's
replay (app/replies/transcript.py) ends the same way. The log counts its listeners so that the
reply's owner can tell when it has been orphaned.

A log mirrored to Redis is `held`: its listeners see an event only once the mirror `publish`es
it (Redis acknowledged it, app/streams/mirror.py), so a client never holds an event that
another replica could not resume. A log in memory publishes each event as it is appended.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, overload

import orjson

from app.kept_json import kept_json

TERMINAL_EVENTS = frozenset({"done", "error"})
PROGRESS_SEQ = -1  # the seq of a progress event: not part of the reply's numbering


@dataclass(slots=True, frozen=True)
class Event:
    seq: int
    type: str
    # The event's JSON, encoded once and shared by every listener and transport.
    payload: bytes

    @classmethod
    def of(cls, seq: int, type_: str, data: dict[str, Any]) -> Event:
        # Trimmed (app/kept_json.py): a live reply's log keeps every event, and orjson's own
        # 4 KB buffer per token event made the server's RSS grow 4,458 bytes per event (100 SSE
        # streams of never-ending replies, flat out: 166 -> 1,064 MiB over 211k events).
        return cls(seq, type_, kept_json(data))

    @property
    def data(self) -> dict[str, Any]:
        """The event's fields, decoded: for the few who read them back (a reply rebuilt from
        its log, the key that started a stream). Transports send `payload` as it is."""
        return orjson.loads(self.payload)  # type: ignore[no-any-return]

    @property
    def terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS

    @property
    def numbered(self) -> bool:
        """Part of the reply (start, token, done, error), not progress: it has an id."""
        return self.seq >= 0


class LoggedEvents(Sequence[Event]):
    """A log's events, read as Events (made on each read) from the types and JSON it keeps."""

    __slots__ = ("_payloads", "_types")

    def __init__(self, types: list[str], payloads: list[bytes]) -> None:
        self._types, self._payloads = types, payloads

    def __len__(self) -> int:
        return len(self._payloads)

    @overload
    def __getitem__(self, index: int) -> Event: ...
    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        seq = index if index >= 0 else len(self._payloads) + index
        return Event(seq, self._types[index], self._payloads[index])


class ReplyGone(Exception):
    """A reply followed on another replica is no longer generated anywhere; what its log did
    not deliver is with its stored message."""


class ReplyLog:
    def __init__(self, message_id: str, lease_id: str) -> None:
        self.message_id = message_id
        self.lease_id = lease_id  # the lease its writer holds (app/streams/__init__.py)
        # An event is kept as its type and its JSON, never as an object: a long reply keeps
        # thousands, and objects the garbage collector tracks (an Event and its dict, two per
        # token) made collections a third of the server's CPU at 1,000 streams (the transport
        # benchmark, profiled). The Event a listener gets is made when it reads it.
        self._types: list[str] = []
        self._payloads: list[bytes] = []
        self.events = LoggedEvents(self._types, self._payloads)
        self.finished = False
        # Listeners see the first `published` events: all of them, unless `held` (mirrored).
        self.held = False
        self.published = 0
        self.listeners = 0
        # Called when the listener count drops to zero before the reply finished.
        self.on_orphaned: Callable[[], None] | None = None
        self.on_listener: Callable[[], None] | None = None
        # Called with each appended event, and each progress event (a replicated log mirrors
        # them to Redis).
        self.on_append: Callable[[Event], None] | None = None
        self.on_progress: Callable[[Event], None] | None = None
        self.progress: Event | None = None  # the latest, until the first token
        # One future per waiting listener, resolved by the next event. Cheaper than an
        # asyncio.Event replaced per event (the transport ceiling's profile: waking listeners
        # through Events was a fifth of the app's time per token).
        self._waiters: list[asyncio.Future[None]] = []

    @classmethod
    def ended(cls, message_id: str, lease_id: str, recorded: Iterable[Event]) -> ReplyLog:
        """A finished log of `recorded` events (another replica's, read back), ended here with
        `done` if its writer stopped before its end (its replica died): followed as any log."""
        log = cls(message_id, lease_id)
        for event in recorded:
            log._keep(event.type, event.payload)
        if not log.events or not log.events[-1].terminal:
            log.append("done", {})
        log.finished = True
        log.publish()
        return log

    def append(self, type_: str, data: dict[str, Any]) -> Event:
        """The next event, `data` encoded here, once."""
        if self.finished:
            raise RuntimeError(f"reply {self.message_id} already finished")
        event = Event.of(len(self._payloads), type_, data)
        self._keep(type_, event.payload)
        self.finished = event.terminal
        if len(self._payloads) > 1:
            self.progress = None  # tokens (or the end) say more than any progress
        if not self.held:
            self.published = len(self._payloads)
            self._wake()
        if self.on_append is not None:
            self.on_append(event)
        return event

    def publish(self, count: int | None = None) -> None:
        """Listeners may see the first `count` events (all by default): a mirror says so once
        Redis has them."""
        count = len(self._payloads) if count is None else count
        if count > self.published:
            self.published = count
            self._wake()

    def _keep(self, type_: str, payload: bytes) -> None:
        self._types.append(type_)
        self._payloads.append(payload)

    def report(self, type_: str, data: dict[str, Any]) -> Event:
        """Progress before the first token: replaces the previous one, is never numbered."""
        event = Event.of(PROGRESS_SEQ, type_, data)
        self.progress = event
        self._wake()
        if self.on_progress is not None:
            self.on_progress(event)
        return event

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():  # a listener cancelled while it waited leaves a done one
                waiter.set_result(None)

    async def follow(self, after: int = -1, heartbeat_s: float | None = None
                     ) -> AsyncIterator[Event | None]:
        """Events with seq > after, then live ones, ending with the terminal event.

        With `heartbeat_s`, yields None after that many seconds without an event, so a
        transport can keep an idle connection alive."""
        self.listeners += 1
        if self.on_listener is not None:
            self.on_listener()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] | None = None
        # The heartbeat's timer is armed once per quiet period, not once per event: an event
        # only moves `quiet_since`, and a timer that fires early finds it moved and is re-armed.
        timer: asyncio.TimerHandle | None = None
        quiet_since = loop.time()

        def heartbeat_due() -> None:
            nonlocal timer
            timer = None
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        try:
            index = max(after + 1, 0)
            shown: Event | None = None  # the progress this listener was given last
            while True:
                if index < self.published:
                    while index < self.published:
                        event = self.events[index]
                        index += 1
                        yield event
                    quiet_since = loop.time()
                progress = self.progress
                # Progress once every event appended was seen: never before a held `start`.
                if progress is not None and progress is not shown and index == len(self.events):
                    shown = progress
                    yield progress
                    quiet_since = loop.time()
                    continue  # more may have come meanwhile
                if self.finished and self.published == len(self._payloads):
                    if after >= self.published - 1:  # it had seen the end: still end it
                        yield self.events[-1]
                    return
                if heartbeat_s is not None:
                    if loop.time() >= quiet_since + heartbeat_s:  # nothing new, for that long
                        yield None
                        quiet_since = loop.time()
                        continue
                    if timer is None:
                        timer = loop.call_at(quiet_since + heartbeat_s, heartbeat_due)
                waiter = loop.create_future()
                self._waiters.append(waiter)
                await waiter
        finally:
            if timer is not None:
                timer.cancel()
            self.listeners -= 1
            if self.listeners == 0 and not self.finished and self.on_orphaned is not None:
                self.on_orphaned()


async def follow_until_gone(events: AsyncIterator[Event | None], after: int,
                            rest: Callable[[int], AsyncIterator[Event | None]]
                            ) -> AsyncIterator[Event | None]:
    """Follow `events`, a reply's log as another replica writes it; if that replica stops
    (ReplyGone) before its end reached this one, `rest(seen)` gives what follows the last
    event seen, its terminal event last: for session replies and detached streams alike."""
    seen = after
    try:
        async for event in events:
            if event is not None:
                seen = event.seq
            yield event
    except ReplyGone:
        async for event in rest(seen):
            yield event
