"""`python -m benchmarks affinity`: what session affinity in nginx buys a conversation.

N replicas on one Redis (default: 2, then 3), deploy/nginx.conf in front of them run by the real
nginx (benchmarks/affinity_proxy.py), and conversations of 10 turns (~80-token user turns,
64-token replies: about 1.5k tokens of history by the last turn) through it, one at a time, in
two modes that differ only in nginx's config:

- round-robin: the file without its `hash` line, as it was before: each turn goes to the next
  replica, whose prefix cache has not seen the history, so it prefills what it misses.
- affine: the file as shipped: every turn of a session on the replica its id hashes to.

The replicas start once per replica count; only nginx is swapped between modes (conversations
alternate modes). Every conversation starts with a fresh random id, in its system prompt and in
every user turn, so no cache from an earlier conversation helps. Per turn: TTFT as the client
sees it through nginx, and the done event's usage (prompt and cached tokens); which replicas a
conversation reached, from nginx's access log. Engines are bound one per core
(VLLM_CPU_OMP_THREADS_BIND, as tests/replicas.py), round robin over the cores when there are
more replicas than cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
from pathlib import Path
from typing import Any

from benchmarks.affinity_proxy import Balance, NginxProcess
from benchmarks.cli import add_model_options, default_cache_dir
from benchmarks.multiturn import SYSTEM, TurnText, _turn, conversation_id
from benchmarks.output import environment, results_dir, timestamp, write_results
from benchmarks.reply_mirror import _start_redis
from benchmarks.server import ServerProcess
from benchmarks.session_api import create_session
from benchmarks.sse_client import make_client

MODES: tuple[Balance, ...] = ("round-robin", "affine")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--replicas", default="2,3",
                        help="comma-separated replica counts, each >= 2 (default: 2,3)")
    parser.add_argument("--conversations", type=int, default=2,
                        help="conversations per mode and replica count (default: 2)")
    parser.add_argument("--turns", type=int, default=10, help="turns per conversation (default: 10)")
    parser.add_argument("--turn-tokens", type=int, default=80,
                        help="approximate tokens of text in each user turn (default: 80)")
    parser.add_argument("--max-tokens", type=int, default=64,
                        help="max_tokens of each reply, with ignore_eos (default: 64)")
    parser.add_argument("--think-s", type=float, default=0.5,
                        help="seconds between a reply's end and the next turn (default: 0.5)")
    parser.add_argument("--ready-timeout", type=float, default=900.0,
                        help="seconds to wait for every replica's GET /ready (default: 900)")
    add_model_options(parser)


async def conversation(url: str, texts: TurnText, args: argparse.Namespace,
                       cid: str) -> tuple[str, list[dict[str, Any]]]:
    async with make_client(url, 1) as client:
        sid = await create_session(client, system=f"Conversation {cid}. {SYSTEM}")
        records: list[dict[str, Any]] = []
        for k in range(1, args.turns + 1):
            if k > 1:
                await asyncio.sleep(args.think_s)
            record, _ = await _turn(client, sid, texts.text(cid, k), args.max_tokens, k)
            records.append(record)
            if record["error"]:
                break
    return sid, records


def replicas_reached(nginx: NginxProcess, sid: str) -> int:
    """How many replicas served the session's turns, from nginx's access log."""
    log = (nginx.prefix / "access.log").read_text(errors="replace")
    return len(set(re.findall(rf"POST /v1/sessions/{sid}/messages .* upstream=(\S+) ", log)))


async def measure(count: int, texts: TurnText, args: argparse.Namespace, stamp: str,
                  redis_url: str) -> dict[str, list[dict[str, Any]]]:
    cores = os.cpu_count() or 1
    servers = [ServerProcess(port=0, cache_dir=args.cache_dir or default_cache_dir(),
                             model=args.model, engine_args=dict(args.engine_arg),
                             env={**os.environ, "STREAMCHAT_REDIS_URL": redis_url,
                                  "VLLM_CPU_OMP_THREADS_BIND": str(i % cores)},
                             log_path=results_dir() / f"{stamp}-affinity-{count}-{i}.log")
               for i in range(count)]
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        for server in servers:
            server.start()
        await asyncio.gather(*(s.wait_ready(args.ready_timeout) for s in servers))
        print(f"[bench] affinity: {count} replicas ready", flush=True)
        for i, server in enumerate(servers):  # each engine's first request, unmeasured
            await conversation(server.base_url, texts, argparse.Namespace(
                **{**vars(args), "turns": 1}), conversation_id("warm", i))
        for r in range(args.conversations):
            for mode in MODES:
                nginx = NginxProcess([s.port for s in servers], balance=mode)
                try:
                    cid = conversation_id(mode, r)
                    sid, records = await conversation(nginx.url, texts, args, cid)
                    runs[mode].append({"conversation": cid, "replicas_reached":
                                       replicas_reached(nginx, sid), "turns": records})
                finally:
                    nginx.stop()
                print(f"[bench] affinity: {count} replicas, {mode} {r + 1}/"
                      f"{args.conversations}: {summary(runs[mode][-1:])}", flush=True)
    finally:
        for server in servers:
            server.stop()
    return runs


def summary(conversations: list[dict[str, Any]]) -> dict[str, Any]:
    """Over turns 2..N of every conversation: mean TTFT and the cached share of prompt tokens."""
    later = [t for c in conversations for t in c["turns"][1:] if not t["error"]]
    prompt = sum(t["prompt_tokens"] or 0 for t in later)
    return {"mean_ttft_ms_after_first": statistics.fmean(t["ttft_ms"] for t in later)
            if later else None,
            "cached_share_after_first": sum(t["cached_tokens"] or 0 for t in later) / prompt
            if prompt else None,
            "replicas_reached": [c["replicas_reached"] for c in conversations],
            "errors": sum(1 for c in conversations for t in c["turns"] if t["error"])}


def per_turn(conversations: list[dict[str, Any]], turns: int) -> list[dict[str, Any]]:
    rows = []
    for k in range(turns):
        ok = [c["turns"][k] for c in conversations if len(c["turns"]) > k
              and not c["turns"][k]["error"]]
        rows.append({"turn": k + 1,
                     "ttft_ms": statistics.median(t["ttft_ms"] for t in ok) if ok else None,
                     "prompt_tokens": statistics.median(t["prompt_tokens"] for t in ok)
                     if ok else None,
                     "cached_tokens": statistics.median(t["cached_tokens"] or 0 for t in ok)
                     if ok else None})
    return rows


def report(out: dict[str, Any]) -> str:
    columns = [(count, mode) for count in out["results"] for mode in MODES]
    lines = ["Per turn, median over conversations: TTFT ms through nginx / cached of prompt tokens",
             f"{'turn':>4}" + "".join(f"{f'{count} {mode}':>22}" for count, mode in columns)]
    for k in range(out["config"]["turns"]):
        cells = []
        for count, mode in columns:
            row = out["results"][count][mode]["per_turn"][k]
            cells.append("-" if row["ttft_ms"] is None else
                         f"{row['ttft_ms']:.0f} / {row['cached_tokens']:.0f} of "
                         f"{row['prompt_tokens']:.0f}")
        lines.append(f"{k + 1:>4}" + "".join(f"{cell:>22}" for cell in cells))
    lines += ["", f"{'replicas':>8} {'mode':<12}{'TTFT t2+ ms':>12}{'cached t2+':>11}"
              f"{'replicas/conv':>15}{'errors':>7}"]
    for count, mode in columns:
        s = out["results"][count][mode]["summary"]
        ttft, share = s["mean_ttft_ms_after_first"], s["cached_share_after_first"]
        lines.append(f"{count:>8} {mode:<12}{'-' if ttft is None else f'{ttft:.0f}':>12}"
                     f"{'-' if share is None else f'{100 * share:.0f}%':>11}"
                     f"{','.join(map(str, s['replicas_reached'])):>15}{s['errors']:>7}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    try:
        counts = [int(c) for c in args.replicas.split(",") if c.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 2 or min(args.conversations, args.turns, args.turn_tokens,
                                            args.max_tokens) < 1:
        print("--replicas takes counts >= 2; --conversations, --turns, --turn-tokens and "
              "--max-tokens must be >= 1", file=sys.stderr)
        return 2
    from app.engine.model import ensure_default_model

    cache_dir: Path = args.cache_dir or default_cache_dir()
    texts = TurnText(args.model or str(ensure_default_model(cache_dir)), args.turn_tokens)
    stamp = timestamp()
    redis, redis_url = _start_redis()
    results: dict[int, dict[str, Any]] = {}
    try:
        for count in counts:
            runs = await measure(count, texts, args, stamp, redis_url)
            results[count] = {mode: {"summary": summary(runs[mode]),
                                     "per_turn": per_turn(runs[mode], args.turns),
                                     "conversations": runs[mode]} for mode in MODES}
    finally:
        redis.terminate()
        redis.wait(timeout=10)
    out: dict[str, Any] = {"timestamp": stamp, "environment": environment(),
           "config": {k: v for k, v in vars(args).items() if k not in ("cache_dir",)}
           | {"turn_tokens": texts.count(texts.text(conversation_id("s", 0), 1))},
           "results": results}
    print()
    print(f"CPU: {out['environment']['cpu']}")
    print(report(out))
    print(f"\nresults: {write_results(stamp, out, 'affinity')}")
    return 0
