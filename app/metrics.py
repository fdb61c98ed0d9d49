"""Prometheus metric definitions (names are part of the contract in API.md); nothing else."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets from 5 ms to 60 s: TTFT on a loaded CPU reaches seconds.
_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_TOKEN_GAP = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)

TIME_TO_FIRST_TOKEN = Histogram(
    "streamchat_time_to_first_token_seconds", "Request accepted to first token produced.",
    ["transport"], buckets=_LATENCY)
INTER_TOKEN_LATENCY = Histogram(
    "streamchat_inter_token_latency_seconds", "Gap between consecutive token events.",
    ["transport"], buckets=_TOKEN_GAP)
REQUEST_DURATION = Histogram(
    "streamchat_request_duration_seconds", "Request accepted to last event.",
    ["transport"], buckets=_LATENCY)
QUEUE_TIME = Histogram(
    "streamchat_queue_time_seconds", "Time waiting in the engine before first scheduled.",
    ["transport"], buckets=_LATENCY)
ACTIVE_STREAMS = Gauge("streamchat_active_streams", "Generations in progress.", ["transport"])
GENERATED_TOKENS = Counter("streamchat_generated_tokens", "Completion tokens generated.")
PROMPT_TOKENS = Counter("streamchat_prompt_tokens", "Prompt tokens processed.")
CACHED_PROMPT_TOKENS = Counter(
    "streamchat_cached_prompt_tokens", "Prompt tokens served from the prefix cache.")
REQUESTS = Counter("streamchat_requests", "Requests by outcome.", ["transport", "outcome"])
SESSIONS = Gauge("streamchat_sessions", "Sessions held by this replica's store.")
QUEUE_LENGTH = Gauge("streamchat_queue_length",
                     "Generations waiting in the admission queue for the engine.")
ADMITTED = Gauge("streamchat_admitted_generations",
                 "Generations admitted into the engine (prefilling or decoding).")
PREFIX_WARMUPS = Counter(
    "streamchat_prefix_warmups", "Background prefills of a conversation's next prefix, by outcome.",
    ["outcome"])
# The first-token objective (app/admission/objective.py): each accepted request's TTFT over
# the TTFT predicted when it was accepted (1: exact; above: later than predicted), whether it
# met the objective, and the requests refused for it.
TTFT_PREDICTION_RATIO = Histogram(
    "streamchat_ttft_prediction_ratio", "Actual over predicted time to first token.",
    buckets=(0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0))
TTFT_OBJECTIVE_OUTCOMES = ("met", "missed", "refused")
TTFT_OBJECTIVE_REQUESTS = Counter(
    "streamchat_ttft_objective_requests",
    "Requests by the first-token objective: accepted and met it, accepted and missed it, "
    "refused for it.", ["outcome"])
TTFT_OBJECTIVE = Gauge("streamchat_ttft_objective_seconds",
                       "The first-token objective admission keeps (0: none).")
PREFILL_RATE = Gauge("streamchat_prefill_tokens_per_second",
                     "The engine's prefill rate as admission last measured it.")
ENGINE_RUNNING = Gauge("streamchat_engine_running_requests", "Requests the engine is running.")
ENGINE_WAITING = Gauge("streamchat_engine_waiting_requests", "Requests waiting in the engine.")
ENGINE_KV_CACHE_USAGE = Gauge(
    "streamchat_engine_kv_cache_usage_ratio", "Fraction of the KV cache in use.")
# The engine's deaths (its core process gone, or a restart that failed) and the restarts in
# place that made it ready again (app/engine/supervisor.py).
ENGINE_DEATHS = Counter("streamchat_engine_deaths", "Engine deaths noticed (a failed restart is one).")
ENGINE_RESTARTS = Counter("streamchat_engine_restarts",
                          "Engines started again in this process after a death.")

# Refused before a generation starts (the 401/403, 429, 503 and 413 answers; 421/400 for a
# Host not served, 403 for another site's page).
REJECT_REASONS = ("auth", "rate_limit", "queue_full", "draining", "too_large", "host", "origin")
REJECTED = Counter(
    "streamchat_rejected_requests", "Requests refused before generating, by reason.", ["reason"])
# Generations stopped before their end: the client left, asked to cancel, the replica drained
# past its timeout, a request ran out of time, or the engine failed (app/generation.py).
ABORT_CAUSES = ("client_left", "cancel", "drain", "timeout", "engine_error")
ABORTED = Counter("streamchat_aborted_streams", "Generations aborted, by cause.", ["cause"])

# Every series shows at 0 from the first scrape: rate() and alerts need a baseline sample.
for _transport in ("sse", "ws", "openai"):
    ACTIVE_STREAMS.labels(_transport)
for _reason in REJECT_REASONS:
    REJECTED.labels(_reason)
for _cause in ABORT_CAUSES:
    ABORTED.labels(_cause)
for _outcome in TTFT_OBJECTIVE_OUTCOMES:
    TTFT_OBJECTIVE_REQUESTS.labels(_outcome)
WARMUP_OUTCOMES = ("done", "stopped", "failed")  # stopped: a generation arrived
for _outcome in WARMUP_OUTCOMES:
    PREFIX_WARMUPS.labels(_outcome)
