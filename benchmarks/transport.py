"""The transport's ceiling: the real app on a token source with no model, on one core.

For each count of concurrent streams, on each path (`--transports`: a session reply over SSE
and over the WebSocket, a streamed /v1/chat/completions, a background /v1/responses followed
over SSE):
- flat out: the token source steps as fast as the app lets it; the tokens/s and token
  events/s that reach the clients are the ceiling;
- paced: every stream gets `--rate` tokens/s; the added latency of each token (its arrival at
  the client minus the moment the token source had it due) at p50/p99.
At `--compare-at` streams, the same SSE path runs through sse-starlette's EventSourceResponse,
and a floor with no service at all (one Starlette StreamingResponse over the token source).
The server is pinned to `--server-core`, this client to `--client-core` (it uses well under
one core; both CPU shares are reported), and the server's CPU per token event is compared with
the floor's on every path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.output import environment, results_dir, timestamp, write_results
from benchmarks.raw_streams import (
    Tally,
    _Stream,
    floor_sse,
    open_streams,
    openai_sse,
    responses_sse,
    session_sse,
    session_ws,
)

TARGET_EVENTS_PER_S = 50_000
TARGET_P99_MS = 20.0
TARGET_CPU_OVER_FLOOR = 1.5  # server CPU per token event, at --compare-at streams
TRANSPORTS = ("sse", "ws", "openai", "responses")
LONG_REPLY = 1 << 20  # tokens: no stream ends before the client closes it


@dataclass(frozen=True)
class Run:
    response: str  # app | sse-starlette | starlette (see benchmarks/transport_server.py)
    transport: str  # sse | ws (session replies) | openai (/v1/chat/completions) | responses
    streams: int
    rate: float | None  # tokens/s per stream; None: flat out

    @property
    def label(self) -> str:
        pace = f"{self.rate:g} tok/s each" if self.rate else "flat out"
        return f"{self.response}/{self.transport} x{self.streams} {pace}"


def _counts(raw: str) -> list[int]:
    values = [int(part) for part in raw.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("stream counts must be integers >= 1")
    return values


def _transports(raw: str) -> list[str]:
    values = [part.strip() for part in raw.split(",") if part.strip()]
    if not values or set(values) - set(TRANSPORTS):
        raise argparse.ArgumentTypeError(f"transports are among {','.join(TRANSPORTS)}")
    return values


def define_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--streams", type=_counts, default=[100, 1000, 2000],
                        help="concurrent stream counts (default: 100,1000,2000)")
    parser.add_argument("--transports", type=_transports, default=list(TRANSPORTS),
                        help="paths measured: sse and ws (session replies), openai "
                        "(/v1/chat/completions streamed), responses (a background "
                        "/v1/responses followed over SSE) (default: all four)")
    parser.add_argument("--rate", type=float, default=20.0,
                        help="tokens/s per stream in the paced runs (default: 20)")
    parser.add_argument("--window", type=float, default=10.0,
                        help="seconds measured per run, after every stream has its first token "
                        "and --settle more (default: 10)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds between the last stream's first token and measuring")
    parser.add_argument("--compare-at", type=int, default=1000,
                        help="stream count for sse-starlette and the Starlette floor (0: skip)")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--client-core", type=int, default=1)


def plan(args: argparse.Namespace) -> list[Run]:
    runs = [Run("app", transport, n, rate) for n in args.streams for transport in args.transports
            for rate in (None, args.rate)]
    if args.compare_at:
        runs += [Run(response, "sse", args.compare_at, rate)
                 for response in ("sse-starlette", "starlette") for rate in (None, args.rate)]
    return runs


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"transport server exited with {proc.returncode}")
            try:
                if (await client.get(f"http://127.0.0.1:{port}/ready")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise TimeoutError(f"transport server not ready in {timeout_s:.0f} s")


async def _sessions(port: int, count: int) -> list[str]:
    gate = asyncio.Semaphore(32)
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=60) as client:
        async def create() -> str:
            async with gate:
                response = await client.post("/v1/sessions", json={})
                response.raise_for_status()
                return str(response.json()["id"])

        return await asyncio.gather(*(create() for _ in range(count)))


def _percentile(ordered: list[int], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000 if ordered else float("nan")


async def measure(run: Run, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    port = _free_port()
    with log.open("ab") as out:
        out.write(f"\n==> {run.label}\n".encode())
        out.flush()
        proc = subprocess.Popen(  # noqa: ASYNC220 - starting it does not block for long
            [sys.executable, "-m", "benchmarks.transport_server", "--port", str(port),
             "--tokens-per-s", str(run.rate or 0), "--response", run.response,
             "--core", str(args.server_core)], stdout=out, stderr=subprocess.STDOUT)
    streams: list[_Stream] = []
    try:
        await _wait_ready(port, proc)
        tally = Tally()
        make: Callable[[int], _Stream]
        if run.response == "starlette" or run.transport in ("openai", "responses"):
            stateless = {"openai": openai_sse, "responses": responses_sse}.get(
                run.transport if run.response == "app" else "", floor_sse)

            def make(_: int) -> _Stream:
                return stateless(LONG_REPLY, tally)
        else:
            sids = await _sessions(port, run.streams)
            opener = session_ws if run.transport == "ws" else session_sse

            def make(i: int) -> _Stream:
                return opener(sids[i], LONG_REPLY, tally)
        streams = [make(i) for i in range(run.streams)]
        await open_streams(port, streams)
        deadline = time.monotonic() + 120
        while tally.first_token < run.streams and time.monotonic() < deadline:
            if tally.errors:
                raise RuntimeError(f"{run.label}: {len(tally.errors)} stream(s) refused, "
                                   f"the first with:\n{tally.errors[0]}")
            await asyncio.sleep(0.1)
        started = tally.first_token
        await asyncio.sleep(args.settle)
        server = psutil.Process(proc.pid)
        server_cpu, client_cpu = sum(server.cpu_times()[:2]), time.process_time()
        began = time.monotonic()
        tally.start()
        await asyncio.sleep(args.window)
        tally.measuring = False
        elapsed = time.monotonic() - began
        server_cpu = (sum(server.cpu_times()[:2]) - server_cpu) / elapsed
        client_cpu = (time.process_time() - client_cpu) / elapsed
    finally:
        for stream in streams:
            stream.close()
        proc.send_signal(signal.SIGKILL)  # nothing of the server is kept: no drain needed
        proc.wait()
    latencies = sorted(tally.latencies_us) if run.rate else []
    return {
        "response": run.response, "transport": run.transport, "streams": run.streams,
        "rate_per_stream": run.rate, "streams_started": started,
        "offered_tokens_per_s": run.rate * run.streams if run.rate else None,
        "tokens_per_s": tally.tokens / elapsed, "events_per_s": tally.events / elapsed,
        "added_latency_ms": {"p50": _percentile(latencies, 0.50),
                             "p99": _percentile(latencies, 0.99),
                             "max": latencies[-1] / 1000 if latencies else float("nan")},
        "server_cpu_of_one_core": server_cpu, "client_cpu_of_one_core": client_cpu,
        # What a token event costs the server, whatever share of its core it was given.
        "server_cpu_us_per_event": server_cpu * 1e6 / (tally.events / elapsed)
        if tally.events else float("nan"),
    }


def report(results: list[dict[str, Any]]) -> str:
    lines = ["| response | transport | streams | pace | tokens/s | events/s | added p50 / p99 ms "
             "| server CPU | us/event | client CPU |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        pace = f"{r['rate_per_stream']:g}/s" if r["rate_per_stream"] else "flat out"
        lat = r["added_latency_ms"]
        latency = f"{lat['p50']:.1f} / {lat['p99']:.1f}" if r["rate_per_stream"] else "-"
        lines.append(f"| {r['response']} | {r['transport']} | {r['streams']:,} | {pace} "
                     f"| {r['tokens_per_s']:,.0f} | {r['events_per_s']:,.0f} | {latency} "
                     f"| {r['server_cpu_of_one_core']:.0%} | {r['server_cpu_us_per_event']:.1f} "
                     f"| {r['client_cpu_of_one_core']:.0%} |")
    return "\n".join(lines)


def verdicts(results: list[dict[str, Any]], compare_at: int) -> list[str]:
    """The issue's targets, and the sse-starlette decision, as lines of the report."""
    def find(response: str, transport: str, streams: int, paced: bool) -> dict[str, Any] | None:
        return next((r for r in results if r["response"] == response and r["transport"] == transport
                     and r["streams"] == streams and bool(r["rate_per_stream"]) == paced), None)

    lines = []
    flat = [r for r in results if r["response"] == "app" and not r["rate_per_stream"]]
    if flat:
        worst = min(flat, key=lambda r: r["events_per_s"])
        met = worst["events_per_s"] >= TARGET_EVENTS_PER_S
        lines.append(f"ceiling: lowest {worst['events_per_s']:,.0f} events/s "
                     f"({worst['transport']} x{worst['streams']}); target >= "
                     f"{TARGET_EVENTS_PER_S:,}: {'met' if met else 'MISSED'}")
    if ws := find("app", "ws", 1000, True):
        p99 = ws["added_latency_ms"]["p99"]
        lines.append(f"1,000 WebSocket streams at {ws['rate_per_stream']:g} tok/s: added p99 "
                     f"{p99:.1f} ms; target < {TARGET_P99_MS:g} ms: "
                     f"{'met' if p99 < TARGET_P99_MS else 'MISSED'}")
    ours, theirs = find("app", "sse", compare_at, False), find("sse-starlette", "sse", compare_at, False)
    if ours and theirs:
        ratio = theirs["events_per_s"] / ours["events_per_s"]
        lines.append(f"sse-starlette at {compare_at:,} streams: {ratio:.2f}x the app's events/s "
                     f"({'within' if ratio >= 0.9 else 'not within'} 10%: "
                     f"{'switch to it' if ratio >= 0.9 else 'keep EventStreamResponse'})")
    if (floor := find("starlette", "sse", compare_at, False)) and ours:
        lines.append(f"bare Starlette floor at {compare_at:,} streams: "
                     f"{floor['events_per_s']:,.0f} events/s; the app is "
                     f"{ours['events_per_s'] / floor['events_per_s']:.2f}x of it")
    if floor:
        for transport in TRANSPORTS:
            if (path := find("app", transport, compare_at, False)) is None:
                continue
            ratio = path["server_cpu_us_per_event"] / floor["server_cpu_us_per_event"]
            lines.append(f"server CPU per event, {transport} at {compare_at:,} streams: "
                         f"{path['server_cpu_us_per_event']:.1f} us, {ratio:.2f}x the floor's "
                         f"{floor['server_cpu_us_per_event']:.1f} us; target <= "
                         f"{TARGET_CPU_OVER_FLOOR:g}x: "
                         f"{'met' if ratio <= TARGET_CPU_OVER_FLOOR else 'MISSED'}")
    return lines


