"""`python -m benchmarks load`: streamchat vs the bare engine vs vLLM's own OpenAI server under
load, in one run.

Both servers serve the same model with the same CPU settings that are not about scheduling
(enforce_eager, gpu_memory_utilization 0.5, block size 32, the dtype streamchat picks for this
CPU, the libraries vLLM's CPU guide preloads); vLLM's server keeps its scheduling defaults,
streamchat its own. The bare engine is streamchat's engine in this process with the same engine
arguments and no HTTP (benchmarks/bare.py). They run one after the other (streamchat, then
bare, then vLLM), each engine shut down before the next starts, through the phases:

- levels: vLLM's benchmark client, random 128 in / 64 out, ignore_eos, closed loop at each
  concurrency (default 1, 16, 64): output tokens/s and TTFT p50/p99; the bare engine gets the
  same closed loop in-process (greedy, ignore_eos, as many prompts of about as many tokens,
  each with its own first cache block), timed by benchmarks/workload.py;
- fairness: one user holds 32 streams while another sends one request at a time; the light
  user's TTFT p50 under that load against its TTFT alone (target: at most 2x);
- overload: open-loop Poisson arrivals at 3x the request rate streamchat sustained at the
  highest level: accepted requests' TTFT p99 against the unloaded p99 (target: at most 2x),
  how fast refusals come (target: p99 under 100 ms), and whether any request hung; goodput
  (requests/s whose first token met the objective, and their output tokens/s), the
  objective's hit rate among accepted requests, and ITL p50/p99 (each request's mean gap
  between tokens). The objective is `--ttft-objective-ms`, else the one streamchat's
  /metrics says it keeps (`streamchat_ttft_objective_seconds`), else 2x the unloaded p99;
  both servers are judged by the same one;
- burst: `--burst` requests (300) sent at once by a client process that does nothing else
  (benchmarks/burst_client.py), on raw connections it opened and warmed beforehand: each timed
  from its own send to its status line, refusals (429, 503) apart (target: p99 under 100 ms),
  and whether any hung.

The bare engine runs the levels phase only: fairness, overload and burst measure an HTTP
server's admission, which it has none of. Prints the tables and ratios (streamchat / vLLM and
streamchat / bare), writes JSON and a PNG plot of TTFT p50/p99 against concurrency to
benchmarks/results/<timestamp>-load/.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from benchmarks.burst_client import run_burst
from benchmarks.cli import add_model_options, default_cache_dir
from benchmarks.openai_client import Outcome, chat, chat_body, make_client
from benchmarks.output import environment, finite, results_dir, timestamp
from benchmarks.server import ServerProcess, VllmServer, free_port
from benchmarks.vllm_bench import run_client
from benchmarks.workload import PromptBuilder, RequestResult, percentile, summarize

if TYPE_CHECKING:
    from app.engine.reaper import Spawned

MODEL_NAME = "SmolLM2-135M-Instruct"
PHASES = ("levels", "fairness", "overload", "burst")
# In the order they run: streamchat sets the sustained rate the overload phase offers 3x of.
SERVERS = ("streamchat", "bare", "vllm")
# What the bare engine cannot run: each measures an HTTP server's admission.
HTTP_PHASES = ("fairness", "overload", "burst")
COLORS = {"streamchat": "tab:blue", "bare": "tab:green", "vllm": "tab:orange"}  # the plot's
BARE_WARMUP = 4  # requests, all at once: as many as the servers' warm-up run sends
ENGINE_EXIT_S = 30.0  # the most the bare engine's processes may take to exit after shutdown
LEVEL_METRICS = [("output_throughput", "output tokens/s"), ("median_ttft_ms", "TTFT p50 (ms)"),
                 ("p99_ttft_ms", "TTFT p99 (ms)"), ("median_itl_ms", "ITL p50 (ms)"),
                 ("p99_itl_ms", "ITL p99 (ms)"), ("request_throughput", "requests/s")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated, of {', '.join(PHASES)} (default: all)")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="comma-separated, of streamchat, bare and vllm (default: all three, "
                        "run in that order); bare is streamchat's engine in this process, no "
                        "HTTP: it runs the levels phase only (fairness, overload and burst need "
                        "an HTTP server with admission)")
    parser.add_argument("--concurrency", default="1,16,64",
                        help="levels phase: concurrency levels (default: 1,16,64)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="levels phase: prompts per level = concurrency x rounds (default: 4)")
    parser.add_argument("--min-prompts", type=int, default=16)
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--heavy-streams", type=int, default=32,
                        help="fairness phase: the heavy user's concurrent streams (default: 32)")
    parser.add_argument("--light-requests", type=int, default=8,
                        help="fairness phase: the light user's requests, alone and under load")
    parser.add_argument("--overload", type=float, default=3.0,
                        help="overload phase: offered rate / sustained rate (default: 3)")
    parser.add_argument("--overload-s", type=float, default=45.0,
                        help="overload phase: seconds of arrivals (default: 45)")
    parser.add_argument("--sustained-rate", type=float, default=None,
                        help="overload phase: requests/s the server sustains (default: what "
                        "streamchat did at the highest level of this run)")
    parser.add_argument("--ttft-objective-ms", type=float, default=None,
                        help="overload phase: the first-token objective goodput counts by "
                        "(default: streamchat's own, from its /metrics; else 2x unloaded p99)")
    parser.add_argument("--burst", type=int, default=300,
                        help="burst phase: requests sent at once on pre-opened connections")
    parser.add_argument("--hang-s", type=float, default=600.0,
                        help="a request with no end after this long counts as hung")
    add_model_options(parser)
    parser.add_argument("--ready-timeout", type=float, default=600.0)


def cpu_settings(engine_args: dict[str, Any]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """The settings both servers share: not about scheduling. Returns streamchat's engine
    arguments, vLLM's server flags, and the environment both run with."""
    from app.engine.config import CPU_ENGINE_DEFAULTS, CPU_ENV_DEFAULTS, gpu_available
    from app.engine.cpu import default_dtype, preload_libraries, read_cpu_info

    env = dict(os.environ)
    if gpu_available():
        return engine_args, [], env
    dtype = str(engine_args.get("dtype") or default_dtype(read_cpu_info()))
    flags = ["--enforce-eager", "--gpu-memory-utilization",
             str(CPU_ENGINE_DEFAULTS["gpu_memory_utilization"]), "--block-size",
             str(CPU_ENGINE_DEFAULTS["block_size"]), "--dtype", dtype]
    env.update({k: v for k, v in CPU_ENV_DEFAULTS.items() if k not in env})
    if "LD_PRELOAD" not in env and preload_libraries():
        env["LD_PRELOAD"] = ":".join(preload_libraries())
    return engine_args, flags, env


