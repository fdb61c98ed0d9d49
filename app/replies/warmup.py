"""Warming a conversation's next prefix while its user reads and types.

Each turn's prompt is the whole conversation rendered with the model's template, and the
engine's prefix cache skips what an earlier prompt already computed: the earlier prompt and
the tokens generated for the reply. Where the template renders the reply differently from
those tokens (a re-tokenized text, an end-of-turn marker, a stripped thought), the next turn
re-prefills from there; so once a reply is stored, the history through the end of that reply
can be prefilled in the background with a one-token request, and the next turn only
prefills its own message.

Off by default (`prefix_warmup`): with the default model on vLLM 0.32 the reply re-renders as
generated, and the next turn found the same history cached with and without it (10 turns on
a 2-core AVX2 CPU: 1,536 of 1,629 prompt tokens at turn 10, the rest being the new message and
the last partial block), while a warm-up still running when a request arrived delayed that
first token by its step (353 ms -> 628 ms). `python -m benchmarks multiturn
--prefix-warmup` and `--no-prefix-warmup` measure it for another model.

It must never delay anyone's first token: a warm-up starts only while the admission gate is
idle (nobody waits, no prompt is being prefilled), goes last in the engine's own queue, and is
aborted the moment a generation arrives (what it computed so far stays in the prefix cache;
it is tried again at the next idle moment).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from app import metrics
from app.engine.base import GenerationParams
from app.generation import Gate
from app.history import next_turn_prefix
from app.ids import new_id
from app.leases import REPLY
from app.replies.live import Replies
from app.sessions.store import SessionStore
from app.tasks import STOP_BOUND_S, cancel_and_wait
from app.token_budget import history_reserve

log = logging.getLogger("streamchat.warmup")

ONE_TOKEN = GenerationParams(max_tokens=1, temperature=0.0)


class PrefixWarmer:
    def __init__(self, gate: Gate, store: SessionStore, replies: Replies, *,
                 default_max_tokens: int, max_pending: int = 64) -> None:
        self.gate = gate
        self.engine = gate.engine
        self.lifecycle = gate.lifecycle
        self.store = store
        self.admission = gate.admission
        self.replies = replies
        self.default_max_tokens = default_max_tokens
        self.max_pending = max_pending
        self._pending: OrderedDict[str, None] = OrderedDict()  # session ids, newest last
        self._task: asyncio.Task[None] | None = None
        self._current: str | None = None
        replies.on_stored = self.schedule
        self.admission.on_busy(self.stop)
        self.admission.on_idle(self._start_next)

    def schedule(self, session_id: str) -> None:
        """Warm this session's next prefix at the next idle moment (the newest first)."""
        self._pending[session_id] = None
        self._pending.move_to_end(session_id)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
        self._start_next()

    def stop(self) -> None:
        """A generation arrived: abort the warm-up in flight, and try it again later."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            if self._current is not None and self._current not in self._pending:
                self._pending[self._current] = None
                self._pending.move_to_end(self._current, last=False)

    async def close(self) -> None:
        self._pending.clear()
        if self._task is not None:
            await cancel_and_wait(self._task, bound_s=STOP_BOUND_S)

    def _start_next(self) -> None:
        if (self._task is not None and not self._task.done()) or not self._pending:
            return
        if not self.admission.idle or self.lifecycle.not_ready_reason() is not None:
            return  # busy, or loading or draining
        session_id, _ = self._pending.popitem(last=True)
        self._current = session_id
        self._task = asyncio.create_task(self._warm(session_id), name=f"warmup-{session_id}")
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._current = None
        if task.cancelled():
            metrics.PREFIX_WARMUPS.labels("stopped").inc()
        elif task.exception() is not None:
            metrics.PREFIX_WARMUPS.labels("failed").inc()
            log.warning("prefix warm-up failed: %s", task.exception())
        # The next one, once the loop has settled what just happened.
        asyncio.get_running_loop().call_soon(self._start_next)

    async def _warm(self, session_id: str) -> None:
        if self.replies.of_session(session_id) is not None:
            return  # its next turn is already here
        session = await self.store.get(session_id)
        if session is None or await self.replies.leases.holder(REPLY, session_id) is not None:
            return
        reserve = history_reserve(self.engine.max_model_len, None, self.default_max_tokens)
        ids = await next_turn_prefix(self.engine, session, reserve)
        # Through the gate as background work: only while it is idle, last in the engine.
        warm_up = None if ids is None else self.gate.background(
            ids, ONE_TOKEN, new_id("warm-", 16))
        if warm_up is None:
            return
        async for _ in warm_up.deltas():
            pass
        metrics.PREFIX_WARMUPS.labels("done").inc()