def plot(results: list[dict[str, Any]], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for name, paced, key, ylabel, target in (
            ("transport-events", False, "events_per_s", "token events/s (flat out)",
             TARGET_EVENTS_PER_S),
            ("transport-latency", True, "p99", "added latency p99 (ms)", TARGET_P99_MS)):
        fig, ax = plt.subplots(figsize=(6, 4))
        for transport in TRANSPORTS:
            rows = [r for r in results if r["response"] == "app" and r["transport"] == transport
                    and bool(r["rate_per_stream"]) == paced]
            values = [r["added_latency_ms"][key] if paced else r[key] for r in rows]
            ax.plot([r["streams"] for r in rows], values, marker="o", label=transport)
        ax.axhline(target, color="grey", linestyle="--", label="target")
        ax.set_xlabel("concurrent streams")
        ax.set_ylabel(ylabel)
        ax.set_title("streamchat transport on one core, token source (no model)")
        ax.legend()
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


async def run_all(args: argparse.Namespace) -> dict[str, Any]:
    from tqdm import tqdm

    os.sched_setaffinity(0, {args.client_core})
    stamp = timestamp()
    folder = results_dir() / f"{stamp}-transport"
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    runs = plan(args)
    with tqdm(runs, desc="transport", unit="run", file=sys.stderr) as bar:
        for run in bar:
            bar.set_postfix_str(run.label)
            results.append(await measure(run, args, folder / "server.log"))
    out = {"timestamp": stamp, "environment": environment(),
           "config": {"streams": args.streams, "transports": args.transports,
                      "rate": args.rate, "window_s": args.window,
                      "settle_s": args.settle, "compare_at": args.compare_at,
                      "server_core": args.server_core, "client_core": args.client_core},
           "results": results, "verdicts": verdicts(results, args.compare_at)}
    out["plots"] = [str(p) for p in plot(results, folder)]
    out["json"] = str(write_results(stamp, out, "transport"))
    return out


def main(argv: list[str]) -> int:
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m benchmarks transport",
                                     description=__doc__.split("\n", 1)[1].strip(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    define_options(parser)
    args = parser.parse_args(argv)
    out = uvloop.run(run_all(args))
    print(f"\nTransport ceiling ({out['environment']['cpu']}; server on core {args.server_core}, "
          f"client on core {args.client_core}):\n")
    print(report(out["results"]))
    print("\n" + "\n".join(out["verdicts"]))
    print(f"\nJSON: {out['json']}\nplots: {', '.join(out['plots'])}")
    return 0
