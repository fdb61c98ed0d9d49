"""Long runs stay flat: the real service under a steady mix of streams for many minutes.

Starts `python -m app` as `make run` does (the real vLLM engine, the default model) and keeps
`--streams` (16) streams going for `--minutes` (20), each client starting its next request as
soon as the last one ended, with short replies (`--min-tokens`..`--max-tokens`, 32-64) so that
many requests go through. The mix (`--mix`, weights over the streams):

- sse: multi-turn session chats over SSE: a session is used for 2..`--max-turns` turns, then
  deleted, and a new one is created;
- ws: the same over the session WebSocket, every turn of a session on one socket;
- openai: streamed /v1/chat/completions, one user turn each;
- responses: background /v1/responses, followed over SSE to their terminal event, then deleted.

Every `--sample-s` seconds it samples the RSS of the server process and, separately, of the
engine core (its child process), and prints a line a minute (requests, errors, RSS). The first
`--warmup-minutes` (3) are the warm-up: allocators and caches fill. Then the clients stop (each
finishes the request it is in) and /metrics must show nothing left open.

Verdicts (issue 21's targets):
- RSS growth from the end of the warm-up to the end, for the server and for the engine core:
  under 5%;
- errors: 0 (any non-2xx, any stream without its terminal event, any exception or timeout);
- streams left open once the clients stopped: 0 (streamchat_active_streams, the admission
  queue and admitted generations, the engine's running and waiting requests).

Writes benchmarks/results/<timestamp>-soak.json, the RSS curve as <timestamp>-soak.png and the
server's log as <timestamp>-soak-server.log. Other work on the machine makes the run slower
(fewer requests), not its memory or errors different; the report says how much CPU it took.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from app.api.http.sse import EventParser
from benchmarks import transport_server
from benchmarks.cli import add_model_options, add_server_options, default_cache_dir
from benchmarks.cpu_share import OtherCpu
from benchmarks.openai_client import chat, served_model
from benchmarks.output import environment, results_dir, timestamp, write_results
from benchmarks.server import ServerProcess, running
from benchmarks.session_api import create_session
from benchmarks.sse_client import make_client, stream_reply
from benchmarks.workload import RequestResult

KINDS = ("sse", "ws", "openai", "responses")
DEFAULT_MIX = "sse=5,ws=5,openai=4,responses=2"
RSS_TARGET_PCT = 5.0
# Gauges that count something in flight: all must read 0 once every client has stopped.
OPEN_GAUGES = ("streamchat_active_streams", "streamchat_queue_length",
               "streamchat_admitted_generations", "streamchat_engine_running_requests",
               "streamchat_engine_waiting_requests")
# After an error, a client waits this long before its next request: a dead server must not
# turn the run into a busy loop of refusals.
ERROR_PAUSE_S = 1.0
QUESTIONS = ("What is a good name for a cat?", "Explain rain to a child.",
             "Give me a tip for learning to cook.", "Why is the sky blue?",
             "Suggest a weekend hobby.", "What does a librarian do?",
             "How do bees make honey?", "Describe a quiet morning.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="how long the streams run, warm-up included (default: 20)")
    parser.add_argument("--warmup-minutes", type=float, default=3.0,
                        help="the first minutes, left out of the growth (default: 3)")
    parser.add_argument("--streams", type=int, default=16, help="concurrent streams (default: 16)")
    parser.add_argument("--mix", default=DEFAULT_MIX,
                        help=f"weights of {', '.join(KINDS)} over the streams (default: {DEFAULT_MIX})")
    parser.add_argument("--min-tokens", type=int, default=32, help="shortest reply (default: 32)")
    parser.add_argument("--max-tokens", type=int, default=64, help="longest reply (default: 64)")
    parser.add_argument("--max-turns", type=int, default=6,
                        help="a session chat has 2..N turns before a new session (default: 6)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS sampling interval (5)")
    parser.add_argument("--request-timeout", type=float, default=300.0,
                        help="a request with no end after this long is an error (default: 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--snapshots", type=Path, default=None, metavar="DIR",
                        help="to find what grows: trace the server's allocations (tracemalloc) "
                        "from the end of the warm-up, and dump a snapshot and the gc's objects "
                        "by type then and at the end (the report lists what grew most); it slows "
                        "the server: compare RSS figures only from runs without it")
    add_model_options(parser)
    add_server_options(parser)


# -- pure parts ----------------------------------------------------------------------------

def parse_mix(raw: str) -> dict[str, int]:
    """`sse=5,ws=5` -> {"sse": 5, "ws": 5}; kinds not named get 0."""
    mix = dict.fromkeys(KINDS, 0)
    for part in filter(None, (p.strip() for p in raw.split(","))):
        kind, sep, weight = part.partition("=")
        if not sep or kind.strip() not in mix or not weight.strip().isdigit():
            raise ValueError(f"--mix takes KIND=WEIGHT of {', '.join(KINDS)}, got {part!r}")
        mix[kind.strip()] = int(weight)
    if not any(mix.values()):
        raise ValueError("--mix gives every kind a weight of 0")
    return mix


def split_streams(total: int, weights: dict[str, int]) -> dict[str, int]:
    """`total` streams shared by weight (largest remainders get the leftovers)."""
    whole = sum(weights.values())
    exact = {k: total * w / whole for k, w in weights.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: counts[k] - exact[k])[:total - sum(counts.values())]:
        counts[k] += 1
    return counts


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def gauge_totals(text: str, names: tuple[str, ...] = OPEN_GAUGES) -> dict[str, float]:
    """Each named metric in Prometheus text, summed over its labels (0 when absent)."""
    totals = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1) in totals:
            totals[match.group(1)] += float(match.group(3))
    return totals


def growth_pct(before: float, after: float) -> float:
    return 100.0 * (after - before) / before if before else float("nan")


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    n = len(points)
    if n < 2:
        return float("nan")
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return 60.0 * sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def rss_summary(samples: list[dict[str, Any]], key: str, warmup_s: float) -> dict[str, Any]:
    """A process's RSS (MiB) at the start, at the end of the warm-up and at the end, and its
    growth in between; `samples` are dicts with `t` (s) and `key` (bytes)."""
    series = [(s["t"], s[key] / 2**20) for s in samples if s.get(key)]
    if not series:
        return {"start_mib": None, "warm_mib": None, "end_mib": None, "growth_pct": None}
    after = [p for p in series if p[0] >= warmup_s] or series[-1:]
    warm, end = after[0][1], series[-1][1]
    return {"start_mib": series[0][1], "warm_mib": warm, "end_mib": end,
            "peak_after_warmup_mib": max(v for _, v in after),
            "growth_pct": growth_pct(warm, end), "slope_mib_per_min": slope_per_min(after)}


def verdicts(rss: dict[str, dict[str, Any]], errors: int, left_open: dict[str, float]) -> list[str]:
    lines = []
    for name, summary in rss.items():
        pct = summary["growth_pct"]
        ok = pct is not None and pct == pct and pct < RSS_TARGET_PCT
        shown = "n/a" if pct is None else f"{pct:+.2f}%"
        lines.append(f"RSS growth after warm-up, {name}: {shown} "
                     f"(target < {RSS_TARGET_PCT:g}%): {'met' if ok else 'MISSED'}")
    lines.append(f"errors: {errors} (target 0): {'met' if errors == 0 else 'MISSED'}")
    still = {k: v for k, v in left_open.items() if v}
    lines.append(f"streams left open: {sum(still.values()):g}"
                 + (f" ({', '.join(f'{k} {v:g}' for k, v in still.items())})" if still else "")
                 + f" (target 0): {'met' if not still else 'MISSED'}")
    return lines


# -- the clients ---------------------------------------------------------------------------

@dataclass
class Tally:
    done: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    errors: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)  # the first 50, with their time

    def error(self, kind: str, message: str, t: float) -> None:
        self.errors += 1
        self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
        if len(self.first_errors) < 50:
            self.first_errors.append(f"{t:.0f}s {kind}: {message[:300]}")


@dataclass
class Soak:
    client: httpx.AsyncClient
    ws_url: str
    model: str
    args: argparse.Namespace
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tally: Tally = field(default_factory=Tally)
    began: float = field(default_factory=time.monotonic)

    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def reply_tokens(self, rng: random.Random) -> int:
        return rng.randint(self.args.min_tokens, self.args.max_tokens)

    def question(self, rng: random.Random, n: int) -> str:
        return f"{rng.choice(QUESTIONS)} (#{n})"


async def _sse_session(soak: Soak, rng: random.Random, n: int) -> None:
    sid = await create_session(soak.client)
    try:
        for _ in range(rng.randint(2, soak.args.max_turns)):
            if soak.stop.is_set():
                break
            body = {"content": soak.question(rng, n), "params": {"max_tokens": soak.reply_tokens(rng)}}
            result = RequestResult(tag=sid, start_s=0.0, sent_s=0.0)
            await stream_reply(soak.client, sid, body, result)
            if result.error:
                raise RuntimeError(result.error)
            soak.tally.done["sse"] += 1
    finally:
        await _delete(soak.client, f"/v1/sessions/{sid}")


async def _ws_session(soak: Soak, rng: random.Random, n: int) -> None:
    from websockets.asyncio.client import connect

    sid = await create_session(soak.client)
    try:
        async with connect(f"{soak.ws_url}/v1/sessions/{sid}/ws", open_timeout=30,
                           max_size=None) as ws:
            for _ in range(rng.randint(2, soak.args.max_turns)):
                if soak.stop.is_set():
                    break
                await ws.send(json.dumps({"type": "message", "content": soak.question(rng, n),
                                          "params": {"max_tokens": soak.reply_tokens(rng)}}))
                async for raw in ws:
                    frame = json.loads(raw)
                    if frame.get("type") == "error":
                        raise RuntimeError(f"error frame: {str(frame)[:200]}")
                    if frame.get("type") == "done":
                        break
                else:
                    raise RuntimeError("socket closed without a done frame")
                soak.tally.done["ws"] += 1
    finally:
        await _delete(soak.client, f"/v1/sessions/{sid}")


async def _openai_chat(soak: Soak, rng: random.Random, n: int) -> None:
    outcome = await chat(soak.client, soak.model, soak.question(rng, n), f"soak-{n % 4}",
                         max_tokens=soak.reply_tokens(rng), timeout_s=soak.args.request_timeout)
    if outcome.status != "ok" or outcome.error:
        raise RuntimeError(f"{outcome.status} ({outcome.http_status}): {outcome.error}")
    soak.tally.done["openai"] += 1


async def _background_response(soak: Soak, rng: random.Random, n: int) -> None:
    created = await soak.client.post("/v1/responses", json={
        "model": soak.model, "input": soak.question(rng, n), "background": True,
        "max_output_tokens": soak.reply_tokens(rng)})
    if created.status_code != 200:
        raise RuntimeError(f"POST /v1/responses -> {created.status_code}: {created.text[:200]}")
    rid = created.json()["id"]
    try:
        last = None
        async with soak.client.stream("GET", f"/v1/responses/{rid}",
                                      params={"stream": "true"}) as resp:
            if resp.status_code != 200:
                await resp.aread()
                raise RuntimeError(f"GET /v1/responses/{rid}?stream=true -> {resp.status_code}")
            parser = EventParser()
            async for chunk in resp.aiter_raw():
                for event in parser.feed(chunk):
                    last = event.event
        if last not in ("response.completed", "response.incomplete"):
            raise RuntimeError(f"background response ended with {last!r}")
        soak.tally.done["responses"] += 1
    finally:
        await _delete(soak.client, f"/v1/responses/{rid}")


async def _delete(client: httpx.AsyncClient, path: str) -> None:
    answer = await client.delete(path)
    if not answer.is_success:
        raise RuntimeError(f"DELETE {path} -> {answer.status_code}: {answer.text[:200]}")


RUNS: dict[str, Callable[[Soak, random.Random, int], Awaitable[None]]] = {
    "sse": _sse_session, "ws": _ws_session, "openai": _openai_chat,
    "responses": _background_response}


async def client_loop(soak: Soak, kind: str, index: int) -> None:
    """One stream: `kind`'s requests one after the other until the soak stops; the one in
    flight then finishes (cut short, it would leave an orphan for the grace period)."""
    rng = random.Random(soak.args.seed * 1000 + index)
    n = 0
    while not soak.stop.is_set():
        n += 1
        try:
            async with asyncio.timeout(soak.args.request_timeout * soak.args.max_turns):
                await RUNS[kind](soak, rng, index * 100_000 + n)
        except Exception as exc:  # a data point: counted, then the next request
            soak.tally.error(kind, f"{type(exc).__name__}: {exc}", soak.elapsed())
            await asyncio.sleep(ERROR_PAUSE_S)


# -- the server's side ---------------------------------------------------------------------

# `python -m app` with a SIGUSR1 hook (`memory_debug` below), so that app/ needs no debugging
# switch of its own.
_TRACED_APP = ("import runpy, sys; from benchmarks.soak import memory_debug; "
               "memory_debug(sys.argv[1]); sys.argv = ['app', *sys.argv[2:]]; "
               "runpy.run_module('app', run_name='__main__', alter_sys=True)")


def memory_debug(folder: str) -> None:
    """In the server: the transport server's SIGUSR1 hook, tracemalloc from the first dump (the
    end of the warm-up). What the last snapshot holds was allocated after the first and is
    still alive."""
    transport_server.memory_debug(folder, trace_now=False)


class SoakServer(ServerProcess):
    def trace(self, folder: Path) -> None:
        """Start it with `memory_debug`'s hook; snapshots go to `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*"):
            old.unlink()
        assert self._cmd[1:3] == ["-m", "app"]
        self._cmd = [self._cmd[0], "-c", _TRACED_APP, str(folder), *self._cmd[3:]]

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self._proc

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid


