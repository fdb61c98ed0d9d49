"""How prompts are paced into the engine: how many may be there without a first token at once,
and how many prompt tokens they may hold together. The gate (gate.py) asks before each
admission.

Why pace at all: a prompt waiting here, in the fair order, gets its first token sooner than one
queued in the engine behind every other prompt (the engine prefills whatever it holds in big
steps). Why pace in tokens too: every engine step that prefills also carries every stream
already decoding, so the prompts let in together are the longest gap those streams see. On a
2-core AVX2 EPYC (fp32, 16 clients, 158-token prompts): 4 prompts at a time gave ITL p99 2.2 s,
2 gave 1.4 s and a lower TTFT p50 (1.6 s against 3.0 s); 1 kept ITL p99 at 1.4 s but its TTFT
p50 was 4.1 s (docs/VLLM-CPU.md). A count cannot suit every machine and prompt length, so the
default limit is in prompt tokens: what the engine prefills in `STEP_PREFILL_S`, at the rate
measured at start (calibrate.py). A GPU's rate makes it no limit; a 2-core AVX2 CPU's (171
tokens there), about one short prompt.

Three exceptions keep the limits from hurting. The token limit is for the steady state, where it
protects the streams decoding: it holds only while no more prompts wait than `max_prompts` and
the streams decoding are at least as many. In a cold burst nobody decodes yet (one prompt a
step made 16 clients' TTFT p99 17.0 s against vLLM's 11.2 s), and with a longer queue the
engine is behind, where big steps serve it fastest (held up to four rounds of the count, it
left 64 clients' TTFT p50 at 23.8 s against vLLM's 17.2 s). A deep queue is let in a
`PACING_ROUNDS`th at a time (a fixed 4 at a time had a 31% longer TTFT p99 at 64 clients than
the engine's own big steps). And a prompt alone, or of a user with nothing in the engine, is
never held by the token limit (a light user's first token does not wait for a heavy user's).

The token limit is for the next engine step: a prompt already in the step under way is not in
it (`in_step_under_way`). So the next prompt goes in while the one before is prefilled and is
in the engine when that step ends; held until its first token, it came a step later, after a
decode step the engine had begun meanwhile."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from app.admission.ticket import Ticket

PACING_ROUNDS = 4
# The engine time one step's prompts may take together, by default: the gap they put between
# the tokens of the streams decoding beside them.
STEP_PREFILL_S = 1.0
# A step's tokens reach the gate within a few milliseconds of one another; engine steps are 30
# ms or more apart (34 ms for an idle step on a 2-core AVX2 EPYC). A prompt let in less than
# this before a step's tokens came may be in that step's successor or the one after.
STEP_MARGIN_S = 0.01


@dataclass(slots=True)
class Pacing:
    max_prompts: int  # STREAMCHAT_MAX_PREFILLING
    max_tokens: int | None = None  # prompt tokens prefilling together; None: no limit

    def prompts(self, waiting: int) -> int:
        """Prompts that may be prefilling at once while `waiting` wait: the limit, or a
        `PACING_ROUNDS`th of a deep queue."""
        return max(self.max_prompts, math.ceil(waiting / PACING_ROUNDS))

    def tokens(self, waiting: int, decoding: int) -> int | None:
        """Prompt tokens that may be prefilling at once while `waiting` wait and `decoding`
        streams decode: the limit in the steady state, none in a cold burst or behind a queue
        longer than the count lets in."""
        if self.max_tokens is None or waiting > self.max_prompts or decoding < waiting:
            return None
        return self.max_tokens

    def per_step(self, waiting: int, decoding: int) -> int:
        """About how many prompts an engine step prefills while `waiting` wait: one while the
        token limit holds (about a step's worth of prefill), else the count's share."""
        return 1 if self.tokens(waiting, decoding) is not None else self.prompts(waiting)

    def next_step_fits(self, prompt_tokens: int, engine: Iterable[Ticket], last_step_end: float,
                       *, waiting: int, decoding: int) -> bool:
        """Whether a prompt of `prompt_tokens` may go into the engine (`engine`: its tickets)
        beside the prompts that will be prefilled with it in the next step: under the token
        limit, or alone there."""
        limit = self.tokens(waiting, decoding)
        if limit is None:
            return True
        next_step = [t.prompt_tokens for t in engine
                     if t.prefilling and not in_step_under_way(t, last_step_end)]
        return not next_step or sum(next_step) + prompt_tokens <= limit


def token_limit(setting: int | None, prefill_tps: float | None) -> int | None:
    """The prompt-token limit: `STREAMCHAT_MAX_PREFILL_TOKENS` (0: none), else what the engine
    prefills in `STEP_PREFILL_S` at `prefill_tps` (None: not measured, no limit)."""
    if setting is not None:
        return setting or None
    if prefill_tps is None:
        return None
    return max(1, round(prefill_tps * STEP_PREFILL_S))


def in_step_under_way(ticket: Ticket, last_step_end: float) -> bool:
    """Whether a prompt in the engine is in the step under way: an engine step ended (its
    tokens came at `last_step_end`) since it went in, so the engine has scheduled it."""
    return ticket.admitted_at is not None and last_step_end > ticket.admitted_at + STEP_MARGIN_S
