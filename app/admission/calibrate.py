"""The engine's pace, measured once it has started: the prefill rate and a step's fixed cost
that the first-token predictor (ttft.py) starts from, and the default objective is derived
from (objective.py). Three lone prompts of max_tokens 1, through the gate's way in for
background work, while the replica says it is not ready yet (about a second): a short one to
warm the engine up, then a short and a long one; the difference between the last two is the
rate. Each prompt starts with other tokens: none is served from the prefix cache."""

from __future__ import annotations

import logging
import time

from app import metrics
from app.admission.objective import DEFAULT_SLO_FACTOR, MIN_DEFAULT_SLO_S, Objective, default_slo_s
from app.admission.ttft import TtftPredictor
from app.engine.base import GenerationParams
from app.generation import Gate

# Prompt sizes timed. On a 2-core EPYC, 1,024 tokens took 2 s with AVX-512 in bf16 (522 prompt
# tokens/s) and 5.8 s with AVX2 in fp32 (175/s), which is what the measurement adds to a start.
# The rate is the long prompt's, and the cost of a token grows with the prompt (a 158-token
# prompt took 0.54 s alone on the AVX2 machine, ~290/s): shorter prompts' waits are predicted
# long, and much longer ones' short.
SHORT_TOKENS = 32
LONG_TOKENS = 1024
log = logging.getLogger("streamchat")


async def calibrate(gate: Gate, predictor: TtftPredictor) -> bool:
    """Set the predictor's prefill rate and step time from the engine; False (nothing set)
    when its context is too short to time two sizes, or requests came meanwhile."""
    long = min(LONG_TOKENS, gate.engine.max_model_len - 1)
    short = min(SHORT_TOKENS, long // 4)
    if short < 1:
        return False
    times = []
    for run, tokens in enumerate((short, short, long)):
        seconds = await _prefill(gate, tokens, run)
        if seconds is None:
            return False
        times.append(seconds)
    per_token = max((times[2] - times[1]) / (long - short), 1e-6)
    predictor.prefill_tps = 1 / per_token
    predictor.step_s = predictor.idle_step_s = max(times[1] - short * per_token, 1e-3)
    return True


async def _prefill(gate: Gate, tokens: int, run: int) -> float | None:
    """Seconds to the first token of a lone prompt of `tokens` tokens (its own prefix); None
    when the gate is busy."""
    text = " ".join(str(run * 1_000_003 + k) for k in range(tokens))
    ids = (await gate.engine.tokenize(text))[:tokens]
    started = time.monotonic()
    generation = gate.background(ids, GenerationParams(max_tokens=1, temperature=0.0),
                                 f"calibrate-{run}")
    if generation is None:
        return None
    async for _ in generation.deltas():
        pass
    return time.monotonic() - started


async def keep_objective(gate: Gate, objective: Objective, slo_ms: int | None,
                         measure: bool) -> bool:
    """Once the engine first runs: measure it (with `measure`: the real engine, not a scripted
    one), then set the objective: `slo_ms` (STREAMCHAT_TTFT_SLO_MS; 0: none), else the
    default derived from what was measured (none if nothing was), and log it. True when the
    engine was measured."""
    engine = gate.engine
    objective.context = engine.max_model_len
    gate.lifecycle.measuring = measure  # not ready meanwhile: nothing else in the engine
    try:
        measured = measure and await calibrate(gate, objective.predictor)
    finally:
        gate.lifecycle.measuring = False
    predictor = objective.predictor
    metrics.PREFILL_RATE.set(predictor.prefill_tps)
    if measured:
        log.info("admission: the engine prefills %.0f prompt tokens/s, %.0f ms a step; a lone "
                 "prompt of the whole context (%d tokens) would wait %.2f s",
                 predictor.prefill_tps, predictor.step_s * 1000, engine.max_model_len,
                 predictor.alone_s(engine.max_model_len))
    if slo_ms == 0 or (slo_ms is None and not measured):
        objective.set_slo(None)
        log.info("admission: no first-token objective (%s)", "STREAMCHAT_TTFT_SLO_MS=0"
                 if slo_ms == 0 else "the engine was not measured")
        return measured
    how = "STREAMCHAT_TTFT_SLO_MS" if slo_ms else (
        f"the default: {DEFAULT_SLO_FACTOR:g}x that lone prompt, at least "
        f"{MIN_DEFAULT_SLO_S:g} s")
    objective.set_slo(slo_ms / 1000 if slo_ms else default_slo_s(predictor, engine.max_model_len))
    log.info("admission: first-token objective %.1f s (%s); a request predicted to miss it is "
             "refused at once", objective.slo_s, how)
    return measured
