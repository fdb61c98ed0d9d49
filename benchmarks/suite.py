"""`make bench`: every benchmark, one after the other, into one dated result and one table.

Steps (each `python -m benchmarks ...` in its own process, so no step's engine outlives it):
transport (the ceiling on a token source), compare (bare engine vs SSE vs WebSocket vs
/v1/chat/completions vs vLLM's own server), multiturn, memory, load (levels, fairness,
overload). The run writes benchmarks/results/<date>.json with every step's own JSON inside,
copies the step's plots (and two it draws itself) to benchmarks/plots/, and rewrites the table
between the markers in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.output import environment, finite, results_dir

HERE = Path(__file__).resolve().parent
PLOTS = HERE / "plots"
README = HERE / "README.md"
BEGIN, END = "<!-- suite:begin -->", "<!-- suite:end -->"

# name -> (arguments after `python -m benchmarks`, how its main JSON file is named)
STEPS: dict[str, tuple[list[str], str]] = {
    "transport": (["transport"], "*-transport.json"),
    "compare": ([], "[0-9]*-[0-9]*[0-9].json"),
    "multiturn": (["multiturn"], "*-multiturn.json"),
    "memory": (["memory"], "*-memory.json"),
    "load": (["load"], "*-load/summary.json"),
    "finetune": (["finetune"], "*-finetune.json"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"comma-separated steps to run, in this order (default: all: "
                        f"{','.join(STEPS)})")
    parser.add_argument("--step-args", action="append", default=[], metavar="STEP=ARGS",
                        help="extra arguments for one step, e.g. "
                        "--step-args 'compare=--concurrency 1,16' (repeatable)")


def _newest(pattern: str, since: float) -> Path | None:
    found = [p for p in results_dir().glob(pattern) if p.stat().st_mtime >= since]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _run_step(name: str, extra: list[str]) -> dict[str, Any]:
    args, pattern = STEPS[name]
    started = time.time()
    command = [sys.executable, "-m", "benchmarks", *args, *extra]
    print(f"\n==> {name}: {' '.join(command[1:])}", flush=True)
    code = subprocess.run(command, cwd=HERE.parent).returncode
    path = _newest(pattern, started)
    result: dict[str, Any] = {"command": command[1:], "exit_code": code,
                              "seconds": round(time.time() - started, 1),
                              "json": str(path) if path else None}
    if path is not None:
        result["data"] = json.loads(path.read_text())
        result["plots"] = [str(p) for p in path.parent.glob("**/*.png")
                           if p.stat().st_mtime >= started]
    return result


# -- one or two lines of figures per step, for the README table ------------------------

def _transport(data: dict[str, Any]) -> list[str]:
    rows = {(r["response"], r["transport"], r["streams"], bool(r["rate_per_stream"])): r
            for r in data["results"]}
    lines = []
    for transport in ("sse", "ws"):
        flat = [f"{n:,}: {r['events_per_s']:,.0f}" for (resp, t, n, paced), r in rows.items()
                if resp == "app" and t == transport and not paced]
        paced = [f"{n:,}: {r['added_latency_ms']['p50']:.1f} / {r['added_latency_ms']['p99']:.1f}"
                 for (resp, t, n, p), r in rows.items() if resp == "app" and t == transport and p]
        lines.append(f"{transport.upper()} events/s flat out by streams: {'; '.join(flat)}. "
                     f"Added latency p50 / p99 ms at {data['config']['rate']:g} tok/s each: "
                     f"{'; '.join(paced)}")
    return lines + data.get("verdicts", [])


def _compare(data: dict[str, Any]) -> list[str]:
    lines = []
    for level in data["results"]:
        sides = [f"{side} {level[side]['output_tokens_per_s']:.1f}"
                 + (f" ({level['tokens_per_s_vs_bare'][side]:.2f}x)"
                    if side != "bare" and level["tokens_per_s_vs_bare"].get(side) else "")
                 for side in ("bare", "sse", "ws", "openai", "vllm") if level.get(side)]
        lines.append(f"concurrency {level['concurrency']}, output tokens/s: " + ", ".join(sides))
    return lines


def _multiturn(data: dict[str, Any]) -> list[str]:
    return [f"{mode}: turn 1 TTFT {r['first_ttft_ms']:.0f} ms, last turn "
            f"{r['last_ttft_ms']:.0f} ms ({r['ratio_last_first']:.2f}x)"
            for mode, r in data["results"].items() if isinstance(r, dict) and "first_ttft_ms" in r]


def _memory(data: dict[str, Any]) -> list[str]:
    full = data["results"]["tracemalloc"]["unbounded"]
    return [f"{full['bytes_per_session']:.0f} bytes per idle session (tracemalloc), "
            f"{data['config']['sessions']:,} sessions held"]


def _load(data: dict[str, Any]) -> list[str]:
    lines = []
    ours, theirs = data["results"].get("streamchat", {}), data["results"].get("vllm", {})
    for concurrency, level in ours.get("levels", {}).items():
        if other := theirs.get("levels", {}).get(concurrency):
            lines.append(f"c={concurrency}: output tok/s {level['output_throughput']:.1f} / "
                         f"{other['output_throughput']:.1f}, TTFT p50 {level['median_ttft_ms']:.0f}"
                         f" / {other['median_ttft_ms']:.0f} ms (streamchat / vLLM's server)")
    for name, res in (("streamchat", ours), ("vLLM's server", theirs)):
        if fair := res.get("fairness"):
            lines.append(f"fairness on {name}: light user's TTFT p50 {fair['ratio']:.1f}x alone")
        if over := res.get("overload"):
            lines.append(f"overload on {name} ({over['offered_rate']:.2f} req/s): accepted "
                         f"{over['accepted']}, refused {over['rejected']}, accepted TTFT p99 "
                         f"{over['ratio']:.1f}x unloaded")
    return lines


def _finetune(data: dict[str, Any]) -> list[str]:
    idle, busy, ratios = data["results"]["idle"], data["results"]["training"], data["ratios"]
    return [f"chat while a LoRA job trains / idle: TTFT p50 {busy['ttft_ms_p50']:.0f} / "
            f"{idle['ttft_ms_p50']:.0f} ms ({ratios['ttft_p50_training_over_idle']:.2f}x), p99 "
            f"{busy['ttft_ms_p99']:.0f} / {idle['ttft_ms_p99']:.0f} ms "
            f"({ratios['ttft_p99_training_over_idle']:.2f}x), tokens/s "
            f"{busy['tokens_per_s_p50']:.1f} / {idle['tokens_per_s_p50']:.1f} "
            f"({ratios['tokens_per_s_training_over_idle']:.2f}x)"]


SUMMARIES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "transport": _transport, "compare": _compare, "multiturn": _multiturn, "memory": _memory,
    "load": _load, "finetune": _finetune}


def summarize(name: str, step: dict[str, Any]) -> list[str]:
    if step.get("exit_code") or "data" not in step:
        return [f"failed (exit code {step.get('exit_code')}; see its output)"]
    try:
        return SUMMARIES[name](step["data"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:  # a changed JSON shape
        return [f"ran; its summary could not be read ({type(exc).__name__}: {exc}); "
                f"see {step['json']}"]


def _plot_compare(data: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    level = data["results"][-1]
    sides = [s for s in ("bare", "sse", "ws", "openai", "vllm") if level.get(s)]
    ax.bar(sides, [level[s]["output_tokens_per_s"] for s in sides])
    ax.set_ylabel("output tokens/s")
    ax.set_title(f"real engine, concurrency {level['concurrency']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plot_multiturn(data: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, result in data["results"].items():
        if isinstance(result, dict) and "per_turn" in result:
            turns = result["per_turn"]
            ax.plot([t["turn"] for t in turns], [t["ttft_ms"] for t in turns], marker="o",
                    label=mode)
    ax.set_xlabel("turn")
    ax.set_ylabel("TTFT p50 (ms)")
    ax.set_title("multi-turn TTFT")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _publish_plots(steps: dict[str, dict[str, Any]]) -> list[Path]:
    """The latest plots, under stable names, where the README can show them."""
    PLOTS.mkdir(exist_ok=True)
    published = []
    for name, step in steps.items():
        for plot in step.get("plots", []):
            stem = Path(plot).name
            target = PLOTS / (stem if stem.startswith(name) else f"{name}-{stem}")
            shutil.copyfile(plot, target)
            published.append(target)
        if step.get("exit_code") == 0 and "data" in step:
            drawer = {"compare": _plot_compare, "multiturn": _plot_multiturn}.get(name)
            if drawer is not None:
                try:
                    published.append(drawer(step["data"], PLOTS / f"{name}.png"))
                except (KeyError, TypeError, ValueError):
                    pass  # the table says what ran; a plot is a convenience
    return published


def update_readme(date: str, cpu: str, steps: dict[str, dict[str, Any]],
                  plots: list[Path]) -> None:
    table = [BEGIN, f"Last `make bench`: {date}, {cpu}.", "", "| step | figures |", "|---|---|"]
    for name, step in steps.items():
        table.append(f"| {name} ({step['seconds'] / 60:.0f} min) | "
                     + "<br>".join(summarize(name, step)) + " |")
    table += ["", "Plots: " + ", ".join(f"[{p.name}](plots/{p.name})" for p in plots), END]
    text = README.read_text() if README.exists() else "# Benchmarks\n\n"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        text = head + "\n".join(table) + rest.partition(END)[2]
    else:
        text = text.rstrip("\n") + "\n\n" + "\n".join(table) + "\n"
    README.write_text(text)


async def main(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    names = [n.strip() for n in args.steps.split(",") if n.strip()]
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        print(f"unknown step(s): {', '.join(unknown)}; choose from {', '.join(STEPS)}",
              file=sys.stderr)
        return 2
    extra: dict[str, list[str]] = {}
    for item in args.step_args:
        name, _, rest = item.partition("=")
        extra[name.strip()] = rest.split()
    date = time.strftime("%Y-%m-%d")
    steps: dict[str, dict[str, Any]] = {}
    with tqdm(names, desc="make bench", unit="step", file=sys.stderr) as bar:
        for name in bar:
            bar.set_postfix_str(name)
            steps[name] = _run_step(name, extra.get(name, []))
    env = environment()
    plots = _publish_plots(steps)
    path = results_dir() / f"{date}.json"
    path.write_text(json.dumps(finite({"date": date, "environment": env, "steps": steps}),
                               indent=1) + "\n")
    update_readme(date, env["cpu"], steps, plots)
    print(f"\n==> suite: {path}\nplots: {', '.join(str(p) for p in plots)}\n"
          f"table: {README}")
    for name, step in steps.items():
        print(f"\n{name}:\n  " + "\n  ".join(summarize(name, step)))
    return 0 if all(step["exit_code"] == 0 for step in steps.values()) else 1
