"""The soak benchmark's pure parts (benchmarks/soak.py): how the streams are shared, how the
in-flight gauges are read, and the RSS growth and verdicts. No engine, no server."""

from __future__ import annotations

import os
import signal
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from app import metrics
from benchmarks.soak import (
    DEFAULT_MIX,
    OPEN_GAUGES,
    gauge_totals,
    memory_debug,
    parse_mix,
    process_key,
    rss_summary,
    split_streams,
    verdicts,
)
from benchmarks.stream_memory import snapshot_diff

MIB = 2**20


def test_the_default_mix_shares_16_streams_among_every_kind() -> None:
    assert split_streams(16, parse_mix(DEFAULT_MIX)) == {"sse": 5, "ws": 5, "openai": 4,
                                                         "responses": 2}


@pytest.mark.parametrize("total", [1, 3, 7, 16, 17, 100])
def test_split_streams_gives_out_exactly_the_total(total: int) -> None:
    counts = split_streams(total, {"sse": 3, "ws": 3, "openai": 1, "responses": 0})
    assert sum(counts.values()) == total
    assert counts["responses"] == 0
    assert counts["sse"] >= counts["openai"]


def test_parse_mix_leaves_unnamed_kinds_out_and_refuses_bad_parts() -> None:
    assert parse_mix("ws=2") == {"sse": 0, "ws": 2, "openai": 0, "responses": 0}
    for bad in ("ws", "grpc=1", "ws=x", "ws=0,sse=0"):
        with pytest.raises(ValueError):
            parse_mix(bad)


def test_gauge_totals_sum_labels_of_the_apps_own_metrics() -> None:
    # The app's registry, not a copy of its names: a renamed gauge must fail here, not read 0
    # in a soak.
    metrics.ACTIVE_STREAMS.labels("sse").inc(2)
    metrics.ACTIVE_STREAMS.labels("ws").inc()
    try:
        text = generate_latest().decode()
        totals = gauge_totals(text)
        assert set(totals) == set(OPEN_GAUGES)
        assert totals["streamchat_active_streams"] >= 3
        for name in OPEN_GAUGES:
            assert f"\n{name} " in text or f"\n{name}{{" in text, name
    finally:
        metrics.ACTIVE_STREAMS.labels("sse").dec(2)
        metrics.ACTIVE_STREAMS.labels("ws").dec()


def test_gauge_totals_ignore_comments_and_other_metrics() -> None:
    text = ("# HELP streamchat_active_streams x\n# TYPE streamchat_active_streams gauge\n"
            'streamchat_active_streams{transport="sse"} 1.0\n'
            'streamchat_active_streams_other{transport="sse"} 5.0\n'
            "streamchat_queue_length 2.0\n")
    totals = gauge_totals(text, ("streamchat_active_streams", "streamchat_queue_length",
                                 "streamchat_engine_running_requests"))
    assert totals == {"streamchat_active_streams": 1.0, "streamchat_queue_length": 2.0,
                      "streamchat_engine_running_requests": 0.0}


def test_rss_growth_counts_from_the_end_of_the_warmup() -> None:
    # Fast growth during the warm-up is left out; 100 -> 104 MiB after it is +4%.
    samples = [{"t": 0, "app": 50 * MIB}, {"t": 60, "app": 90 * MIB},
               {"t": 120, "app": 100 * MIB}, {"t": 180, "app": 102 * MIB},
               {"t": 240, "app": 104 * MIB}]
    summary = rss_summary(samples, "app", warmup_s=120)
    assert (summary["start_mib"], summary["warm_mib"], summary["end_mib"]) == (50, 100, 104)
    assert summary["growth_pct"] == pytest.approx(4.0)
    assert summary["slope_mib_per_min"] == pytest.approx(2.0)
    assert rss_summary(samples, "engine", warmup_s=120)["growth_pct"] is None


def test_verdicts_miss_on_growth_errors_or_anything_left_open() -> None:
    flat = {"app": {"growth_pct": 1.0}, "engine": {"growth_pct": -0.5}}
    assert all(line.endswith(": met") for line in verdicts(flat, 0, dict.fromkeys(OPEN_GAUGES, 0.0)))
    grown: dict[str, dict[str, Any]] = {"app": {"growth_pct": 5.0}, "engine": {"growth_pct": None}}
    lines = verdicts(grown, 2, {"streamchat_active_streams": 1.0})
    assert [line.endswith("MISSED") for line in lines] == [True, True, True, True]
    assert "streamchat_active_streams 1" in lines[-1]


def test_process_key_tells_the_engine_core_from_the_other_children() -> None:
    # setproctitle's title is in the command line; the name is cut at 15 characters.
    assert process_key("VLLM::EngineCor", ["VLLM::EngineCore"]) == "engine"
    assert process_key("VLLM::Worker", ["VLLM::Worker"]) == "worker"
    assert process_key("python", ["/x/bin/python", "-m", "app.engine.reaper", "3", "4"]) \
        == "other:app.engine.reaper"
    assert process_key("python3.11", ["/x/bin/python3.11", "-c", "pass"]) == "other:python3.11"


def test_the_servers_memory_hook_dumps_what_snapshot_diff_reads(tmp_path: Path) -> None:
    # The hook the soak installs in the server (--snapshots), driven as the soak drives it:
    # the name in DIR/next, then SIGUSR1 (handled in this thread before os.kill returns).
    before = signal.getsignal(signal.SIGUSR1)
    kept: list[bytes] = []
    try:
        memory_debug(str(tmp_path))
        assert not tracemalloc.is_tracing()  # nothing traced (nothing slowed) before the first
        for name in ("start", "end"):
            (tmp_path / "next").write_text(name)
            os.kill(os.getpid(), signal.SIGUSR1)
            assert (tmp_path / f"{name}.gc.json").exists()
            kept.extend(bytes(1000) for _ in range(100))  # grows between the two
        diff = snapshot_diff(tmp_path)
    finally:
        signal.signal(signal.SIGUSR1, before)
        tracemalloc.stop()
    assert diff["traced_bytes"][1] > diff["traced_bytes"][0]
    assert any("test_bench_soak.py" in line["where"] for line in diff["top_lines"])