def rss_by_process(pid: int) -> dict[str, int]:
    """RSS of the server (`app`), its engine core (`engine`) and its other descendants by name."""
    out: dict[str, int] = {}
    try:
        server = psutil.Process(pid)
        out["app"] = server.memory_info().rss
        children = server.children(recursive=True)
    except psutil.Error:
        return out
    for child in children:
        with contextlib.suppress(psutil.Error):
            key = process_key(child.name(), child.cmdline())
            out[key] = out.get(key, 0) + child.memory_info().rss
    return out


def process_key(name: str, cmdline: list[str]) -> str:
    """`engine` for vLLM's engine core, `worker` for its workers (their titles are set to
    VLLM::EngineCore, VLLM::Worker...; `name` is cut at 15 characters), else `other:` and the
    module or program."""
    title = cmdline[0] if cmdline else name
    if "EngineCor" in name or "EngineCore" in title:
        return "engine"
    if "Worker" in title or "Worker" in name:
        return "worker"
    module = cmdline[cmdline.index("-m") + 1] if "-m" in cmdline[:-1] else None
    return f"other:{module or os.path.basename(title)}"


# Read with them, for the report only: sessions still held (every client deletes its own) and
# engine deaths (a restart in place would show as a jump in the engine core's curve).
INFO_METRICS = ("streamchat_sessions", "streamchat_engine_deaths_total")