# -- phases ---------------------------------------------------------------------------------

async def levels_phase(server: ServerProcess, name: str, model_dir: Path, args: argparse.Namespace,
                       out_dir: Path) -> dict[str, Any]:
    results = {}
    for concurrency in args.concurrency:
        prompts = level_prompts(concurrency, args)
        print(f"[load] {name}: levels, concurrency {concurrency}, {prompts} prompts", flush=True)
        results[str(concurrency)] = await asyncio.to_thread(
            run_client, server.base_url, MODEL_NAME, model_dir, out_dir, f"{name}-c{concurrency}",
            concurrency=concurrency, prompts=prompts, input_len=args.input_len,
            output_len=args.output_len, seed=concurrency)  # no level repeats another's prompts
    return results


def level_prompts(concurrency: int, args: argparse.Namespace) -> int:
    return max(args.min_prompts, concurrency * args.rounds)


async def bare_levels(prompts: Prompts, args: argparse.Namespace, cache_dir: Path,
                      engine_args: dict[str, Any]) -> dict[str, Any]:
    """The levels phase on the bare engine (benchmarks/bare.py's `run_bare`): streamchat's
    engine in this process with the engine arguments streamchat gets, greedy, ignore_eos,
    `output_len` tokens, the same closed loop and prompt count per level; each prompt of about
    `input_len` tokens with its own first cache block, as vLLM's random prompts have. Returns
    per level the keys vLLM's benchmark client saves (LEVEL_METRICS, failed)."""
    from app.engine.reaper import Spawned
    from benchmarks.bare import run_bare

    levels = [(c, [f"bare-c{c}-{i:05d}-{random.randrange(10**6):06d}"
                   for i in range(level_prompts(c, args))]) for c in args.concurrency]
    print(f"[load] bare: levels, concurrency {', '.join(map(str, args.concurrency))}", flush=True)
    spawned = Spawned()  # what this process starts from now on: the engine's processes
    watch = asyncio.create_task(spawned.watch())  # each seen while alive, grandchildren too
    with _environ_kept():  # the engine sets LD_PRELOAD and more for its processes, not ours
        try:
            raw = await run_bare(model=args.model, model_name=MODEL_NAME, cache_dir=cache_dir,
                                 engine_args=engine_args, prompts=prompts.builder, levels=levels,
                                 warmup=BARE_WARMUP, max_tokens=args.output_len)
        finally:
            watch.cancel()
            await asyncio.to_thread(engine_gone, spawned)
    return {str(c): bare_level(c, raw[c]) for c in args.concurrency}


