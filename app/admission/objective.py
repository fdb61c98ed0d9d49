"""The first-token objective (`STREAMCHAT_TTFT_SLO_MS`): a request is accepted only if its
predicted time to first token (ttft.py) fits; otherwise it is refused at once, with a
Retry-After taken from the prediction. Each accepted request's prediction is then checked
against its first token (exported: streamchat_ttft_prediction_ratio, and met or missed in
streamchat_ttft_objective_requests_total).

Retry-After: what is ahead of a request drains at the engine's pace, one second of predicted
wait per second, so the prediction falls under the objective after (prediction - objective)
seconds, rounded up (HTTP gives whole seconds), at least 1.

A request with nothing ahead of it (no prompt to prefill before its own, a free place) is never
refused: its wait is its own prompt, and refusing it would refuse it forever. The default
objective admits a lone prompt of the whole context on an idle engine anyway (`default_slo_s`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

from app import metrics
from app.admission.ticket import Ticket
from app.admission.ttft import TtftPredictor, ahead_of
from app.errors import QueueFull

# The default objective: twice a lone prompt of max_model_len on an idle engine (the
# calibration times prompts up to 1,024 tokens; attention grows faster than linearly past
# them), and never under a second.
DEFAULT_SLO_FACTOR = 2.0
MIN_DEFAULT_SLO_S = 1.0


def default_slo_s(predictor: TtftPredictor, max_model_len: int) -> float:
    """The objective a machine gets unless set: it admits any lone prompt that fits the
    context, at the rate measured (rounded up to 0.1 s)."""
    alone = DEFAULT_SLO_FACTOR * predictor.alone_s(max_model_len)
    return max(MIN_DEFAULT_SLO_S, math.ceil(alone * 10) / 10)


class Objective:
    """Predicts, decides and checks; `slo_s` None: predicts and checks, never refuses."""

    def __init__(self, predictor: TtftPredictor | None = None,
                 slo_s: float | None = None) -> None:
        self.predictor = predictor if predictor is not None else TtftPredictor()
        self.context: int | None = None  # the engine's max_model_len: no prompt is longer
        self.slo_s: float | None = None
        self.set_slo(slo_s)
        metrics.PREFILL_RATE.set(self.predictor.prefill_tps)

    def set_slo(self, slo_s: float | None) -> None:
        self.slo_s = slo_s
        metrics.TTFT_OBJECTIVE.set(slo_s or 0.0)

    def estimate(self, ticket: Ticket, prompt_chars: int, prompt_tokens: int | None) -> None:
        """The ticket's prompt size before it is tokenized (its real count, if known)."""
        ticket.prompt_chars = prompt_chars
        if prompt_tokens is None:
            prompt_tokens = self.predictor.estimate_tokens(prompt_chars)
            if self.context is not None:  # a session's history is trimmed to fit
                prompt_tokens = min(prompt_tokens, self.context)
        ticket.prompt_tokens = prompt_tokens

    def refusal(self, ticket: Ticket, order: Sequence[Ticket], in_engine: Iterable[Ticket],
                max_active: int, per_step: int = 1) -> QueueFull | None:
        """Predict the TTFT of `ticket`, queued in the fair `order` (`per_step` prompts are
        prefilled in an engine step); the refusal to raise if it misses the objective."""
        ahead = ahead_of(order.index(ticket), order, in_engine, max_active, per_step)
        predicted = self.predictor.predict(ahead, ticket.prompt_tokens)
        ticket.predicted_s = predicted
        if self.slo_s is None or predicted <= self.slo_s or ahead.nothing:
            return None
        metrics.TTFT_OBJECTIVE_REQUESTS.labels("refused").inc()
        retry = max(1, math.ceil(predicted - self.slo_s))
        return QueueFull(f"the server is at capacity: this request's first token would come in "
                         f"about {predicted:.1f} s, past the {self.slo_s:.1f} s it promises; "
                         f"retry in {retry} s", retry_after_s=retry)

    # -- what happened ---------------------------------------------------------------------

    def prompt_known(self, ticket: Ticket, prompt_tokens: int, max_tokens: int) -> None:
        self.predictor.tokenized(ticket.prompt_chars, prompt_tokens)
        ticket.prompt_tokens = prompt_tokens
        ticket.max_tokens = max_tokens

    def first_token(self, ticket: Ticket, uncached_tokens: int | None, count: int) -> None:
        now = time.monotonic()
        ticket.generated += count
        if ticket.alone and ticket.admitted_at is not None and uncached_tokens is not None:
            self.predictor.prefilled_alone(uncached_tokens, now - ticket.admitted_at)
            metrics.PREFILL_RATE.set(self.predictor.prefill_tps)
        ticket.last_token_at = now
        if ticket.predicted_s is None or ticket.background:
            return
        actual = now - ticket.enqueued_at
        metrics.TTFT_PREDICTION_RATIO.observe(actual / max(ticket.predicted_s, 1e-3))
        if self.slo_s is not None:
            outcome = "met" if actual <= self.slo_s else "missed"
            metrics.TTFT_OBJECTIVE_REQUESTS.labels(outcome).inc()

    def tokens(self, ticket: Ticket, count: int) -> None:
        """A delta of `count` tokens after the first: a decode step's time, learned."""
        now = time.monotonic()
        ticket.generated += count
        if ticket.last_token_at is not None and count > 0:
            self.predictor.stepped((now - ticket.last_token_at) / count)
        ticket.last_token_at = now