async def left_open(client: httpx.AsyncClient,
                    within_s: float = 30.0) -> tuple[dict[str, float], float, dict[str, float]]:
    """The in-flight gauges once the clients stopped, read until all are 0 (or `within_s`: the
    engine's counts arrive with its steps), the seconds that took, and INFO_METRICS."""
    began = time.monotonic()
    while True:
        try:
            answer = await client.get("/metrics")
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            return {f"/metrics unreachable ({type(exc).__name__})": 1.0}, 0.0, {}
        totals = gauge_totals(answer.text, (*OPEN_GAUGES, *INFO_METRICS))
        info = {name: totals.pop(name) for name in INFO_METRICS}
        waited = time.monotonic() - began
        if not any(totals.values()) or waited > within_s:
            return totals, waited, info
        await asyncio.sleep(1.0)


async def sample_loop(soak: Soak, pid: int, samples: list[dict[str, Any]]) -> None:
    next_line = 60.0
    while True:
        t = soak.elapsed()
        rss = rss_by_process(pid)
        if "app" not in rss:  # the server died: every request from here would be an error
            print(f"[soak] the server process is gone at {t:.0f} s: stopping", flush=True)
            soak.tally.error("server", "the server process exited", t)
            soak.stop.set()
            return
        samples.append({"t": round(t, 1), **rss, "requests": sum(soak.tally.done.values()),
                        "errors": soak.tally.errors, "load1": os.getloadavg()[0]})
        if t >= next_line:
            next_line += 60.0
            print(f"[soak] {t / 60:4.1f} min: {samples[-1]['requests']:,} requests "
                  f"({', '.join(f'{k} {v}' for k, v in soak.tally.done.items())}), "
                  f"{soak.tally.errors} errors, RSS "
                  + ", ".join(f"{k} {rss[k] / 2**20:,.0f} MiB" for k in ("app", "engine", "worker")
                              if k in rss)
                  + f", load {os.getloadavg()[0]:.1f}", flush=True)
        await asyncio.sleep(soak.args.sample_s)