def bare_level(concurrency: int, results: list[RequestResult]) -> dict[str, Any]:
    """One level's results under the names of vLLM's benchmark client: its output and request
    throughput are over the level's wall time too, its TTFT and ITL percentiles per token gap."""
    s = summarize("bare", concurrency, results)
    done = s["requests"] - s["errors"]
    wall = s["wall_s"]
    return {"output_throughput": s["output_tokens_per_s"], "median_ttft_ms": s["ttft_p50_ms"],
            "p99_ttft_ms": s["ttft_p99_ms"], "median_itl_ms": s["itl_p50_ms"],
            "p99_itl_ms": s["itl_p99_ms"],
            "request_throughput": done / wall if wall > 0 else float("nan"),
            "failed": s["errors"], "completed": done, "duration": wall,
            "total_output_tokens": s["completion_tokens"],
            "mean_prompt_tokens": s["mean_prompt_tokens"], "error_samples": s["error_samples"],
            "other_cpu_cores": s["other_cpu_cores"]}


def engine_gone(spawned: Spawned) -> None:
    """Wait until the processes the bare engine started have exited (vLLM's shutdown stops its
    engine core, the reaper SIGKILLs what is left but does not wait for it): the next server
    must not start beside a core still holding its memory. multiprocessing's resource tracker
    is not waited for: it serves this process, not the engine."""
    _, alive = psutil.wait_procs(list(spawned.look()), timeout=ENGINE_EXIT_S)
    if alive:
        raise RuntimeError(f"the bare engine's processes {[p.pid for p in alive]} were still "
                           f"running {ENGINE_EXIT_S:.0f} s after its shutdown")


@contextlib.contextmanager
def _environ_kept() -> Iterator[None]:
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


class Prompts:
    """Chat prompts of about `input_len` tokens, each with its own first cache block."""

    def __init__(self, model_dir: Path, input_len: int) -> None:
        self.builder = PromptBuilder(str(model_dir), input_len)
        self._n = 0

    def next(self, who: str) -> str:
        self._n += 1
        return self.builder.text(f"{who}-{self._n:05d}-{random.randrange(10**6):06d}")


def ttfts(outcomes: list[Outcome]) -> list[float]:
    return [o.ttft_s for o in outcomes if o.status == "ok" and o.ttft_s is not None]


