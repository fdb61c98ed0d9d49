"""vLLM's scheduler counts for /metrics: a stat logger vLLM calls once per engine step."""

from __future__ import annotations

from typing import Any

from app.engine.base import EngineStats


class SchedulerStatsLogger:
    """A vLLM stat logger that only keeps the latest scheduler counts. Class-wide, so that the
    counts go on from one engine to the next when a dead one is replaced."""

    latest = EngineStats()

    def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
        pass

    def record(self, scheduler_stats: Any, iteration_stats: Any, *args: Any, **kw: Any) -> None:
        if scheduler_stats is not None:
            SchedulerStatsLogger.latest = EngineStats(
                running=scheduler_stats.num_running_reqs,
                waiting=scheduler_stats.num_waiting_reqs,
                kv_cache_usage=float(scheduler_stats.kv_cache_usage),
            )

    def log_engine_initialized(self) -> None:
        pass

    def log(self) -> None:
        pass

    def record_sleep_state(self, is_awake: int, level: int) -> None:
        pass
