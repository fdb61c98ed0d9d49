"""`python -m benchmarks load` with the bare engine beside the two servers (benchmarks/load.py):
its levels on a scripted engine, the report's three columns and two ratios, the plot's lines,
the run order. No real engine, no server."""

from __future__ import annotations

import argparse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from benchmarks import bare, load
from benchmarks.workload import RequestResult, TokenClock
from tests.fakes import ScriptedEngine

LEVEL_KEYS = {key for key, _ in load.LEVEL_METRICS} | {"failed"}


def _args(**overrides: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    load.add_arguments(parser)
    args = parser.parse_args([])
    args.phases = list(load.PHASES)
    args.concurrency = [1, 4]
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def _level(throughput: float, ttft_ms: float) -> dict[str, Any]:
    return {"output_throughput": throughput, "median_ttft_ms": ttft_ms,
            "p99_ttft_ms": 2 * ttft_ms, "median_itl_ms": 10.0, "p99_itl_ms": 20.0,
            "request_throughput": throughput / 64, "failed": 0}


FAIRNESS = {"light_alone_ttft_p50_ms": 100.0, "light_loaded_ttft_p50_ms": 150.0, "ratio": 1.5,
            "heavy_ttft_p50_ms": 300.0, "failed": 0}
OVERLOAD = {"requests": 90, "offered_rate": 3.0, "accepted": 60, "accepted_ttft_p99_ms": 400.0,
            "unloaded_ttft_p99_ms": 250.0, "ratio": 1.6, "rejected": 30, "rejected_p99_ms": 4.0,
            "hung": 0, "failed": 0, "incomplete": 0, "objective_ms": 500.0, "goodput_rps": 1.2,
            "goodput_tokens_per_s": 76.8, "objective_hit_rate": 0.9, "itl_p50_ms": 30.0,
            "itl_p99_ms": 80.0}
BURST = {"accepted": 8, "accepted_first_status_p99_ms": 5.0, "rejected": 292,
         "rejected_p50_ms": 3.0, "rejected_p99_ms": 9.0, "hung": 0, "failed": 0, "incomplete": 0}


def _out() -> dict[str, Any]:
    http = {"fairness": FAIRNESS, "overload": OVERLOAD, "burst": BURST}
    return {"cpu": "test CPU", "streamchat_engine": "defaults", "streamchat_settings": "defaults",
            "vllm_flags": ["--enforce-eager"], "results": {
                "streamchat": {"levels": {"1": _level(100.0, 50.0), "4": _level(300.0, 80.0)},
                               **http},
                "bare": {"levels": {"1": _level(200.0, 40.0), "4": _level(400.0, 60.0)}},
                "vllm": {"levels": {"1": _level(50.0, 100.0), "4": _level(200.0, 160.0)},
                         **http}}}


def test_the_report_has_three_columns_and_both_ratios_and_leaves_bare_out_of_http_phases() -> None:
    text = load.report(_out(), _args())
    header = next(line for line in text.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "streamchat", "bare", "vllm", "sc/vllm", "sc/bare"]
    rows = {line[:18].strip(): line[18:].split() for line in text.splitlines()
            if line[:18].strip() in {label for _, label in load.LEVEL_METRICS}}
    assert "sc/vllm = streamchat / vllm; sc/bare = streamchat / bare" in text
    # The last table is concurrency 4: 300 / 200 against vLLM, 300 / 400 against bare.
    assert rows["output tokens/s"] == ["300.0", "400.0", "200.0", "1.50", "0.75"]
    assert rows["TTFT p50 (ms)"] == ["80.0", "60.0", "160.0", "0.50", "1.33"]
    sections = text.split("\n\n")
    for title in ("fairness:", "overload:", "burst:"):
        section = next(s for s in sections if s.startswith(title))
        names = [line.split()[0] for line in section.splitlines()[1:] if line[:1].strip()]
        assert names == ["streamchat", "vllm"], title


def test_with_bare_alone_the_report_has_no_ratio_and_no_http_phase() -> None:
    out = _out()
    out["results"] = {"bare": out["results"]["bare"]}
    text = load.report(out, _args())
    header = next(line for line in text.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "bare"]
    assert "levels: bare: the engine in-process, the same closed loop, random" in text
    assert not any(s.startswith(("fairness:", "overload:", "burst:")) for s in text.split("\n\n"))


def test_bare_level_gives_the_keys_of_vllms_benchmark_client() -> None:
    results = []
    for i, start in enumerate((0.0, 1.0)):
        result = RequestResult(tag=f"r{i}", start_s=start, sent_s=start)
        clock = TokenClock(result)
        for k in range(4):
            clock.tokens(start + 0.1 + 0.05 * k, 1)
        result.completion_tokens, result.end_s = 4, start + 0.25
        results.append(result)
    results.append(RequestResult(tag="bad", start_s=0.5, sent_s=0.5, end_s=0.6, error="boom"))
    level = load.bare_level(4, results)
    assert LEVEL_KEYS <= set(level)
    assert level["failed"] == 1 and level["completed"] == 2
    assert level["duration"] == pytest.approx(1.25)
    assert level["output_throughput"] == pytest.approx(8 / 1.25)
    assert level["request_throughput"] == pytest.approx(2 / 1.25)
    assert level["median_ttft_ms"] == pytest.approx(100.0)
    assert level["median_itl_ms"] == pytest.approx(50.0)


async def test_bare_levels_run_the_engine_with_streamchats_engine_args(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    engine = ScriptedEngine(tokens=[f"t{i} " for i in range(32)])
    made: list[tuple[Any, ...]] = []

    def create_engine(*args: Any) -> ScriptedEngine:
        made.append(args)
        return engine

    monkeypatch.setattr("app.engine.config.create_engine", create_engine)
    monkeypatch.setattr(bare, "SETTLE_S", 0.0)
    prompts = SimpleNamespace(builder=SimpleNamespace(text=lambda tag: f"Request {tag}. Hi."))
    args = _args(phases=["levels", "fairness"], output_len=8, min_prompts=3, rounds=2, model=None)
    result = await load.measure_bare(prompts, args, tmp_path, {"max_num_seqs": 4})  # type: ignore[arg-type]
    assert made == [(None, load.MODEL_NAME, None, {"max_num_seqs": 4}, tmp_path)]
    assert set(result) == {"levels"}
    for c, prompts_run in (("1", 3), ("4", 8)):  # max(min_prompts, concurrency x rounds)
        level = result["levels"][c]
        assert LEVEL_KEYS <= set(level)
        assert (level["completed"], level["failed"]) == (prompts_run, 0)
        assert level["total_output_tokens"] == 8 * prompts_run
    assert len(engine.params) == load.BARE_WARMUP + 3 + 8
    assert {(p.max_tokens, p.temperature, p.ignore_eos) for p in engine.params} == {(8, 0.0, True)}
    assert not engine.ready  # shut down


async def test_bare_skips_the_http_phases_and_says_so(capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    args = _args(phases=["fairness", "overload", "burst"])
    assert await load.measure_bare(None, args, tmp_path, {}) == {}  # type: ignore[arg-type]
    assert "bare: skipping fairness, overload, burst" in capsys.readouterr().out


def test_servers_run_streamchat_then_bare_then_vllm() -> None:
    assert load.run_order(["vllm", "bare", "streamchat", "bare"]) == ["streamchat", "bare", "vllm"]
    assert _args().servers == "streamchat,bare,vllm"


def test_the_plot_has_each_servers_ttft_lines(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    from matplotlib.axes import Axes

    labels: list[str] = []
    draw = Axes.plot

    def plot(self: Axes, *args: Any, **kwargs: Any) -> Any:
        labels.append(kwargs.get("label", ""))
        return draw(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", plot)
    load.plot(_out(), _args(), tmp_path / "ttft.png")
    assert labels == [f"{n} TTFT {q}" for n in ("streamchat", "bare", "vllm") for q in ("p50", "p99")]
    assert (tmp_path / "ttft.png").stat().st_size > 0
