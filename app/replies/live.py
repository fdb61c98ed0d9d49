"""Replies generated on this replica. Each runs in its own task, writing its events to a
`ReplyLog` that transports follow, so a reply survives its listeners: after the last one left
it goes on for `orphan_grace_s` (a client that reconnects resumes it), then it is aborted in
the engine and stored as `cancelled` with the text it had.

Before its first token a reply reports its progress: `queued` with its position while it waits
for admission (app/admission/), then `prefill` when it enters the engine. Once stored, the
conversation's next prefix may be warmed (`on_stored`, app/replies/warmup.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from app.engine.base import Engine
from app.errors import Draining, StoreUnavailable, StreamchatError
from app.generation import AbortCause, Generation, stop
from app.leases import REPLY, Leases, MemoryLeaseStore
from app.lifecycle import Lifecycle
from app.metering import StreamMeter
from app.reasoning import ReasoningSplit
from app.replies.orphans import OrphanGrace
from app.replies.transcript import SHUT_DOWN, Ending, Transcript, conclude, terminal_event
from app.replies.unstored import Unstored
from app.sessions.models import Message
from app.sessions.store import SessionStore
from app.streams import ReplyLog, ReplyLogs

log = logging.getLogger("streamchat.replies")


@dataclass(eq=False)
class LiveReply:
    """A reply being generated here: its message, its event log and the task producing it."""

    session_id: str
    message: Message
    log: ReplyLog
    generation: Generation  # its admission, deadline, meter, limits and abort cause
    meter: StreamMeter
    transcript: Transcript = field(default_factory=Transcript)
    task: asyncio.Task[None] | None = None
    stop_orphan_watch: Callable[[], None] | None = None  # its orphan grace (app/replies/orphans.py)
    ending: bool = False  # its end is being stored
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # stored and announced


class Replies:
    def __init__(self, engine: Engine, store: SessionStore, logs: ReplyLogs, lifecycle: Lifecycle,
                 *, orphan_grace_s: float, reasoning_parser: str | None = None,
                 leases: Leases | None = None) -> None:
        self.engine = engine
        self.reasoning_parser = reasoning_parser  # its reasoning apart (app/reasoning.py)
        # Called with the session id once a reply is stored done.
        self.on_stored: Callable[[str], None] | None = None
        self.store = store
        # A session's reply runs under the session's `reply` lease (app/leases/), let go of here.
        self.leases = leases if leases is not None else Leases(MemoryLeaseStore())
        self.logs = logs
        self.lifecycle = lifecycle
        self.orphans = OrphanGrace(logs, orphan_grace_s)
        self._live: dict[str, LiveReply] = {}  # session id -> its reply generated here
        self._checks: set[asyncio.Task[None]] = set()
        self.unstored = Unstored(store)  # replies ended while the store was away
        lifecycle.on_abort(self._abort_for_shutdown)

    def of_session(self, session_id: str) -> LiveReply | None:
        return self._live.get(session_id)

    def all(self) -> list[LiveReply]:
        return list(self._live.values())

    def start(self, session_id: str, message: Message, generation: Generation, *,
              transport: str, content: str = "") -> LiveReply:
        """Generate `message` (stored as queued, its session claimed, its generation opened at
        the gate: counted against its key, its place in the admission queue taken) in the
        background."""
        caller = generation.caller
        meter = generation.meter = StreamMeter(
            transport, len(generation.prompt_ids), caller.accepted_at, session_id=session_id,
            message_id=message.id, content=content)
        live = LiveReply(session_id, message, self.logs.open(message.id, session_id),
                         generation, meter)
        live.stop_orphan_watch = self.orphans.watch(
            live.log, lambda: live.task is not None and not live.task.done(),
            lambda: stop(live.task, "client_left"))
        live.log.append("start", {"message_id": message.id, "session_id": session_id,
                                  "model": message.model or self.engine.model_name})
        generation.gate.admission.watch(generation.ticket,
                                        lambda ahead: _report_queued(live, ahead))
        self._live[session_id] = live
        live.task = asyncio.create_task(self._run(live), name=f"reply-{message.id}")
        live.task.add_done_callback(lambda _: self._never_ran(live))
        return live

    async def cancel(self, live: LiveReply, cause: AbortCause = "cancel") -> None:
        """Stop the reply; returns once its partial text is stored."""
        stop(live.task, cause)
        await live.ended.wait()

    async def shutdown(self) -> None:
        for live in self.all():
            await self.cancel(live, "drain")
        await self.unstored.close()

    def _abort_for_shutdown(self) -> None:
        for live in self.all():  # those not yet generating too
            stop(live.task, "drain")

    # -- the reply's life ----------------------------------------------------------------

    async def _run(self, live: LiveReply) -> None:
        ending = await self._generate(live)
        live.ending = True  # before the shield's task starts: a second cancel must not end it twice
        # Shielded: a second cancel (shutdown) must not interrupt storing the reply.
        await asyncio.shield(self._end(live, ending))

    def _never_ran(self, live: LiveReply) -> None:
        """A task cancelled before its first step runs none of its code: end its reply here,
        so that it is never left queued (and its session claimed) for good."""
        if not live.ending and live.task is not None and live.task.cancelled():
            self._hold(asyncio.create_task(self._end(live, Ending("cancelled", "cancelled"))))

    async def _generate(self, live: LiveReply) -> Ending:
        """Engine deltas -> token events, one per engine step (with a reasoning parser, a
        `reasoning` event before it for the step's reasoning); how the reply ended."""
        message, events, meter, generation = live.message, live.log, live.meter, live.generation
        pending_tokens = 0  # tokens since the last event (an end-of-sequence token has no text)
        split = None if self.reasoning_parser is None else ReasoningSplit(
            self.engine.reasoning_parser(self.reasoning_parser), generation.prompt_ids)

        def admitted() -> None:
            events.report("prefill", {"prompt_tokens": len(generation.prompt_ids),
                                      "queue_ms": round(generation.ticket.waited_s * 1000, 3)})

        try:
            async for delta in generation.deltas(on_admitted=admitted, end_here=False,
                                                 times_tokens=False):
                assert delta is not None  # no heartbeats asked
                pending_tokens += delta.token_count
                text, thought = delta.text, ""
                if split is not None:
                    thought, text = split.feed(text, delta.token_ids,
                                               delta.finish_reason is not None)
                if not text and not thought:
                    continue
                if meter.shown():
                    message.status = "streaming"
                if thought:
                    live.transcript.add(thought, pending_tokens, reasoning=True)
                    events.append("reasoning", {"text": thought, "n": pending_tokens})
                    pending_tokens = 0
                if text:
                    live.transcript.add(text, pending_tokens)
                    events.append("token", {"text": text, "n": pending_tokens})
                    pending_tokens = 0
        except asyncio.CancelledError:
            return Ending("cancelled", "cancelled")
        except Draining:
            return Ending("cancelled", "cancelled", SHUT_DOWN)
        except StreamchatError as exc:
            return Ending("error", "error", {"code": exc.code, "message": exc.message})
        except Exception as exc:  # never leave a reply stuck in "streaming"
            log.exception("reply %s failed", message.id)
            return Ending("error", "error", {"code": "engine_error",
                                             "message": f"generation failed: {type(exc).__name__}"})
        reason = meter.finish_reason or "stop"
        return Ending("cancelled", "cancelled") if reason == "abort" else Ending("done", reason)

    async def _end(self, live: LiveReply, ending: Ending) -> None:
        live.ending = True
        message = live.message
        conclude(message, live.transcript, ending, usage=live.meter.usage(),
                 timings=live.meter.timings())
        # Store the finished turn before telling anyone it is done: nothing is lost. With the
        # store unreachable it is told all the same, and stored once the store is back: the
        # reply stays this replica's (its lease, its log, what its session shows) until then.
        stored = await self.unstored.store_now(live.session_id, message)
        try:
            if stored:
                await self._let_go(live)
        finally:
            try:
                # Its place, its key's count and tokens, its meter: once, even if it never ran.
                await live.generation.end(message.status, text=message.content)
            finally:
                live.log.append(*terminal_event(message))
                if stored:
                    self.logs.release(message.id)
                else:
                    self.unstored.later(live.session_id, message, lambda: self._let_go(live))
                live.ended.set()
        if stored and self.on_stored is not None and message.status == "done" and message.content:
            self.on_stored(live.session_id)  # its user reads it now, then writes the next turn

    async def _let_go(self, live: LiveReply) -> None:
        """The reply is stored: no longer this replica's (its log too, once it has ended)."""
        self._live.pop(live.session_id, None)
        if live.stop_orphan_watch is not None:
            live.stop_orphan_watch()
        try:
            await self.leases.release(REPLY, live.session_id, live.message.id)
        except StoreUnavailable:  # away again: the lease runs out by itself (LEASE_S)
            log.warning("reply %s: its lease is left to run out (the store is away)",
                        live.message.id)
        finally:
            if live.log.finished:
                self.logs.release(live.message.id)

    def _hold(self, task: asyncio.Task[None]) -> None:
        self._checks.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._checks.discard)


def _report_queued(live: LiveReply, ahead: int) -> None:
    live.log.report("queued", {"position": ahead})
