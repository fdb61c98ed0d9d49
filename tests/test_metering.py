"""One generation's meter (app/metering.py): usage as the engine reported it, time to first
token observed once, the gaps between tokens, and the generation recorded once, with its
outcome, in the metrics and in one log line (text only with `log_content`).

Time is a clock the test moves: figures are exact, and nothing waits."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from app import logs, metering
from app.engine.base import Delta
from app.metering import StreamMeter


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The meter's clock (only the meter's: the event loop keeps its own)."""
    clock = Clock()
    monkeypatch.setattr(metering, "time", SimpleNamespace(monotonic=clock))
    return clock


Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    """The `stream` lines logged so far, as their fields."""
    with caplog.at_level(logging.INFO, logger="streamchat.access"):
        yield lambda: [r.fields for r in caplog.records  # type: ignore[attr-defined]
                       if getattr(r, "fields", {}).get("event") == "stream"]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def histogram(name: str, transport: str) -> tuple[float, float]:
    """(count, sum) of a histogram's series for `transport`."""
    return (sample(f"{name}_count", transport=transport),
            sample(f"{name}_sum", transport=transport))


TTFT = "streamchat_time_to_first_token_seconds"
ITL = "streamchat_inter_token_latency_seconds"


def test_usage_is_what_the_engine_reported() -> None:
    meter = StreamMeter("test-usage", prompt_tokens=5)  # 5: the service's own count
    meter.count(Delta(0, "He", 1, prompt_tokens=12, cached_tokens=8))
    meter.count(Delta(0, "", 2))  # a step whose tokens show no text yet: counted all the same
    meter.count(Delta(0, "llo", 1, finish_reason="stop", queue_s=0.25))
    assert meter.usage() == {"prompt_tokens": 12, "completion_tokens": 4, "cached_tokens": 8}
    assert (meter.finish_reason, meter.queue_s) == ("stop", 0.25)
    meter.finish("done")


def test_a_prompt_count_without_cached_tokens_means_none_cached() -> None:
    meter = StreamMeter("test-usage", prompt_tokens=5)
    meter.count(Delta(0, "a", 1, prompt_tokens=7, cached_tokens=None))
    assert meter.usage() == {"prompt_tokens": 7, "completion_tokens": 1, "cached_tokens": 0}
    meter.finish("done")


def test_time_to_first_token_once_then_the_gaps_between_tokens(clock: Clock) -> None:
    transport = "test-ttft"
    meter = StreamMeter(transport, 3)  # accepted at 100.0
    ttft, itl = histogram(TTFT, transport), histogram(ITL, transport)
    clock.now = 100.5
    assert meter.shown() is True
    assert histogram(TTFT, transport) == (ttft[0] + 1, ttft[1] + 0.5)
    assert histogram(ITL, transport) == itl  # no gap before the first token
    clock.now = 100.75
    assert meter.shown() is False
    clock.now = 101.0
    assert meter.shown() is False
    assert histogram(TTFT, transport) == (ttft[0] + 1, ttft[1] + 0.5)  # still once
    assert histogram(ITL, transport) == (itl[0] + 2, itl[1] + 0.5)  # 0.25 + 0.25
    assert meter.timings()["ttft_ms"] == 500.0
    meter.finish("done")


def test_accepted_at_is_when_the_request_was_taken(clock: Clock) -> None:
    transport = "test-accepted"
    ttft = histogram(TTFT, transport)
    meter = StreamMeter(transport, 3, accepted_at=98.0)  # its request came 2 s before the meter
    meter.shown()
    assert histogram(TTFT, transport) == (ttft[0] + 1, ttft[1] + 2.0)
    meter.finish("done")


def test_timings_of_a_generation(clock: Clock) -> None:
    meter = StreamMeter("test-timings", 3)
    meter.count(Delta(0, "a", 1, queue_s=0.125))
    clock.now = 100.25
    meter.shown()
    meter.count(Delta(0, "b", 3))
    clock.now = 102.0
    assert meter.timings() == {"queue_ms": 125.0, "ttft_ms": 250.0, "total_ms": 2000.0,
                               "tokens_per_s": 2.0}
    meter.finish("done")


def test_no_token_shown_the_first_token_time_is_the_end(clock: Clock) -> None:
    meter = StreamMeter("test-timings", 3)
    clock.now = 101.5
    assert meter.timings()["ttft_ms"] == 1500.0
    meter.finish("error")


def test_finish_is_recorded_once_with_its_outcome(clock: Clock, logged: Lines) -> None:
    transport = "test-finish"
    active = sample("streamchat_active_streams", transport=transport)
    meter = StreamMeter(transport, 3)
    assert sample("streamchat_active_streams", transport=transport) == active + 1
    cancelled = sample("streamchat_requests_total", transport=transport, outcome="cancelled")
    done = sample("streamchat_requests_total", transport=transport, outcome="done")
    generated = sample("streamchat_generated_tokens_total")
    meter.count(Delta(0, "a", 2, prompt_tokens=3, cached_tokens=0))
    meter.finish("cancelled")
    meter.finish("done")  # e.g. a second end on another path: ignored
    assert sample("streamchat_requests_total", transport=transport, outcome="cancelled") == \
        cancelled + 1
    assert sample("streamchat_requests_total", transport=transport, outcome="done") == done
    assert sample("streamchat_active_streams", transport=transport) == active
    assert sample("streamchat_generated_tokens_total") == generated + 2
    assert [line["outcome"] for line in logged()] == ["cancelled"]


def test_the_log_line_has_the_generations_fields(clock: Clock, logged: Lines) -> None:
    meter = StreamMeter("sse", 3, session_id="s1", message_id="m1", content="secret prompt")
    meter.count(Delta(0, "Hi", 1, prompt_tokens=9, cached_tokens=4))
    clock.now = 100.125
    meter.shown()
    meter.count(Delta(0, "!", 1, finish_reason="length", queue_s=0.05))
    clock.now = 100.5
    meter.finish("done", text="Hi!")
    [line] = logged()
    assert line == {"event": "stream", "transport": "sse", "outcome": "done",
                    "session_id": "s1", "message_id": "m1", "queue_ms": 50.0,
                    "ttft_ms": 125.0, "duration_ms": 500.0, "finish_reason": "length",
                    "prompt_tokens": 9, "completion_tokens": 2, "cached_tokens": 4}


def test_the_log_line_says_the_predicted_ttft_beside_the_real_one(clock: Clock,
                                                                  logged: Lines) -> None:
    meter = StreamMeter("openai", 3)
    clock.now = 100.9
    meter.shown()
    meter.finish("done", predicted_s=0.8)  # what admission predicted when it accepted it
    [line] = logged()
    assert (line["predicted_ttft_ms"], line["ttft_ms"]) == (800.0, 900.0)


def test_text_is_logged_only_with_log_content(logged: Lines,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "_content_logged", True)
    StreamMeter("sse", 3, content="the prompt").finish("done", text="the reply")
    StreamMeter("sse", 3, content="the prompt").finish("error")  # no reply text to log
    monkeypatch.setattr(logs, "_content_logged", False)
    StreamMeter("sse", 3, content="the prompt").finish("done", text="the reply")
    with_text, without_reply, off = logged()
    assert (with_text["content"], with_text["reply"]) == ("the prompt", "the reply")
    assert without_reply["content"] == "the prompt" and "reply" not in without_reply
    assert "content" not in off and "reply" not in off
