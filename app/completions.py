"""Stateless completions for the OpenAI-compatible API: prompt -> engine deltas, measured.

The same engine, the same per-step streaming, the same token budget, the same per-key limits
and the same meter as session replies, without a session or an event log: an OpenAI client
that leaves takes its request with it (the engine aborts at once).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from app import metrics
from app.admission import Admission, Ticket
from app.engine.base import ChatTurn, Delta, Engine, GenerationParams
from app.errors import Draining
from app.lifecycle import RETRY_AFTER_S, Lifecycle
from app.limits import KeyLimits
from app.metering import StreamMeter
from app.token_budget import reply_max_tokens

TRANSPORT = "openai"


@dataclass(frozen=True)
class Caller:
    """Who asks (the key's owner, for its limits; `user`, whom the admission queue is fair to,
    when there is no owner), and when the request was accepted (TTFT)."""

    request_id: str
    accepted_at: float
    owner: str | None = None
    user: str = "-"
    priority: int = 0  # among the user's own waiting requests, lower first (`Ticket.rank`)


class Completion:
    """One request: its deltas (`deltas()`, once), then its usage."""

    def __init__(self, service: CompletionService, prompt_ids: Sequence[int],
                 params: GenerationParams, caller: Caller, ticket: Ticket) -> None:
        self._service = service
        self._prompt_ids = prompt_ids
        self._params = params
        self._caller = caller
        self._ticket = ticket
        self._meter: StreamMeter | None = None
        self._released = False

    @property
    def prompt_ids(self) -> Sequence[int]:
        return self._prompt_ids

    def usage(self) -> dict[str, int]:
        """prompt_tokens, completion_tokens and cached_tokens, as the engine counted them."""
        if self._meter is None:
            return {"prompt_tokens": len(self._prompt_ids), "completion_tokens": 0,
                    "cached_tokens": 0}
        return self._meter.usage()

    async def deltas(self, heartbeat_s: float | None = None) -> AsyncGenerator[Delta | None, None]:
        """The engine's deltas; with `heartbeat_s`, None after each such interval spent waiting
        in the admission queue (a stream sends a keep-alive comment for it)."""
        service, caller = self._service, self._caller
        # Metered from the first iteration: a response never sent counts as no stream at all.
        meter = self._meter = StreamMeter(TRANSPORT, len(self._prompt_ids), caller.accepted_at)
        outcome, finished = "done", set()
        task = asyncio.current_task()

        def abort() -> None:  # the drain timed out: stop this request where it stands
            if task is not None:
                task.cancel()

        unregister = service.lifecycle.on_abort(abort)
        try:
            with service.lifecycle.generation():
                while not await service.admission.wait(self._ticket, heartbeat_s):
                    yield None
                # max_seconds counts from admission: the queue is bounded by its length.
                async with asyncio.timeout(None) as deadline:
                    loop = asyncio.get_running_loop()

                    def admitted() -> None:
                        if service.max_seconds is not None:
                            deadline.reschedule(loop.time() + service.max_seconds)

                    async for delta in service.admission.generate(
                            self._ticket, service.engine, self._prompt_ids, self._params,
                            caller.request_id, on_admitted=admitted):
                        meter.count(delta)
                        if delta.text:
                            meter.shown()
                        if delta.finish_reason is not None:
                            finished.add(delta.index)
                        yield delta
        except TimeoutError:  # max_reply_seconds: the open choices end as if at max_tokens
            metrics.ABORTED.labels("timeout").inc()
            for index in sorted(set(range(self._params.n)) - finished):
                yield Delta(index=index, text="", token_count=0, finish_reason="length")
        except (asyncio.CancelledError, GeneratorExit):
            if service.lifecycle.aborting:
                metrics.ABORTED.labels("drain").inc()
                outcome = "cancelled"
                raise Draining("the server stopped before this completion finished",
                               retry_after_s=RETRY_AFTER_S) from None
            metrics.ABORTED.labels("client_left").inc()
            outcome = "disconnected"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            unregister()
            meter.finish(outcome)
            await self.release()

    async def release(self) -> None:
        """End the key's count of this generation, charging its tokens: once, whether or not
        its deltas were ever read (a client may leave before the response starts)."""
        if self._released:
            return
        self._released = True
        self._service.admission.release(self._ticket)  # a response never started, too
        limits, owner = self._service.limits, self._caller.owner
        if limits is not None and owner is not None:
            tokens = self._meter.completion_tokens if self._meter is not None else 0
            await limits.end_generation(owner, tokens)


class CompletionService:
    def __init__(self, engine: Engine, lifecycle: Lifecycle, admission: Admission, *,
                 default_max_tokens: int = 512, max_reply_tokens: int | None = None,
                 max_seconds: float | None = None, limits: KeyLimits | None = None) -> None:
        self.engine = engine
        self.lifecycle = lifecycle
        self.admission = admission
        self.default_max_tokens = default_max_tokens
        self.max_reply_tokens = max_reply_tokens
        self.max_seconds = max_seconds
        self.limits = limits

    async def chat(self, turns: Sequence[ChatTurn], params: GenerationParams,
                   requested: int | None, caller: Caller, *, add_generation_prompt: bool = True,
                   continue_final_message: bool = False,
                   tools: Sequence[dict[str, Any]] | None = None) -> Completion:
        """A completion of the chat rendered with the model's template (and its `tools`)."""
        self.lifecycle.check_accepting()
        prompt_ids = await self.engine.render_chat(
            turns, add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message, tools=tools)
        return await self._start(prompt_ids, params, requested, caller, "messages")

    async def text(self, prompt: str | Sequence[int], params: GenerationParams,
                   requested: int | None, caller: Caller) -> Completion:
        """A completion of a text prompt, or of token ids as given."""
        self.lifecycle.check_accepting()
        prompt_ids = await self.engine.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        return await self._start(prompt_ids, params, requested, caller, "prompt")

    async def _start(self, prompt_ids: Sequence[int], params: GenerationParams,
                     requested: int | None, caller: Caller, prompt_param: str) -> Completion:
        max_tokens = reply_max_tokens(self.engine.max_model_len, len(prompt_ids), requested,
                                      self.default_max_tokens, prompt_param=prompt_param,
                                      cap=self.max_reply_tokens)
        params = replace(params, max_tokens=max_tokens)
        self.engine.check(params)  # a bad schema or token id is a 400 before anything starts
        if self.limits is not None and caller.owner is not None:
            await self.limits.start_generation(caller.owner)
        try:
            # A full queue answers now (429), before any response starts.
            ticket = self.admission.enqueue(caller.user, rank=caller.priority)
        except BaseException:
            if self.limits is not None and caller.owner is not None:
                await self.limits.end_generation(caller.owner, 0)
            raise
        return Completion(self, prompt_ids, params, caller, ticket)