def mean_gaps(outcomes: list[Outcome]) -> list[float]:
    """Each accepted request's mean gap between tokens (seconds)."""
    return [(o.end_s - o.first_s) / (o.tokens - 1) for o in outcomes
            if o.status == "ok" and o.first_s is not None and o.end_s is not None
            and o.tokens > 1]


async def fairness_phase(server: ServerProcess, name: str, prompts: Prompts,
                         args: argparse.Namespace) -> dict[str, Any]:
    print(f"[load] {name}: fairness, the light user alone", flush=True)
    async with make_client(server.base_url, args.heavy_streams + 4) as client:

        async def light_requests() -> list[Outcome]:
            return [await chat(client, MODEL_NAME, prompts.next("light"), "light",
                               max_tokens=args.output_len, timeout_s=args.hang_s)
                    for _ in range(args.light_requests)]

        alone = await light_requests()
        stop = asyncio.Event()
        heavy: list[Outcome] = []
        started = asyncio.Event()

        async def heavy_stream() -> None:
            while not stop.is_set():
                heavy.append(await chat(client, MODEL_NAME, prompts.next("heavy"), "heavy",
                                        max_tokens=args.output_len, timeout_s=args.hang_s))
                if len(heavy) >= args.heavy_streams:
                    started.set()

        print(f"[load] {name}: fairness, {args.heavy_streams} heavy streams + the light user",
              flush=True)
        streams = [asyncio.create_task(heavy_stream()) for _ in range(args.heavy_streams)]
        try:
            await started.wait()  # every heavy stream has run one request: steady state
            loaded = await light_requests()
        finally:
            stop.set()
            await asyncio.gather(*streams, return_exceptions=True)
    alone_p50, loaded_p50 = _median(ttfts(alone)), _median(ttfts(loaded))
    return {"light_alone_ttft_p50_ms": 1000 * alone_p50,
            "light_loaded_ttft_p50_ms": 1000 * loaded_p50,
            "ratio": loaded_p50 / alone_p50 if alone_p50 else float("nan"),
            "heavy_requests": len(heavy), "heavy_ttft_p50_ms": 1000 * _median(ttfts(heavy)),
            # The engine step beside the heavy streams (their gaps between tokens): a light
            # prompt waits for the step running when it comes, then shares its own with them.
            "heavy_itl_p50_ms": 1000 * _median(mean_gaps(heavy)),
            "light_alone": [_record(o) for o in alone], "light_loaded": [_record(o) for o in loaded],
            "failed": sum(o.status != "ok" for o in alone + loaded + heavy)}


