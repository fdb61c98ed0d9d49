"""One generation's life, the same on every path: session replies, chat and text completions,
Responses (streamed, whole and background), resumable streams and the prefix warm-up.

A `Generation` owns, in this one place:
- the lifecycle count (a drain waits for it) and the drain timeout's stop;
- its place at the admission gate: the wait (with heartbeats for a stream), admission, release;
- the deadline, `max_seconds` counted from admission (the queue is bounded by its length): the
  open choices then end as if at `max_tokens` (`finish_reason: length`);
- the meter (usage, TTFT, ITL, the stream's log line and its outcome);
- the key's stream count, and the tokens charged to it when it ends;
- why it was stopped (`stop(task, cause)`, app/stopping.py): a background response's or a
  resumable stream's cancel is `cancel`, an orphaned reply `client_left`, a drain `drain`; a
  task cancelled without a cause was left by its client. The deadline is `timeout`, an engine
  that fails `engine_error`. Counted once, in `streamchat_aborted_streams_total{cause}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass

from app import metrics
from app.admission import Admission, Ticket
from app.engine.base import Delta, Engine, GenerationParams
from app.errors import Draining
from app.lifecycle import RETRY_AFTER_S, Lifecycle
from app.limits import KeyLimits
from app.metering import StreamMeter
from app.stopping import AbortCause, cause_of, stop

__all__ = ["AbortCause", "Caller", "Gate", "Generation", "Place", "stop"]


@dataclass(frozen=True)
class Caller:
    """Who asks (the key's owner, for its limits; `user`, whom the admission queue is fair to,
    when there is no owner), and when the request was accepted (TTFT)."""

    request_id: str
    accepted_at: float
    owner: str | None = None
    user: str = "-"
    priority: int = 0  # among the user's own waiting requests, lower first (`Ticket.rank`)


@dataclass(frozen=True)
class Gate:
    """What every generation passes through: the engine, the lifecycle, admission and the
    per-key limits; and how long one may run once admitted."""

    engine: Engine
    lifecycle: Lifecycle
    admission: Admission
    limits: KeyLimits | None = None
    max_seconds: float | None = None

    async def reserve(self, caller: Caller, *, prompt_chars: int = 0,
                      prompt_tokens: int | None = None) -> Place:
        """A place, before any work on the prompt (every path asks before its tokenizer or
        template): counted against its key, then queued; QueueFull at once when the queue is
        full or its first token would miss the objective (its prompt: `prompt_tokens`, else
        `prompt_chars` long)."""
        if self.limits is not None and caller.owner is not None:
            await self.limits.start_generation(caller.owner)
        try:
            ticket = self.admission.enqueue(caller.user, rank=caller.priority,
                                            prompt_chars=prompt_chars, prompt_tokens=prompt_tokens)
        except BaseException:
            await self._unkey(caller)
            raise
        return Place(self, caller, ticket)

    async def open(self, prompt_ids: Sequence[int], params: GenerationParams, caller: Caller, *,
                   transport: str | None = None, meter: StreamMeter | None = None) -> Generation:
        """`reserve` then `start`, for a prompt already made."""
        place = await self.reserve(caller, prompt_tokens=len(prompt_ids))
        return place.start(prompt_ids, params, transport=transport, meter=meter)

    async def _unkey(self, caller: Caller) -> None:
        if self.limits is not None and caller.owner is not None:
            await self.limits.end_generation(caller.owner, 0)

    def background(self, prompt_ids: Sequence[int], params: GenerationParams,
                   request_id: str) -> Generation | None:
        """Background work (a prefix warm-up) while the gate is idle, unmetered and last in
        the engine's queue; None when the gate is busy."""
        ticket = self.admission.background()
        if ticket is None:
            return None
        return Generation(self, prompt_ids, params, Caller(request_id, ticket.enqueued_at),
                          ticket, None, None)


@dataclass(frozen=True)
class Place:
    """A generation's place at the gate, its prompt not yet made: `start` it once the prompt
    is tokenized, or `release` it (a 400 found while making the prompt, a conflict)."""

    gate: Gate
    caller: Caller
    ticket: Ticket

    def start(self, prompt_ids: Sequence[int], params: GenerationParams, *,
              transport: str | None = None, meter: StreamMeter | None = None) -> Generation:
        """Metered by `meter`, or by a new one on `transport` from its first step."""
        self.gate.admission.objective.prompt_known(self.ticket, len(prompt_ids),
                                                   params.max_tokens)
        return Generation(self.gate, prompt_ids, params, self.caller, self.ticket, meter,
                          transport)

    async def release(self) -> None:
        self.gate.admission.release(self.ticket)
        await self.gate._unkey(self.caller)