# -- the run -------------------------------------------------------------------------------

async def soak_run(server: SoakServer, args: argparse.Namespace,
                   streams: dict[str, int]) -> dict[str, Any]:
    assert server.pid is not None
    async with make_client(server.base_url, args.streams + 8) as client:
        soak = Soak(client=client, ws_url="ws" + server.base_url.removeprefix("http"),
                    model=await served_model(client), args=args)
        samples: list[dict[str, Any]] = []
        others = OtherCpu()
        sampler = asyncio.create_task(sample_loop(soak, server.pid, samples))
        index = iter(range(10**6))
        clients = [asyncio.create_task(client_loop(soak, kind, next(index)))
                   for kind, count in streams.items() for _ in range(count)]
        try:
            if args.snapshots is None:
                await _run_for(soak, args.minutes * 60)
            else:
                await _run_for(soak, args.warmup_minutes * 60)
                await _snapshot_now(server, args.snapshots, "start")
                await _run_for(soak, (args.minutes - args.warmup_minutes) * 60)
                await _snapshot_now(server, args.snapshots, "end")
            samples.append({"t": round(soak.elapsed(), 1), **rss_by_process(server.pid),
                            "requests": sum(soak.tally.done.values()),
                            "errors": soak.tally.errors, "load1": os.getloadavg()[0]})
            soak.stop.set()
            print("[soak] stopping: each client finishes its request", flush=True)
            await asyncio.gather(*clients)
        finally:
            sampler.cancel()
            for task in clients:
                task.cancel()
            await asyncio.gather(sampler, *clients, return_exceptions=True)
        stopped_s = soak.elapsed()
        still_open, settle_s, info = await left_open(client)
        return {"samples": samples, "done": soak.tally.done, "errors": soak.tally.errors,
                "errors_by_kind": soak.tally.errors_by_kind,
                "first_errors": soak.tally.first_errors, "left_open": still_open,
                "left_open_settle_s": settle_s, "at_the_end": info, "stopped_s": stopped_s,
                "other_processes_cores": others.cores(),
                "rss_after_stop": rss_by_process(server.pid)}