async def overload_phase(server: ServerProcess, name: str, prompts: Prompts,
                         args: argparse.Namespace, sustained_rate: float) -> dict[str, Any]:
    rate = args.overload * sustained_rate
    print(f"[load] {name}: overload, unloaded first", flush=True)
    async with make_client(server.base_url, 64) as client:
        unloaded = [await chat(client, MODEL_NAME, prompts.next("calm"), "calm",
                               max_tokens=args.output_len, timeout_s=args.hang_s)
                    for _ in range(args.light_requests)]
    arrivals = int(rate * args.overload_s)
    print(f"[load] {name}: overload, {arrivals} requests at {rate:.2f}/s ({args.overload:g}x "
          f"{sustained_rate:.2f}/s)", flush=True)
    rng = random.Random(0)
    async with make_client(server.base_url, arrivals) as client:
        tasks = []
        for i in range(arrivals):
            tasks.append(asyncio.create_task(chat(
                client, MODEL_NAME, prompts.next("burst"), f"user-{i % 64}",
                max_tokens=args.output_len, timeout_s=args.hang_s)))
            await asyncio.sleep(rng.expovariate(rate))
        outcomes = list(await asyncio.gather(*tasks))
    accepted = [o for o in outcomes if o.status == "ok"]
    rejected = [o.latency_s for o in outcomes if o.status == "rejected" and o.latency_s is not None]
    unloaded_p99 = percentile(ttfts(unloaded), 99)
    accepted_p99 = percentile(ttfts(accepted), 99)
    objective_s = args.objective_s or 2 * unloaded_p99
    good = [o for o in accepted if o.ttft_s is not None and o.ttft_s <= objective_s]
    gaps = mean_gaps(accepted)
    return {"objective_ms": 1000 * objective_s,
            "goodput_rps": len(good) / args.overload_s,
            "goodput_tokens_per_s": sum(o.tokens for o in good) / args.overload_s,
            "objective_hit_rate": len(good) / len(accepted) if accepted else float("nan"),
            "itl_p50_ms": 1000 * percentile(gaps, 50), "itl_p99_ms": 1000 * percentile(gaps, 99),
            "offered_rate": rate, "sustained_rate": sustained_rate, "requests": arrivals,
            "unloaded_ttft_p99_ms": 1000 * unloaded_p99,
            "accepted": len(accepted), "accepted_ttft_p50_ms": 1000 * percentile(ttfts(accepted), 50),
            "accepted_ttft_p99_ms": 1000 * accepted_p99,
            "ratio": accepted_p99 / unloaded_p99 if unloaded_p99 else float("nan"),
            "rejected": len(rejected), "rejected_p99_ms": 1000 * percentile(rejected, 99),
            "hung": sum(o.status == "hung" for o in outcomes),
            "failed": sum(o.status == "failed" for o in outcomes),
            "incomplete": sum(o.status == "ok" and o.tokens != args.output_len for o in outcomes),
            "errors": sorted({o.error or "" for o in outcomes if o.status in ("failed", "hung")})[:5],
            # Each request, so that goodput can be judged again at another objective.
            "outcomes": [_record(o) for o in outcomes]}


async def burst_phase(server: ServerProcess, name: str, prompts: Prompts,
                      args: argparse.Namespace) -> dict[str, Any]:
    """`--burst` requests at once from benchmarks/burst_client.py, a process that does nothing
    else, each on a raw connection it opened and warmed before (a /health call on each): what
    is timed from the send is the server's answer, not a TCP handshake nor this process's
    other work (on 2 cores, reading the accepted streams here held the refusals up seconds)."""
    n = args.burst
    print(f"[load] {name}: burst of {n} on pre-opened connections, from a client process of "
          "its own", flush=True)
    bodies = [chat_body(MODEL_NAME, prompts.next("burst"), max_tokens=args.output_len,
                        user=f"burst-{i}") for i in range(n)]
    result = await run_burst(server.port, bodies, hang_s=args.hang_s,
                             expect_tokens=args.output_len)
    del result["records"]  # the summary is the phase's result; the records would be 300 rows
    return result


async def objective_of(server: ServerProcess) -> float | None:
    """The first-token objective a streamchat server says it keeps (None: none, or no such
    gauge: another server)."""
    async with make_client(server.base_url, 1) as client:
        text = (await client.get("/metrics")).text
    for line in text.splitlines():
        if line.startswith("streamchat_ttft_objective_seconds "):
            return float(line.split()[1]) or None
    return None


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _record(o: Outcome) -> dict[str, Any]:
    return {"status": o.status, "ttft_ms": None if o.ttft_s is None else 1000 * o.ttft_s,
            "tokens": o.tokens}


# -- one server through every phase -------------------------------------------------------

