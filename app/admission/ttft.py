"""How long a request will wait for its first token, from what is ahead of it.

Pure arithmetic over what the admission gate knows; the gate (gate.py) asks before it accepts a
request, and tells what happened once the first token came (objective.py keeps the score).

The model, for a request that arrives now:

    TTFT = place wait + (prompt tokens ahead + its own) / prefill rate
           + one engine step for each step's worth of prompts ahead, and its own
           + half a step, for the step under way, when the engine is running any

- prompt tokens ahead: those of the prompts in the engine without a first token yet (counted
  whole: a prefill's progress is not seen from here, so the guess errs long), and those of the
  requests queued before it in the fair order;
- the steps: prompts are prefilled in engine steps that also carry every stream decoding,
  whose time the step time learned under load holds (without them, a 1.5 s objective at 3x
  overload on the AVX2 machine let in requests whose first token came at p99 6.3 s). How many
  prompts a step takes is the pacing's (pacing.py): one while the token limit holds, a share of
  a deep queue behind a burst. Counted one a step there too, 64 closed-loop clients on a 2-core
  AVX2 EPYC (2026-12-03) had predictions of 27-63 s for first tokens that came in 8.6-14.8 s,
  and past the 64 s objective every request after the 98th was refused;
- place wait: when every place in the engine is taken, the decode steps until enough running
  generations end (each one's max_tokens less what it made: the steps left to its end, at
  most), at the measured step time;
- the step under way: a prompt let in waits for the engine's current step to end before its
  own begins, half a step on average;
- the prefill rate (prompt tokens per second) and the step time are learned as the engine
  runs: the rate from prompts prefilled alone on an idle engine, less an idle step's fixed
  cost (`idle_step_s`, from the calibration); the step from the gaps between a stream's tokens.
  Both are exponential averages, so they follow the engine's load and the machine. They start
  from the start's calibration (calibrate.py), else from the conservative seeds below. A rate
  learned from prompts with streams decoding beside them, less the step time learned under that
  load, had drifted from 170 to 900 tokens/s in 50 s of 3x overload on the AVX2 machine
  (2026-12-02), and a prompt with nothing ahead was predicted 0.5 s for a first token in 1-1.8 s.

A request's own prompt is not tokenized before the gate decides (a refused request costs no
tokenizer or template): its tokens are estimated from its characters at the tokens per
character learned from earlier requests, and replaced by the real count once known.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.admission.ticket import Ticket

# Seeds, used until the engine has been measured (a scripted engine never is): near what a
# 2-core EPYC measured with AVX-512 in bf16 (522 prompt tokens/s; 175 with AVX2 in fp32).
SEED_PREFILL_TPS = 500.0
SEED_STEP_S = 0.05
SEED_TOKENS_PER_CHAR = 0.3  # English BPE: ~4 characters a token; 0.3 errs long
LEARNING = 0.2  # weight of a new observation in the averages
# A prompt shorter than this says more about a step's fixed cost than about the prefill rate.
MIN_RATE_SAMPLE_TOKENS = 64
# A template adds its own tokens to every prompt (the default model's: ~30, its system prompt);
# in a short prompt they would pass for tokens per character.
MIN_RATIO_SAMPLE_CHARS = 400


def ewma(old: float, new: float, weight: float = LEARNING) -> float:
    return old + weight * (new - old)


@dataclass(frozen=True, slots=True)
class Ahead:
    """What is ahead of one request: prompt tokens to prefill before its own, and decode
    steps until a place in the engine frees for it (0: one is free)."""

    prefill_tokens: int
    place_steps: int
    prefill_steps: int = 0  # engine steps that prefill the prompts ahead of its own
    busy: bool = False  # the engine runs a step now: its own starts once that one ends

    @property
    def nothing(self) -> bool:
        return self.prefill_tokens == 0 and self.place_steps == 0


def ahead_of(position: int, queued: Sequence[Ticket], in_engine: Iterable[Ticket],
             max_active: int, per_step: int = 1) -> Ahead:
    """What is ahead of the request at `position` of the fair order `queued` (the tickets
    waiting, in the order they will be admitted), with `in_engine` admitted and `per_step`
    prompts prefilled in an engine step."""
    engine = [t for t in in_engine if not t.background]
    prefilling = [t for t in engine if t.prefilling]
    tokens = sum(t.prompt_tokens for t in prefilling)
    tokens += sum(t.prompt_tokens for t in queued[:position])
    steps = math.ceil((len(prefilling) + position) / max(1, per_step))
    busy = bool(engine)
    needed = len(engine) + position + 1 - max_active  # places that must free first
    if needed <= 0 or not engine:
        return Ahead(tokens, 0, steps, busy)
    left = sorted(max(1, t.max_tokens - t.generated) for t in engine)
    # Past the generations running now, the next ones run about as long again.
    place_steps = left[min(needed, len(left)) - 1] * math.ceil(needed / len(left))
    return Ahead(tokens, place_steps, steps, busy)


def first_end_s(in_engine: Iterable[Ticket], predictor: TtftPredictor) -> float:
    """Seconds until the first generation in the engine ends, at most (0: none runs)."""
    left = [max(1, t.max_tokens - t.generated) for t in in_engine if not t.background]
    return min(left, default=0) * predictor.step_s


class TtftPredictor:
    def __init__(self, prefill_tps: float = SEED_PREFILL_TPS, step_s: float = SEED_STEP_S,
                 tokens_per_char: float = SEED_TOKENS_PER_CHAR) -> None:
        self.prefill_tps = prefill_tps
        self.step_s = step_s  # learned under load: a stream's gap between tokens
        self.idle_step_s = step_s  # a step's fixed cost with nothing else in the engine
        self.tokens_per_char = tokens_per_char

    def predict(self, ahead: Ahead, own_tokens: int) -> float:
        """Seconds from now to the first token of a request of `own_tokens` prompt tokens."""
        prefill = (ahead.prefill_tokens + own_tokens) / self.prefill_tps
        under_way = 0.5 if ahead.busy else 0.0
        return (ahead.place_steps + ahead.prefill_steps + 1 + under_way) * self.step_s + prefill

    def alone_s(self, prompt_tokens: int) -> float:
        """A lone prompt of `prompt_tokens` on an idle engine."""
        return self.predict(Ahead(0, 0), prompt_tokens)

    def estimate_tokens(self, chars: int) -> int:
        return math.ceil(chars * self.tokens_per_char)

    # -- learning --------------------------------------------------------------------------

    def prefilled_alone(self, uncached_tokens: int, seconds: float) -> None:
        """A prompt prefilled on an idle engine: `uncached_tokens` in `seconds`."""
        if uncached_tokens < MIN_RATE_SAMPLE_TOKENS or seconds <= 0:
            return
        # Less an idle step's fixed cost, which predict() adds apart; never below a tenth.
        prefill_s = max(seconds - self.idle_step_s, seconds / 10)
        self.prefill_tps = ewma(self.prefill_tps, uncached_tokens / prefill_s)

    def stepped(self, seconds_per_token: float) -> None:
        """A gap between two deltas of one stream, per token: one decode step."""
        if seconds_per_token > 0:
            self.step_s = ewma(self.step_s, seconds_per_token)

    def tokenized(self, chars: int, tokens: int) -> None:
        """A prompt of `chars` characters was `tokens` tokens."""
        if chars >= MIN_RATIO_SAMPLE_CHARS and tokens > 0:
            self.tokens_per_char = ewma(self.tokens_per_char, tokens / chars)
