"""The chat service, whatever the transport: sessions, and the turns of their conversations.

A turn: history -> prompt (app/history.py) -> a reply generated in the background
(app/replies/live.py) -> stored when it ends. Listeners follow a reply live, on this replica
or another one (app/replies/replicas.py), or replay it exactly from its stored message once it
has ended (app/replies/transcript.py). Nothing here knows HTTP or a wire format.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from typing import Any

from app.admission import Admission
from app.engine.base import Engine, GenerationParams
from app.errors import (
    Conflict,
    InvalidRequest,
    MessageNotFound,
    RateLimited,
    ReplyInFlight,
    SessionNotFound,
)
from app.generation import Caller, Gate
from app.history import fit_history
from app.leases import Leases
from app.lifecycle import Lifecycle
from app.limits import KeyLimits
from app.ownership import visible
from app.params import ReplyParams, merge_params, requested_max_tokens
from app.replies.live import LiveReply, Replies
from app.replies.replicas import ReplicaCoordinator
from app.replies.transcript import is_final, replay
from app.served_models import ServedModels
from app.sessions.models import Message, Session, SessionChanges
from app.sessions.store import SessionStore
from app.streams import Event, ReplyLogs
from app.token_budget import history_reserve, reply_max_tokens

Listened = AsyncIterator[Event | None]  # None: nothing happened for a heartbeat interval
SESSION_RETRY_S = 60.0  # a key at its session quota: nothing frees by itself sooner


class ChatService:
    def __init__(self, engine: Engine, store: SessionStore, logs: ReplyLogs, lifecycle: Lifecycle,
                 admission: Admission, *, default_max_tokens: int = 512, orphan_grace_s: float = 10.0,
                 limits: KeyLimits | None = None, max_reply_tokens: int | None = None,
                 max_reply_seconds: float | None = None,
                 max_sessions_per_key: int | None = None,
                 models: ServedModels | None = None, reasoning_parser: str | None = None,
                 leases: Leases | None = None) -> None:
        self.engine = engine
        self.models = models if models is not None else ServedModels(engine)
        self.store = store
        self.logs = logs
        self.lifecycle = lifecycle
        self.default_max_tokens = default_max_tokens
        self.max_reply_tokens = max_reply_tokens
        self.max_sessions_per_key = max_sessions_per_key
        self.gate = Gate(engine, lifecycle, admission, limits, max_reply_seconds)
        self.replies = Replies(engine, store, logs, lifecycle, orphan_grace_s=orphan_grace_s,
                               reasoning_parser=reasoning_parser, leases=leases)
        self.replicas = ReplicaCoordinator(self.replies, store, logs)

    async def start(self) -> None:
        await self.replicas.start()

    async def shutdown(self) -> None:
        await self.replicas.stop()
        await self.replies.shutdown()

    # -- sessions -------------------------------------------------------------------------

    async def create_session(self, *, system: str | None = None, params: ReplyParams | None = None,
                             title: str | None = None, owner: str | None = None,
                             model: str | None = None) -> Session:
        """A new session; `model` (a served name, else the base model) writes its replies."""
        if model is not None:
            self.models.resolve(model)
        if owner is not None and self.max_sessions_per_key is not None and len(
                await self.store.summaries(owner)) >= self.max_sessions_per_key:
            raise RateLimited(f"this key holds {self.max_sessions_per_key} sessions, the most "
                              "it may; delete one first", retry_after_s=SESSION_RETRY_S,
                              code="too_many_sessions")
        session = Session.new(system=system, params=params.stored() if params else {},
                              title=title, owner=owner, model=model)
        await self.store.create(session)
        return replace(session, messages=[], model=self._model_of(session.model))

    async def get_session(self, session_id: str, owner: str | None = None) -> Session:
        session = await self.store.get(session_id)
        if session is None or not visible(session.owner, owner):
            raise SessionNotFound(f"session {session_id} not found", param="session_id")
        session.model = self._model_of(session.model)  # a view: what its replies are written by
        live = self.replies.of_session(session_id)
        if live is not None:
            _show_progress(session, live)
        else:
            await self.replicas.repair_if_abandoned(session)
        return session

    async def list_sessions(self, owner: str | None = None) -> list[dict[str, Any]]:
        return [{**s, "model": self._model_of(s.get("model"))}
                for s in await self.store.summaries(owner)]

    async def update_session(self, session_id: str, changes: SessionChanges,
                             owner: str | None = None) -> Session:
        """Change the keys of `changes` (title, system, params, model: None is the base
        model), even while a reply is in flight: they apply from the next reply on."""
        await self.get_session(session_id, owner)
        if changes.get("model") is not None:
            self.models.resolve(changes["model"])
        if not await self.store.update_meta(session_id, changes):
            raise SessionNotFound(f"session {session_id} not found", param="session_id")
        return await self.get_session(session_id, owner)

    def _model_of(self, stored: str | None) -> str:
        """A session's model as clients see it: None is the base model, whatever it is now."""
        return stored or self.models.base

    async def delete_session(self, session_id: str, owner: str | None = None) -> None:
        await self.get_session(session_id, owner)
        await self.replicas.cancel(session_id)
        await self.store.delete(session_id)

    async def session_count(self) -> int:
        return await self.store.count()

    # -- messages -------------------------------------------------------------------------

    async def get_message(self, session_id: str, message_id: str, owner: str | None = None) -> Message:
        message = (await self.get_session(session_id, owner)).find(message_id)
        if message is None:
            raise MessageNotFound(f"message {message_id} not found in session {session_id}",
                                  param="message_id")
        return message

    async def post_message(self, session_id: str, content: str, params: ReplyParams | None = None,
                           *, owner: str | None = None, transport: str,
                           user: str | None = None, replaces: str | None = None) -> LiveReply:
        """Append a user turn and start the assistant reply in the background. With `replaces`
        (a user turn's id) the new turn takes that turn's place: it and every message after it
        go (regenerate: the same content again; edit: new content). `user` is who the
        admission queue is fair to. Nothing is stored or removed unless the reply starts."""
        accepted_at = time.monotonic()
        session = await self.get_session(session_id, owner)
        self.lifecycle.check_accepting()
        model = self.models.resolve(session.model)
        if replaces is not None:
            # The prompt is the conversation without the turns replaced.
            session.messages = session.turns_before(replaces)
        layers = (session.params, params.stored() if params else {})
        sampling = merge_params(GenerationParams(lora=self.models.lora(model)), *layers)
        requested = requested_max_tokens(*layers)
        context = self.engine.max_model_len
        turn = Message.new("user", content, "done")
        reply = Message.new("assistant", "", "queued", model=model)
        chars = sum(len(m.content) for m in session.messages) + len(content + (session.system or ""))
        claimed, place, opened = False, None, None
        try:
            holder = await self.replicas.claim(session_id, reply.id)
            if holder is not None:
                raise ReplyInFlight(f"session {session_id} already has a reply in flight "
                                    f"({holder}); cancel it or wait for it", param="content")
            claimed = True
            # Per-key limits (auth on), then admission: QueueFull here, before the template.
            place = await self.gate.reserve(Caller(reply.id, accepted_at, owner,
                                                   user or owner or session_id), prompt_chars=chars)
            prompt_ids = await fit_history(
                self.engine, session, content,
                history_reserve(context, requested, self.default_max_tokens))
            max_tokens = reply_max_tokens(context, len(prompt_ids), requested,
                                          self.default_max_tokens, prompt_param="content",
                                          cap=self.max_reply_tokens)
            sampling = replace(sampling, max_tokens=max_tokens)
            _engine_check(self.engine, sampling)
            opened = place.start(prompt_ids, sampling)
            if replaces is None:
                await self.store.append(session_id, [turn, reply])
            else:
                await self.store.replace_from(session_id, replaces, [turn, reply])
        except BaseException:
            if (held := opened or place) is not None:
                await held.release()  # its place and the key's count back
            if claimed:
                await self.replicas.release(session_id, reply.id)
            raise
        return self.replies.start(session_id, reply, opened, transport=transport,
                                  content=content)

    async def cancel_message(self, session_id: str, message_id: str, owner: str | None = None) -> Message:
        message = await self.get_message(session_id, message_id, owner)
        if message.role != "assistant":
            raise InvalidRequest(f"message {message_id} is a user turn; only replies can be "
                                 "cancelled", param="message_id")
        if not is_final(message):
            await self.replicas.cancel(session_id, message_id)
            return await self.get_message(session_id, message_id, owner)
        if message.status == "cancelled":
            return message
        raise Conflict(f"message {message_id} already finished with status {message.status}")

    async def reply_in_flight(self, session_id: str) -> str | None:
        """The id of the session's reply being generated, on any replica."""
        return await self.replicas.holder(session_id)

    async def follow_reply(self, session_id: str, message_id: str, after: int = -1, *,
                           heartbeat_s: float | None = None, owner: str | None = None) -> Listened:
        """The reply's events after `after`: live, wherever it is generated, or replayed from
        its stored message once it has ended. Always ends with its terminal event."""
        message = await self.get_message(session_id, message_id, owner)
        if message.role != "assistant":
            raise InvalidRequest(f"message {message_id} is a user turn; only replies have streams",
                                 param="message_id")
        if not is_final(message):
            local = self.logs.get(message_id)
            if local is not None:  # generated here: straight from its log
                return local.follow(after, heartbeat_s)
            events = await self.logs.follow(message_id, session_id, after, heartbeat_s)
            if events is not None:
                return self.replicas.until_gone(session_id, message_id, events, after,
                                                self.engine.model_name)
            message = await self.get_message(session_id, message_id, owner)  # it just ended
        return _listened(replay(message, session_id, self.engine.model_name, after))


def _show_progress(session: Session, live: LiveReply) -> None:
    """The in-flight reply's text so far; one ended, not yet stored (replies/unstored.py): whole."""
    for i, message in enumerate(session.messages):
        if message.id == live.message.id and live.ended.is_set():
            session.messages[i] = Message.from_dict(live.message.to_dict())
        elif message.id == live.message.id:
            session.messages[i] = Message(**{**message.to_dict(), "content": live.transcript.text,
                                             "reasoning": live.transcript.reasoning or None,
                                             "status": live.message.status})


async def _listened(events: Iterable[Event]) -> Listened:
    for event in events:
        yield event


def _engine_check(engine: Engine, params: GenerationParams) -> None:
    """The engine's own checks (token ids in the vocabulary), naming the `params` key."""
    try:
        engine.check(params)
    except InvalidRequest as exc:
        raise InvalidRequest(exc.message, param=exc.param and f"params.{exc.param}") from None