async def measure(server: ServerProcess, name: str, model_dir: Path, prompts: Prompts,
                  args: argparse.Namespace, out_dir: Path,
                  sustained: dict[str, float]) -> dict[str, Any]:
    server.start()
    result: dict[str, Any] = {}
    try:
        await server.wait_ready(args.ready_timeout)
        await asyncio.to_thread(run_client, server.base_url, MODEL_NAME, model_dir, out_dir,
                                f"{name}-warmup", concurrency=2, prompts=4,
                                input_len=args.input_len, output_len=args.output_len, seed=999)
        if "levels" in args.phases:
            result["levels"] = await levels_phase(server, name, model_dir, args, out_dir)
            top = result["levels"][str(max(args.concurrency))]
            sustained.setdefault("rate", float(top["request_throughput"]))
        if "fairness" in args.phases:
            result["fairness"] = await fairness_phase(server, name, prompts, args)
            f = result["fairness"]
            print(f"[load] {name}: light user TTFT p50 alone {f['light_alone_ttft_p50_ms']:.0f} "
                  f"ms, loaded {f['light_loaded_ttft_p50_ms']:.0f} ms", flush=True)
        if name == "streamchat" and "objective_s" not in sustained:
            objective = await objective_of(server)
            if objective is not None:
                sustained["objective_s"] = objective
        args.objective_s = (args.ttft_objective_ms / 1000 if args.ttft_objective_ms
                            else sustained.get("objective_s"))
        if "overload" in args.phases:
            rate = args.sustained_rate or sustained.get("rate")
            if rate is None:
                raise SystemExit("overload needs a sustained rate: run the levels phase too, or "
                                 "give --sustained-rate")
            result["overload"] = await overload_phase(server, name, prompts, args, rate)
            o = result["overload"]
            print(f"[load] {name}: accepted {o['accepted']}, TTFT p99 "
                  f"{o['accepted_ttft_p99_ms']:.0f} ms (unloaded {o['unloaded_ttft_p99_ms']:.0f}"
                  f"); refused {o['rejected']}, p99 {o['rejected_p99_ms']:.1f} ms; hung "
                  f"{o['hung']}; goodput {o['goodput_rps']:.2f}/s, objective hit rate "
                  f"{o['objective_hit_rate']:.2f}", flush=True)
        if "burst" in args.phases:
            result["burst"] = b = await burst_phase(server, name, prompts, args)
            print(f"[load] {name}: burst accepted {b['accepted']} (status line p99 "
                  f"{b['accepted_first_status_p99_ms']:.1f} ms), refused {b['rejected']} (p99 "
                  f"{b['rejected_p99_ms']:.1f} ms from the send), hung {b['hung']}", flush=True)
    finally:
        server.stop()
        await asyncio.sleep(2)  # let the engine core exit before the next server starts
    return result


async def measure_bare(prompts: Prompts, args: argparse.Namespace, cache_dir: Path,
                       engine_args: dict[str, Any]) -> dict[str, Any]:
    skipped = [p for p in args.phases if p in HTTP_PHASES]
    if skipped:
        print(f"[load] bare: skipping {', '.join(skipped)} (they need an HTTP server with "
              "admission; the bare engine has neither)", flush=True)
    if "levels" not in args.phases:
        return {}
    return {"levels": await bare_levels(prompts, args, cache_dir, engine_args)}


# -- reporting ------------------------------------------------------------------------------

def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b and a == a and b == b else "-"


def _short(name: str) -> str:
    return "sc" if name == "streamchat" else name  # a ratio column's header fits in 10


def ratio_pairs(names: list[str]) -> list[tuple[str, str]]:
    """(numerator, denominator) for the levels table's ratio columns: streamchat (else the first
    server) over each other one, vLLM's server first, then the bare engine."""
    if len(names) < 2:
        return []
    top = "streamchat" if "streamchat" in names else names[0]
    others = sorted((n for n in names if n != top), key=("vllm", "bare", "streamchat").index)
    return [(top, other) for other in others]


def streamchat_settings() -> dict[str, str]:
    """The STREAMCHAT_* variables this run's server inherits, secrets left out, so that a
    report says when it did not measure the defaults."""
    secret = ("KEY", "SECRET", "JWT", "REDIS_URL")
    return {k: v for k, v in os.environ.items()
            if k.startswith("STREAMCHAT_") and not any(word in k for word in secret)}