async def _run_for(soak: Soak, seconds: float) -> None:
    """The streams run for `seconds` (less if the server died: the sampler stops them)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(soak.stop.wait(), seconds)


async def _snapshot_now(server: SoakServer, folder: Path, name: str) -> None:
    from benchmarks.stream_memory import _snapshot

    if server.proc is not None and server.proc.poll() is None:
        print(f"[soak] tracemalloc snapshot {name}", flush=True)
        await asyncio.to_thread(_snapshot, server.proc, folder, name)


def plot(out: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, warmup_s = out["results"]["samples"], out["config"]["warmup_minutes"] * 60
    labels = {"app": "server (python -m app)", "engine": "engine core", "worker": "engine workers"}
    keys = list(out["results"]["rss"])
    fig, axes = plt.subplots(len(keys), 1, figsize=(8, 3 * len(keys)), sharex=True, squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=True):
        label = labels[key]
        points = [(s["t"] / 60, s[key] / 2**20) for s in samples if s.get(key)]
        ax.plot([p[0] for p in points], [p[1] for p in points], color="tab:blue")
        ax.axvline(warmup_s / 60, color="grey", linestyle="--", label="end of warm-up")
        pct = out["results"]["rss"][key]["growth_pct"]
        ax.set_title(f"{label}: {'n/a' if pct is None else f'{pct:+.2f}%'} after warm-up",
                     fontsize=9)
        ax.set_ylabel("RSS (MiB)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    axes[-1, 0].set_xlabel("minutes")
    fig.suptitle(f"soak: {out['config']['streams']} streams, {sum(out['results']['done'].values()):,} "
                 f"requests, {out['results']['errors']} errors\n{out['environment']['cpu']}",
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(out: dict[str, Any]) -> str:
    r, c = out["results"], out["config"]
    lines = [f"soak: {c['streams']} streams ({', '.join(f'{k} {v}' for k, v in c['split'].items())}) "
             f"for {c['minutes']:g} min, warm-up {c['warmup_minutes']:g} min; "
             f"{out['environment']['cpu']}",
             f"  requests: {sum(r['done'].values()):,} "
             f"({', '.join(f'{k} {v:,}' for k, v in r['done'].items())}); other processes used "
             f"{r['other_processes_cores']:.2f} cores meanwhile"]
    for name, s in r["rss"].items():
        if s["start_mib"] is not None:
            lines.append(f"  RSS {name}: start {s['start_mib']:,.1f} MiB, after warm-up "
                         f"{s['warm_mib']:,.1f}, end {s['end_mib']:,.1f} ({s['growth_pct']:+.2f}%; "
                         f"peak {s['peak_after_warmup_mib']:,.1f}, slope "
                         f"{s['slope_mib_per_min']:+.3f} MiB/min)")
    if r["errors"]:
        lines.append(f"  errors by kind: {r['errors_by_kind']}")
    lines += [f"  first errors: {e}" for e in r["first_errors"][:5]]
    lines.append(f"  in-flight gauges {r['left_open_settle_s']:.1f} s after the clients stopped: "
                 + ", ".join(f"{k} {v:g}" for k, v in r["left_open"].items())
                 + "; " + ", ".join(f"{k} {v:g}" for k, v in r["at_the_end"].items()))
    if "snapshots" in r:  # what the server's Python heap grew by, end of warm-up to the end
        snap = r["snapshots"]
        lines.append(f"  traced (tracemalloc) {snap['traced_bytes'][0] / 2**20:.1f} -> "
                     f"{snap['traced_bytes'][1] / 2**20:.1f} MiB; asyncio tasks {snap['tasks']}")
        lines += [f"    {x['size_diff']:+,} B {x['count_diff']:+,} blocks  {x['where']}"
                  for x in snap["top_lines"][:10]]
        lines.append("  gc objects by type: " + ", ".join(
            f"{x['type']} {x['diff']:+,}" for x in snap["gc_types"][:12]))
    lines += [f"  {v}" for v in r["verdicts"]]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    try:
        streams = split_streams(args.streams, parse_mix(args.mix))
    except ValueError as exc:
        print(exc)
        return 2
    if not 0 <= args.warmup_minutes < args.minutes or not 1 <= args.min_tokens <= args.max_tokens \
            or args.max_turns < 2 or args.streams < 1:
        print("need 0 <= --warmup-minutes < --minutes, 1 <= --min-tokens <= --max-tokens, "
              "--max-turns >= 2, --streams >= 1")
        return 2
    stamp = timestamp()
    server = SoakServer(port=args.port, cache_dir=args.cache_dir or default_cache_dir(),
                        model=args.model, engine_args=dict(args.engine_arg),
                        log_path=results_dir() / f"{stamp}-soak-server.log")
    if args.snapshots is not None:
        server.trace(args.snapshots)
    print(f"[soak] starting the server (log {server.log_path})", flush=True)
    async with running(server, args.ready_timeout):
        print(f"[soak] {args.streams} streams for {args.minutes:g} min: "
              + ", ".join(f"{k} {v}" for k, v in streams.items()), flush=True)
        results = await soak_run(server, args, streams)
    warmup_s = args.warmup_minutes * 60
    results["rss"] = {key: rss_summary(results["samples"], key, warmup_s)
                      for key in ("app", "engine", "worker")
                      if key != "worker" or any("worker" in x for x in results["samples"])}
    if args.snapshots is not None and (args.snapshots / "end.gc.json").exists():
        from benchmarks.stream_memory import snapshot_diff

        results["snapshots"] = snapshot_diff(args.snapshots)
    results["verdicts"] = verdicts(results["rss"], results["errors"], results["left_open"])
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
              if k not in ("engine_arg", "cache_dir")}
    config.update(split=streams, engine_arg=dict(args.engine_arg))
    out = {"timestamp": stamp, "environment": environment(), "config": config,
           "results": results}
    path = write_results(stamp, out, "soak")
    png = path.with_suffix(".png")
    plot(out, png)
    print(report(out))
    print(f"\nresults: {path}\nplot: {png}")
    return 0