class Generation:
    """One generation: its deltas (`deltas()`, once), its usage, and its end (`end()`, once,
    whether or not its deltas were ever read)."""

    def __init__(self, gate: Gate, prompt_ids: Sequence[int], params: GenerationParams,
                 caller: Caller, ticket: Ticket, meter: StreamMeter | None,
                 transport: str | None) -> None:
        self.gate = gate
        self.transport = transport
        self.prompt_ids = prompt_ids
        self.params = params
        self.caller = caller
        self.ticket = ticket
        self.meter = meter
        self.cause: AbortCause | None = None
        self.outcome = "done"  # done | cancelled | disconnected | error
        self._ended = False
        gate.lifecycle.started()  # counted until its end (`end()`): a drain waits for it

    def usage(self) -> dict[str, int]:
        """prompt_tokens, completion_tokens and cached_tokens, as the engine counted them."""
        if self.meter is None:
            return {"prompt_tokens": len(self.prompt_ids), "completion_tokens": 0,
                    "cached_tokens": 0}
        return self.meter.usage()

    async def deltas(self, heartbeat_s: float | None = None, *,
                     on_admitted: Callable[[], None] | None = None,
                     end_here: bool = True,
                     times_tokens: bool = True) -> AsyncGenerator[Delta | None, None]:
        """The engine's deltas; with `heartbeat_s`, None after each such interval spent
        waiting in the admission queue (a stream sends a keep-alive for it). `on_admitted`
        runs as it enters the engine. With `end_here`, it ends (`end()`) as its deltas do;
        else its owner ends it once it has stored what it made (a session reply). With
        `times_tokens`, a delta with text is a token shown (TTFT, ITL); else its owner says
        when one is (a session reply, once its reasoning is split off)."""
        gate, ticket, finished = self.gate, self.ticket, set()
        if self.meter is None and self.transport is not None:
            self.meter = StreamMeter(self.transport, len(self.prompt_ids),
                                     self.caller.accepted_at)
        meter = self.meter
        task = asyncio.current_task()
        unregister = gate.lifecycle.on_abort(lambda: stop(task, "drain"))
        try:
            while not await gate.admission.wait(ticket, heartbeat_s):
                yield None
            if ticket.released:  # given up while it waited: nothing to generate
                return
            async with asyncio.timeout(gate.max_seconds):  # counted from admission
                if on_admitted is not None:
                    on_admitted()
                first = True
                try:
                    async for delta in gate.engine.stream(self.prompt_ids, self.params,
                                                          self.caller.request_id,
                                                          ticket.priority):
                        if first:
                            first = False
                            gate.admission.first_token(ticket, _uncached(delta),
                                                       delta.token_count)
                        elif delta.index == 0:  # a decode step, timed for the predictor
                            gate.admission.tokens(ticket, delta.token_count)
                        if delta.queue_s is not None:  # the gate's wait and the engine's
                            delta.queue_s += ticket.waited_s
                        if meter is not None:
                            meter.count(delta)
                            if times_tokens and delta.text:
                                meter.shown()
                        if delta.finish_reason is not None:
                            finished.add(delta.index)
                        yield delta
                finally:
                    gate.admission.release(ticket)
        except TimeoutError:  # the deadline: the open choices end as if at max_tokens
            self._abort("timeout")
            for index in sorted(set(range(self.params.n)) - finished):
                end = Delta(index=index, text="", token_count=0, finish_reason="length")
                if meter is not None:
                    meter.count(end)
                yield end
        except (asyncio.CancelledError, GeneratorExit):
            cause = cause_of(task)
            self._abort(cause or ("drain" if gate.lifecycle.aborting else "client_left"))
            if self.cause == "drain":
                raise Draining("the server stopped before this generation finished",
                               retry_after_s=RETRY_AFTER_S) from None
            raise
        except Exception:
            self._abort("engine_error")
            raise
        finally:
            unregister()
            gate.admission.release(ticket)  # its place goes to the next one at once
            if end_here:
                await self.end()

    def _abort(self, cause: AbortCause) -> None:
        if self.cause is not None:
            return
        self.cause = cause
        if not self.ticket.background:  # a warm-up stopped for a generation is no stream
            metrics.ABORTED.labels(cause).inc()
        self.outcome = {"timeout": "done", "client_left": "disconnected",
                        "engine_error": "error"}.get(cause, "cancelled")

    async def end(self, outcome: str | None = None, *, text: str | None = None) -> None:
        """Once: free its admission place, end the key's count of it (charging its tokens)
        and record it (`outcome`: its own unless the owner says, e.g. a stored reply's
        status)."""
        if self._ended:
            return
        self._ended = True
        self.gate.admission.release(self.ticket)  # one never started, too
        try:
            limits, owner = self.gate.limits, self.caller.owner
            if limits is not None and owner is not None:
                tokens = self.meter.completion_tokens if self.meter is not None else 0
                await limits.end_generation(owner, tokens)
        finally:
            if self.meter is not None:
                self.meter.finish(outcome or self.outcome, text=text,
                                  predicted_s=self.ticket.predicted_s)
            self.gate.lifecycle.ended()

    async def release(self) -> None:
        """End it unstarted or unread: a request refused or left before its response."""
        await self.end()


def _uncached(delta: Delta) -> int | None:
    """The prompt tokens the engine prefilled for the first delta (not those cached)."""
    if delta.prompt_tokens is None:
        return None
    return delta.prompt_tokens - (delta.cached_tokens or 0)