def report(out: dict[str, Any], args: argparse.Namespace) -> str:
    res = out["results"]
    names = list(res)
    lines = [f"CPU: {out['cpu']}", f"streamchat engine: {out['streamchat_engine']}",
             f"streamchat settings: {out['streamchat_settings']}",
             f"vLLM server flags: {' '.join(out['vllm_flags'])}"]
    ran = {phase: [n for n in names if phase in res[n]] for phase in PHASES}
    if ran["levels"]:
        level_names = ran["levels"]
        pairs = ratio_pairs(level_names)
        how = (["vLLM's benchmark client"] if set(level_names) - {"bare"} else []) + (
            ["bare: the engine in-process, the same closed loop"] if "bare" in level_names else [])
        lines += ["", f"levels: {'; '.join(how)}, random {args.input_len} in / {args.output_len} out, "
                  "ignore_eos" + "".join(f"; {_short(a)}/{b} = {a} / {b}" for a, b in pairs)]
        for c in args.concurrency:
            lines.append(f"\nconcurrency {c}")
            lines.append(f"{'metric':<18}" + "".join(f"{n:>12}" for n in level_names)
                         + "".join(f"{_short(a) + '/' + b:>10}" for a, b in pairs))
            for key, label in LEVEL_METRICS:
                value = {n: float(res[n]["levels"][str(c)][key]) for n in level_names}
                lines.append(f"{label:<18}" + "".join(f"{value[n]:>12.1f}" for n in level_names)
                             + "".join(f"{_ratio(value[a], value[b]):>10}" for a, b in pairs))
            failed = [int(res[n]["levels"][str(c)].get("failed", 0) or 0) for n in level_names]
            lines.append(f"{'failed':<18}" + "".join(f"{v:>12d}" for v in failed))
    if ran["fairness"]:
        lines += ["", f"fairness: light user's TTFT p50 alone and beside {args.heavy_streams} "
                  "heavy streams (target: loaded/alone <= 2)"]
        for n in ran["fairness"]:
            f = res[n]["fairness"]
            lines.append(f"{n:<12} alone {f['light_alone_ttft_p50_ms']:>9.0f} ms  loaded "
                         f"{f['light_loaded_ttft_p50_ms']:>9.0f} ms  ratio {f['ratio']:.2f}  "
                         f"(heavy TTFT p50 {f['heavy_ttft_p50_ms']:.0f} ms, ITL p50 "
                         f"{f.get('heavy_itl_p50_ms', float('nan')):.0f} ms, failed {f['failed']})")
    if ran["overload"]:
        lines += ["", f"overload: {args.overload:g}x the sustained rate for {args.overload_s:g} s "
                  "(targets: accepted TTFT p99 <= 2x unloaded, refusals p99 < 100 ms, 0 hung)"]
        for n in ran["overload"]:
            o = res[n]["overload"]
            lines.append(
                f"{n:<12} {o['requests']} offered at {o['offered_rate']:.2f}/s: accepted "
                f"{o['accepted']}, TTFT p99 {o['accepted_ttft_p99_ms']:.0f} ms vs unloaded "
                f"{o['unloaded_ttft_p99_ms']:.0f} ms (ratio {o['ratio']:.2f}); refused "
                f"{o['rejected']}, p99 {o['rejected_p99_ms']:.1f} ms; hung {o['hung']}, failed "
                f"{o['failed']}, incomplete {o['incomplete']}")
            lines.append(
                f"{'':<12} objective {o['objective_ms']:.0f} ms: goodput {o['goodput_rps']:.2f} "
                f"requests/s ({o['goodput_tokens_per_s']:.1f} tokens/s), hit rate "
                f"{o['objective_hit_rate']:.2f}; ITL p50 {o['itl_p50_ms']:.1f} ms, p99 "
                f"{o['itl_p99_ms']:.1f} ms")
    if ran["burst"]:
        lines += ["", f"burst: {args.burst} requests at once on pre-opened connections, from a "
                  "client process of its own (target: refusals p99 < 100 ms from the send, 0 "
                  "hung)"]
        for n in ran["burst"]:
            b = res[n]["burst"]
            lines.append(f"{n:<12} accepted {b['accepted']} (status line p99 "
                         f"{b['accepted_first_status_p99_ms']:.1f} ms), refused {b['rejected']} (p50 "
                         f"{b['rejected_p50_ms']:.1f} ms, p99 {b['rejected_p99_ms']:.1f} ms); "
                         f"hung {b['hung']}, failed {b['failed']}, incomplete {b['incomplete']}")
    return "\n".join(lines)


