"""One generation's counts and times, recorded as they happen in the service's metrics, and in
one log line when it ends.

Session replies and OpenAI completions both stream engine deltas through a `StreamMeter`, so
usage, timings, the Prometheus series and the logs mean the same thing on every transport."""

from __future__ import annotations

import time
from typing import Any

from app import metrics
from app.engine.base import Delta
from app.logs import content_logged, log_line


class StreamMeter:
    def __init__(self, transport: str, prompt_tokens: int, accepted_at: float | None = None,
                 **log_fields: Any) -> None:
        self.transport = transport
        self.accepted_at = time.monotonic() if accepted_at is None else accepted_at
        self.prompt_tokens = prompt_tokens
        self.cached_tokens = 0
        self.completion_tokens = 0
        self.queue_s = 0.0
        self.finish_reason: str | None = None
        self.first_token_at: float | None = None
        self.log_fields = log_fields  # session and message ids, for the stream's log line
        self._last_token_at = 0.0
        self._itl = metrics.INTER_TOKEN_LATENCY.labels(transport)
        self._finished = False
        metrics.ACTIVE_STREAMS.labels(transport).inc()

    def count(self, delta: Delta) -> None:
        """Take in what the engine reported with this delta."""
        if delta.prompt_tokens is not None:
            self.prompt_tokens = delta.prompt_tokens
            self.cached_tokens = delta.cached_tokens or 0
        if delta.queue_s is not None:
            self.queue_s = delta.queue_s
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason
        self.completion_tokens += delta.token_count

    def shown(self) -> bool:
        """A token event is going out now; True for the first one (time to first token)."""
        now = time.monotonic()
        first = self.first_token_at is None
        if first:
            self.first_token_at = now
            metrics.TIME_TO_FIRST_TOKEN.labels(self.transport).observe(now - self.accepted_at)
        else:
            self._itl.observe(now - self._last_token_at)
        self._last_token_at = now
        return first

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cached_tokens": self.cached_tokens}

    def timings(self) -> dict[str, float]:
        ended_at = time.monotonic()
        total_s = ended_at - self.accepted_at
        return {
            "queue_ms": round(self.queue_s * 1000, 3),
            "ttft_ms": round(((self.first_token_at or ended_at) - self.accepted_at) * 1000, 3),
            "total_ms": round(total_s * 1000, 3),
            "tokens_per_s": round(self.completion_tokens / total_s, 3) if total_s > 0 else 0.0,
        }

    def finish(self, outcome: str, *, text: str | None = None,
               predicted_s: float | None = None) -> None:
        """Record the generation once: done | cancelled | disconnected | error; with
        `predicted_s`, the TTFT admission predicted for it (ttft.py), logged beside the real."""
        if self._finished:
            return
        self._finished = True
        metrics.ACTIVE_STREAMS.labels(self.transport).dec()
        metrics.REQUESTS.labels(self.transport, outcome).inc()
        metrics.REQUEST_DURATION.labels(self.transport).observe(time.monotonic() - self.accepted_at)
        metrics.QUEUE_TIME.labels(self.transport).observe(self.queue_s)
        metrics.GENERATED_TOKENS.inc(self.completion_tokens)
        metrics.PROMPT_TOKENS.inc(self.prompt_tokens)
        metrics.CACHED_PROMPT_TOKENS.inc(self.cached_tokens)
        timings = self.timings()
        fields = {**self.log_fields}
        if text is not None and content_logged():
            fields["reply"] = text
        elif not content_logged():
            fields.pop("content", None)
        log_line("stream", transport=self.transport, outcome=outcome, **fields,
                 queue_ms=timings["queue_ms"], ttft_ms=timings["ttft_ms"],
                 **({"predicted_ttft_ms": round(predicted_s * 1000, 3)}
                    if predicted_s is not None else {}),
                 duration_ms=timings["total_ms"], finish_reason=self.finish_reason,
                 **self.usage())
