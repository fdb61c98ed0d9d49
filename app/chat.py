"""One conversation turn, whatever the transport: history -> prompt -> stream -> store.

A reply runs in its own task, writing its events to a `ReplyLog`; transports only follow logs.
So a reply survives its listener: it goes on for `orphan_grace_s` after the last one left, and
is then aborted in the engine and stored as `cancelled` with the text it had.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from app.engine.base import Engine, GenerationParams
from app.errors import (
    Conflict,
    InvalidRequest,
    MessageNotFound,
    NotReady,
    ReplyInFlight,
    SessionNotFound,
    StreamchatError,
)
from app.history import fit_history
from app.metering import StreamMeter
from app.params import check_params, merge_params
from app.sessions.models import FINAL_STATUSES, Message, Session
from app.sessions.store import SessionStore
from app.streams import Event, ReplyLog, ReplyLogs
from app.streams.memory import MemoryReplyLogs
from app.streams.replay import replay, replay_events

log = logging.getLogger("streamchat.chat")

MAX_SYSTEM_CHARS = 100_000
# A replica refreshes the claims of its replies every LEASE_S / 3; a dead one's run out.
LEASE_S = 15.0
CANCEL_WAIT_S = 10.0
MAX_TITLE_CHARS = 200


@dataclass
class LiveReply:
    """A reply being generated: its stored message, its log and the task producing it."""

    session_id: str
    message: Message
    log: ReplyLog
    transport: str
    accepted_at: float
    parts: list[str] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    orphan_timer: asyncio.TimerHandle | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)


class ChatService:
    def __init__(
        self,
        engine: Engine,
        store: SessionStore,
        *,
        logs: ReplyLogs | None = None,
        default_max_tokens: int = 512,
        orphan_grace_s: float = 10.0,
    ) -> None:
        self.engine = engine
        self.store = store
        self.logs: ReplyLogs = logs if logs is not None else MemoryReplyLogs()
        self.default_params = GenerationParams(max_tokens=default_max_tokens)
        self.orphan_grace_s = orphan_grace_s
        self._live: dict[str, LiveReply] = {}  # session id -> its reply generated here
        self._background: list[asyncio.Task[None]] = []
        self._checks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Background duties: keep our claims alive, obey cancel requests from other replicas."""
        self._background = [asyncio.create_task(self._keep_leases(), name="claim-leases"),
                            asyncio.create_task(self._obey_cancels(), name="cancel-requests")]

    # -- sessions -------------------------------------------------------------------------

    async def create_session(
        self, *, system: Any = None, params: Any = None, title: Any = None, owner: str | None = None
    ) -> Session:
        if system is not None and (not isinstance(system, str) or len(system) > MAX_SYSTEM_CHARS):
            raise InvalidRequest(
                f"'system' must be a string of at most {MAX_SYSTEM_CHARS} characters", param="system"
            )
        if title is not None and (not isinstance(title, str) or len(title) > MAX_TITLE_CHARS):
            raise InvalidRequest(
                f"'title' must be a string of at most {MAX_TITLE_CHARS} characters", param="title"
            )
        session = Session.new(system=system, params=check_params(params), title=title, owner=owner)
        await self.store.create(session)
        return session

    async def get_session(self, session_id: str, owner: str | None = None) -> Session:
        session = await self.store.get(session_id)
        if session is None or (owner is not None and session.owner != owner):
            raise SessionNotFound(f"session {session_id} not found", param="session_id")
        live = self._live.get(session_id)
        if live is not None:
            self._overlay(session, live)
        elif session.messages and session.messages[-1].status not in FINAL_STATUSES:
            await self._repair_if_abandoned(session)
        return session

    async def list_sessions(self, owner: str | None = None) -> list[dict[str, Any]]:
        return await self.store.summaries(owner)

    async def delete_session(self, session_id: str, owner: str | None = None) -> None:
        await self.get_session(session_id, owner)
        await self._cancel_anywhere(session_id)
        await self.store.delete(session_id)

    def _overlay(self, session: Session, live: LiveReply) -> None:
        """Show the in-flight reply's text so far (it is stored only when it ends)."""
        for i, message in enumerate(session.messages):
            if message.id == live.message.id:
                session.messages[i] = Message(**{**message.to_dict(), "content": live.text,
                                                 "status": live.message.status})

    # -- messages -------------------------------------------------------------------------

    async def get_message(self, session_id: str, message_id: str, owner: str | None = None) -> Message:
        session = await self.get_session(session_id, owner)
        message = session.find(message_id)
        if message is None:
            raise MessageNotFound(f"message {message_id} not found in session {session_id}",
                                  param="message_id")
        return message

    async def post_message(
        self, session_id: str, content: Any, params: Any = None, *,
        owner: str | None = None, transport: str = "sse",
    ) -> LiveReply:
        """Append a user turn and start the assistant reply in the background."""
        accepted_at = time.monotonic()
        if not isinstance(content, str) or not content.strip():
            raise InvalidRequest("'content' must be a non-empty string", param="content")
        message_params = check_params(params)
        session = await self.get_session(session_id, owner)
        if not self.engine.ready:
            raise NotReady("the engine is not ready yet")
        generation = merge_params(self.default_params, session.params, message_params)
        explicit_max = "max_tokens" in session.params or "max_tokens" in message_params
        if not explicit_max:
            # The default length must not make a small context unusable: reserve at most half.
            generation = replace(generation, max_tokens=min(
                generation.max_tokens, max(1, self.engine.max_model_len // 2)))
        user = Message.new("user", content, "done")
        reply = Message.new("assistant", "", "queued")
        holder = await self.store.try_claim(session_id, reply.id, LEASE_S)
        if holder is not None:
            raise ReplyInFlight(
                f"session {session_id} already has a reply in flight ({holder}); "
                "cancel it or wait for it", param="content")
        try:
            prompt_ids = await fit_history(self.engine, session, content, generation.max_tokens)
            if not explicit_max:
                generation = replace(generation, max_tokens=min(
                    self.default_params.max_tokens, self.engine.max_model_len - len(prompt_ids)))
            await self.store.append(session_id, [user, reply])
        except BaseException:
            await self.store.release_claim(session_id, reply.id)
            raise
        live = LiveReply(session_id, reply, self.logs.open(reply.id, session_id), transport,
                         accepted_at)
        live.log.on_orphaned = lambda: self._orphaned(live)
        live.log.on_listener = lambda: self._adopted(live)
        self._live[session_id] = live
        live.task = asyncio.create_task(self._generate(live, prompt_ids, generation),
                                        name=f"reply-{reply.id}")
        return live

    async def cancel_message(self, session_id: str, message_id: str, owner: str | None = None) -> Message:
        message = await self.get_message(session_id, message_id, owner)
        if message.status not in FINAL_STATUSES:
            await self._cancel_anywhere(session_id, message_id)
            return await self.get_message(session_id, message_id, owner)
        if message.status == "cancelled":
            return message
        if message.role != "assistant":
            raise InvalidRequest(f"message {message_id} is a user turn; only replies can be cancelled")
        raise Conflict(f"message {message_id} already finished with status {message.status}")

    async def reply_in_flight(self, session_id: str) -> str | None:
        """The id of the session's reply being generated, on any replica."""
        return await self.store.in_flight(session_id)

    async def session_count(self) -> int:
        return await self.store.count()

    async def follow_reply(self, session_id: str, message_id: str, after: int = -1,
                           heartbeat_s: float | None = None,
                           owner: str | None = None) -> AsyncIterator[Event | None]:
        """The reply's events after `after`, live or replayed, wherever it is generated."""
        message = await self.get_message(session_id, message_id, owner)
        if message.role != "assistant":
            raise InvalidRequest(f"message {message_id} is a user turn; only replies have streams",
                                 param="message_id")
        events = await self.logs.follow(message_id, after, heartbeat_s)
        if events is not None:
            return events
        return replay(replay_events(message, session_id, self.engine.model_name), after)

    async def shutdown(self) -> None:
        for task in self._background:
            task.cancel()
        for live in list(self._live.values()):
            await self._cancel(live)

    # -- internals ------------------------------------------------------------------------

    def _adopted(self, live: LiveReply) -> None:
        if live.orphan_timer is not None:
            live.orphan_timer.cancel()
            live.orphan_timer = None

    def _orphaned(self, live: LiveReply) -> None:
        if live.task is None or live.task.done():
            return
        if live.orphan_timer is not None:
            live.orphan_timer.cancel()
        loop = asyncio.get_running_loop()
        live.orphan_timer = loop.call_later(self.orphan_grace_s, self._abandon, live)

    def _abandon(self, live: LiveReply) -> None:
        live.orphan_timer = None
        if live.log.listeners == 0 and live.task is not None and not live.task.done():
            check = asyncio.create_task(self._abandon_unless_watched(live))
            self._checks.add(check)  # held until done: the loop keeps only weak references
            check.add_done_callback(self._checks.discard)

    async def _abandon_unless_watched(self, live: LiveReply) -> None:
        if await self.logs.watched_elsewhere(live.message.id):
            self._orphaned(live)  # a listener on another replica: look again after the grace
            return
        if live.log.listeners == 0 and live.task is not None and not live.task.done():
            log.info("reply %s: no listener for %.1f s, aborting", live.message.id,
                     self.orphan_grace_s)
            live.task.cancel()

    async def _cancel_anywhere(self, session_id: str, message_id: str | None = None) -> None:
        """Cancel the session's reply in flight, here or on the replica generating it."""
        live = self._live.get(session_id)
        if live is not None and message_id in (None, live.message.id):
            await self._cancel(live)
            return
        holder = await self.store.in_flight(session_id)
        if holder is None or message_id not in (None, holder):
            return
        await self.logs.request_cancel(holder)
        deadline = time.monotonic() + CANCEL_WAIT_S
        # The other replica releases its claim once the cancelled reply is stored: poll for it.
        while time.monotonic() < deadline and await self.store.in_flight(session_id) == holder:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def _repair_if_abandoned(self, session: Session) -> None:
        """A reply left queued/streaming by a replica that died: store it as an error, with
        the text its event log had recorded, so it is never stuck."""
        message = session.messages[-1]
        if await self.store.in_flight(session.id) == message.id:
            return  # another replica is still on it
        events = await self.logs.recorded(message.id)
        tokens = [e for e in events if e.type == "token"]
        message.content = "".join(str(e.data.get("text", "")) for e in tokens)
        message.status, message.finish_reason = "error", "error"
        message.usage = {"prompt_tokens": 0, "cached_tokens": 0,
                         "completion_tokens": sum(int(e.data.get("n", 0)) for e in tokens)}
        await self.store.update_message(session.id, message)
        log.warning("reply %s was interrupted (its replica stopped); stored as error", message.id)

    async def _keep_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 3)
            for live in list(self._live.values()):
                try:
                    await self.store.refresh_claim(live.session_id, live.message.id, LEASE_S)
                except Exception:
                    log.exception("refreshing the claim of %s failed", live.message.id)

    async def _obey_cancels(self) -> None:
        while True:
            try:
                async for message_id in self.logs.cancel_requests():
                    for live in list(self._live.values()):
                        if live.message.id == message_id:
                            await self._cancel(live)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("listening for cancel requests failed; retrying")
                await asyncio.sleep(1.0)

    async def _cancel(self, live: LiveReply) -> None:
        if live.task is not None and not live.task.done():
            live.task.cancel()
            # The task stores the partial reply before it ends; wait for that, not for us.
            await asyncio.wait({live.task})

    async def _generate(self, live: LiveReply, prompt_ids: Sequence[int],
                        params: GenerationParams) -> None:
        message, events = live.message, live.log
        events.append("start", {"message_id": message.id, "session_id": live.session_id,
                                "model": self.engine.model_name})
        meter = StreamMeter(live.transport, len(prompt_ids), live.accepted_at)
        pending_tokens = 0  # tokens since the last event (an end-of-sequence token has no text)
        cancelled = False
        error: StreamchatError | None = None
        try:
            async for delta in self.engine.stream(prompt_ids, params, message.id):
                meter.count(delta)
                pending_tokens += delta.token_count
                if not delta.text:
                    continue
                if meter.shown():
                    message.status = "streaming"
                live.parts.append(delta.text)
                events.append("token", {"text": delta.text, "n": pending_tokens})
                pending_tokens = 0
        except asyncio.CancelledError:
            cancelled = True
        except StreamchatError as exc:
            error = exc
        except Exception as exc:  # never leave a reply stuck in "streaming"
            log.exception("reply %s failed", message.id)
            error = StreamchatError(f"generation failed: {type(exc).__name__}")
        finish_reason = meter.finish_reason or "stop"
        if cancelled or finish_reason == "abort":
            finish_reason = "cancelled"
        message.content = live.text
        message.usage, message.timings = meter.usage(), meter.timings()
        if error is not None:
            message.status, message.finish_reason = "error", "error"
        else:
            message.status = "cancelled" if finish_reason == "cancelled" else "done"
            message.finish_reason = finish_reason
        # Store the finished turn before telling anyone it is done: nothing is lost.
        try:
            await asyncio.shield(self.store.update_message(live.session_id, message))
        finally:
            self._live.pop(live.session_id, None)
            await asyncio.shield(self.store.release_claim(live.session_id, message.id))
            if live.orphan_timer is not None:
                live.orphan_timer.cancel()
            meter.finish(message.status)
            if error is not None:
                events.append("error", {"code": error.code, "message": error.message})
            else:
                events.append("done", {"finish_reason": finish_reason, "usage": message.usage,
                                       "timings": message.timings})