def plot(out: dict[str, Any], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    levels = args.concurrency
    for name, data in ((n, r["levels"]) for n, r in out["results"].items() if "levels" in r):
        style = COLORS.get(name, "tab:gray")
        for key, dash, label in (("median_ttft_ms", "-", "p50"), ("p99_ttft_ms", "--", "p99")):
            ax.plot(levels, [data[str(c)][key] / 1000 for c in levels], dash, color=style,
                    marker="o", label=f"{name} TTFT {label}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.set_xlabel("concurrency")
    ax.set_ylabel("time to first token (s)")
    ax.set_title(f"TTFT vs concurrency, random {args.input_len} in / {args.output_len} out\n"
                 f"{out['cpu']}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_order(servers: list[str]) -> list[str]:
    """Each named server once, in SERVERS' order: streamchat first, since it sets the rate."""
    return sorted(dict.fromkeys(servers), key=SERVERS.index)


async def main(args: argparse.Namespace) -> int:
    from app.engine.cpu import read_cpu_info
    from app.engine.model import ensure_default_model

    args.phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    args.concurrency = [int(c) for c in str(args.concurrency).split(",") if c.strip()]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if set(args.phases) - set(PHASES) or set(servers) - set(SERVERS):
        print(f"--phases takes {', '.join(PHASES)}; --servers takes {', '.join(SERVERS)}")
        return 2
    cache_dir = args.cache_dir or default_cache_dir()
    model_dir = Path(args.model) if args.model else ensure_default_model(cache_dir)
    engine_args, vllm_flags, env = cpu_settings(dict(args.engine_arg))
    out_dir = results_dir() / f"{timestamp()}-load"
    out_dir.mkdir(parents=True, exist_ok=True)
    prompts = Prompts(model_dir, args.input_len)
    made = {
        "streamchat": lambda: ServerProcess(port=free_port(), cache_dir=cache_dir, model=args.model,
                                            engine_args=engine_args,
                                            log_path=out_dir / "streamchat.log"),
        "vllm": lambda: VllmServer(model_dir, MODEL_NAME, out_dir / "vllm.log", vllm_flags, env),
    }
    sustained: dict[str, float] = {}
    if args.sustained_rate is not None:
        sustained["rate"] = args.sustained_rate
    results: dict[str, Any] = {}
    for name in run_order(servers):
        if name == "bare":
            results[name] = await measure_bare(prompts, args, cache_dir, engine_args)
        else:
            results[name] = await measure(made[name](), name, model_dir, prompts, args, out_dir,
                                          sustained)
    out = {"cpu": read_cpu_info().describe(), "streamchat_engine": engine_args or "defaults",
           "streamchat_settings": streamchat_settings() or "defaults",
           "vllm_flags": vllm_flags, "environment": environment(), "results": results,
           "config": {k: v for k, v in vars(args).items() if k != "engine_arg"}}
    (out_dir / "summary.json").write_text(
        json.dumps(finite(out), indent=2, default=str, allow_nan=False) + "\n")
    print()
    print(report(out, args))
    if "levels" in args.phases:
        plot(out, args, out_dir / "ttft.png")
    print(f"\nresults: {out_dir}")
    return 0

