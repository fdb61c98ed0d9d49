"""`python -m benchmarks multiturn`: does TTFT stay flat as a conversation grows?

One server subprocess; conversations of N turns (default 10: ~80-token user turns, 80-token
replies, so the history reaches about 1,700 tokens by the last turn), one at a time, with a
pause between turns while the user reads and types (--think-s), in two modes:

- session: one server-side session per conversation, each turn POSTed to its messages endpoint
  (SSE). The server keeps the history and renders it the same way every turn, so vLLM's prefix
  cache covers everything but the new turn: TTFT should not grow with the history.
- changed: a client that sends a changed history each time, simulated by a NEW session per turn
  whose system prompt starts with a per-turn line ("Conversation id <random> turn <k>.") and
  then holds the whole transcript so far as text. The changed first line defeats the prefix
  cache, so every turn prefills the whole history: the baseline the session mode is judged by.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from app.settings import from_env
from benchmarks.cli import add_model_options, add_server_options, default_cache_dir
from benchmarks.output import environment, results_dir, timestamp, write_results
from benchmarks.session_api import create_session, reply_params
from benchmarks.sse_client import make_client, stream_reply
from benchmarks.workload import SENTENCE, RequestResult

SYSTEM = "You are a helpful assistant."
MODES = ("session", "changed")
# The project's check: in session mode the last turn's TTFT is at most this times the first's.
TARGET_RATIO = 1.5

Conversation = Callable[[httpx.AsyncClient, str], Awaitable[list[dict[str, Any]]]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--conversations", type=int, default=3,
                        help="conversations per mode; medians are over these (default: 3)")
    parser.add_argument("--turns", type=int, default=10, help="turns per conversation (default: 10)")
    parser.add_argument("--turn-tokens", type=int, default=80,
                        help="approximate tokens of text in each user turn (default: 80)")
    parser.add_argument("--max-tokens", type=int, default=80,
                        help="max_tokens of each reply, with ignore_eos (default: 80)")
    parser.add_argument("--think-s", type=float, default=2.0,
                        help="seconds between a reply's end and the next turn, as a user reads "
                        "and types (default: 2)")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated, of session and changed (default: both)")
    parser.add_argument("--prefix-warmup", action=argparse.BooleanOptionalAction,
                        default=None, help="serve with STREAMCHAT_PREFIX_WARMUP on or off "
                        "(default: the server's setting, off unless set in the environment)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="unmeasured one-turn chats before measuring (default: 2)")
    add_model_options(parser)
    add_server_options(parser)


def conversation_id(mode: str, index: int) -> str:
    # Digits tokenize one by one: every id has the same length in tokens, unlike random hex.
    return f"{mode[0]}{index}-{secrets.randbelow(10**6):06d}"


class TurnText:
    """User turns of about `target` tokens of text (the model's tokenizer, no chat template)."""

    def __init__(self, model_dir: str, target: int) -> None:
        from transformers import AutoTokenizer  # heavy: only when a run starts, not for --help

        self._tok = AutoTokenizer.from_pretrained(model_dir)
        self._body = ""
        fixed = self.count(self.text(conversation_id("s", 0), 10))
        # Filler cut at a token boundary: whole sentences alone would miss the target by up to 8.
        filler = self._tok.encode(SENTENCE * (target // 8 + 2), add_special_tokens=False)
        body = self._tok.decode(filler[: max(0, target - fixed)])
        assert isinstance(body, str)  # one sequence's ids: one text (a batch's would be a list)
        self._body = body.rstrip(" .") + ". "

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False))

    def text(self, conversation: str, turn: int) -> str:
        # The conversation id goes first so that conversations do not share cached prefixes.
        return (f"Conversation {conversation}, turn {turn}. {self._body}"
                f"What does the fox do in part {turn}?")


def _record(turn: int, result: RequestResult) -> dict[str, Any]:
    return {"turn": turn,
            "ttft_ms": 1000 * result.ttft_s if result.ttft_s is not None else None,
            "server_ttft_ms": (result.server_timings or {}).get("ttft_ms"),
            "total_ms": 1000 * (result.end_s - result.sent_s),
            "prompt_tokens": result.prompt_tokens, "cached_tokens": result.cached_tokens,
            "completion_tokens": result.completion_tokens,
            "finish_reason": result.finish_reason, "error": result.error}


async def _turn(client: httpx.AsyncClient, sid: str, content: str, max_tokens: int,
                turn: int) -> tuple[dict[str, Any], str]:
    now = time.perf_counter()
    result = RequestResult(tag=f"turn-{turn}", start_s=now, sent_s=now)
    text = ""
    try:
        text = await stream_reply(client, sid, {"content": content,
                                                "params": reply_params(max_tokens)}, result)
    except Exception as exc:  # a failed turn is recorded, and ends its conversation
        result.error = result.error or f"{type(exc).__name__}: {exc}"
    result.end_s = time.perf_counter()
    return _record(turn, result), text


def session_mode(texts: TurnText, turns: int, max_tokens: int, think_s: float) -> Conversation:
    async def conversation(client: httpx.AsyncClient, cid: str) -> list[dict[str, Any]]:
        sid = await create_session(client, system=SYSTEM, title=f"multiturn {cid}")
        records: list[dict[str, Any]] = []
        for k in range(1, turns + 1):
            if k > 1:
                await asyncio.sleep(think_s)  # the user reads the reply and types
            record, _ = await _turn(client, sid, texts.text(cid, k), max_tokens, k)
            records.append(record)
            if record["error"]:
                break  # the server's history is no longer the one later turns assume
        return records

    return conversation


def changed_mode(texts: TurnText, turns: int, max_tokens: int, think_s: float) -> Conversation:
    async def conversation(client: httpx.AsyncClient, cid: str) -> list[dict[str, Any]]:
        transcript = ""
        records: list[dict[str, Any]] = []
        for k in range(1, turns + 1):
            if k > 1:
                await asyncio.sleep(think_s)
            # First line changes every turn: no cached prefix beyond the template's first tokens.
            system = f"Conversation id {secrets.token_hex(8)} turn {k}.\n{SYSTEM}\n{transcript}"
            sid = await create_session(client, system=system, title=f"multiturn {cid} turn {k}")
            content = texts.text(cid, k)
            record, reply = await _turn(client, sid, content, max_tokens, k)
            records.append(record)
            if record["error"]:
                break
            transcript += f"User: {content}\nAssistant: {reply}\n"
        return records

    return conversation


def _median(values: list[Any]) -> float:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else float("nan")


def summarize_mode(mode: str, conversations: list[list[dict[str, Any]]], turns: int) -> dict[str, Any]:
    per_turn = []
    for k in range(1, turns + 1):
        ok = [c[k - 1] for c in conversations if len(c) >= k and not c[k - 1]["error"]]
        per_turn.append({"turn": k, "conversations": len(ok),
                         "ttft_ms": _median([r["ttft_ms"] for r in ok]),
                         "server_ttft_ms": _median([r["server_ttft_ms"] for r in ok]),
                         "prompt_tokens": _median([r["prompt_tokens"] for r in ok]),
                         "cached_tokens": _median([r["cached_tokens"] for r in ok])})
    first, last = per_turn[0], per_turn[-1]
    ratio = last["ttft_ms"] / first["ttft_ms"] if first["ttft_ms"] > 0 else float("nan")
    return {"mode": mode, "first_ttft_ms": first["ttft_ms"], "last_ttft_ms": last["ttft_ms"],
            "ratio_last_first": ratio, "last_prompt_tokens": last["prompt_tokens"],
            "last_cached_tokens": last["cached_tokens"],
            "errors": sorted({r["error"] for c in conversations for r in c if r["error"]}),
            "per_turn": per_turn, "conversations": conversations}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.engine.model import ensure_default_model
    from app.settings import DEFAULT_MODEL_NAME
    from benchmarks.server import ServerProcess

    cache_dir: Path = args.cache_dir or default_cache_dir()
    engine_args = dict(args.engine_arg)
    texts = TurnText(args.model or str(ensure_default_model(cache_dir)), args.turn_tokens)
    turn_tokens = texts.count(texts.text(conversation_id("s", 0), 1))
    print(f"[bench] multiturn: user turns of {turn_tokens} tokens, "
          f"replies of {args.max_tokens}, {args.turns} turns {args.think_s:g} s apart, "
          f"{args.conversations} conversations per mode", flush=True)
    stamp = timestamp()
    every = {"session": session_mode(texts, args.turns, args.max_tokens, args.think_s),
             "changed": changed_mode(texts, args.turns, args.max_tokens, args.think_s)}
    modes = {m: every[m] for m in args.modes}
    raw: dict[str, list[list[dict[str, Any]]]] = {}
    env = dict(os.environ)
    if args.prefix_warmup is not None:
        env["STREAMCHAT_PREFIX_WARMUP"] = "1" if args.prefix_warmup else "0"
    prefix_warmup = from_env(env).prefix_warmup  # what the server will run with, for the report
    server = ServerProcess(port=args.port, cache_dir=cache_dir, model=args.model,
                           engine_args=engine_args, env=env,
                           log_path=results_dir() / f"{stamp}-multiturn-server.log")
    try:
        print(f"[bench] server: starting on {server.base_url} (log {server.log_path})", flush=True)
        server.start()
        await server.wait_ready(args.ready_timeout)
        async with make_client(server.base_url, 2) as client:
            for i in range(args.warmup):
                sid = await create_session(client, system=SYSTEM)
                await _turn(client, sid, texts.text(conversation_id("warm", i), 1), args.max_tokens, 1)
            for mode, conversation in modes.items():
                raw[mode] = []
                for r in range(args.conversations):
                    cid = conversation_id(mode, r)
                    print(f"[bench] multiturn: {mode} conversation {r + 1}/{args.conversations}",
                          flush=True)
                    raw[mode].append(await conversation(client, cid))
    finally:
        print("[bench] server: stopping", flush=True)
        server.stop()
    results = {mode: summarize_mode(mode, raw[mode], args.turns) for mode in modes}
    session_ratio = results["session"]["ratio_last_first"] if "session" in results else math.nan
    return {"timestamp": stamp,
            "config": {"conversations": args.conversations, "turns": args.turns,
                       "turn_tokens_target": args.turn_tokens,
                       "turn_tokens": turn_tokens,
                       "max_tokens": args.max_tokens, "think_s": args.think_s,
                       "prefix_warmup": prefix_warmup,
                       "warmup": args.warmup, "system": SYSTEM,
                       "model": args.model or DEFAULT_MODEL_NAME, "engine_args": engine_args,
                       "temperature": 0, "ignore_eos": True, "concurrency": 1},
            "environment": environment(),
            "target": {"check": f"session mode turn-{args.turns} TTFT <= {TARGET_RATIO}x turn-1",
                       "max_ratio": TARGET_RATIO, "ratio": session_ratio,
                       "met": bool(session_ratio <= TARGET_RATIO)},
            "results": results}


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None or value != value else format(value, spec)  # NaN != NaN


def report(out: dict[str, Any]) -> str:
    results, turns = out["results"], out["config"]["turns"]
    modes = [m for m in MODES if m in results]
    lines = ["TTFT per turn in ms, median over conversations (client-side, and the server's own from "
             "the done event); prompt and cached tokens",
             f"{'turn':>4}" + "".join(f"{m + ' TTFT':>15}{'server':>8}{'prompt':>8}{'cached':>8}"
                                      for m in modes)]
    for k in range(turns):
        row = [results[m]["per_turn"][k] for m in modes]
        lines.append(f"{k + 1:>4}" + "".join(
            f"{_fmt(r['ttft_ms']):>15}{_fmt(r['server_ttft_ms']):>8}"
            f"{_fmt(r['prompt_tokens'], '.0f'):>8}{_fmt(r['cached_tokens'], '.0f'):>8}" for r in row))
    lines += ["", f"{'mode':<10}{'TTFT t1 ms':>12}{f'TTFT t{turns} ms':>13}{f't{turns}/t1':>8}"
              f"{f'prompt t{turns}':>11}{f'cached t{turns}':>11}{'errors':>8}"]
    for m in modes:
        r = results[m]
        lines.append(f"{m:<10}{_fmt(r['first_ttft_ms']):>12}{_fmt(r['last_ttft_ms']):>13}"
                     f"{_fmt(r['ratio_last_first'], '.2f'):>8}{_fmt(r['last_prompt_tokens'], '.0f'):>11}"
                     f"{_fmt(r['last_cached_tokens'], '.0f'):>11}{len(r['errors']):>8}")
    for m in modes:
        lines += [f"{m} error: {e}" for e in results[m]["errors"][:3]]
    target = out["target"]
    lines.append(f"\ntarget: {target['check']}: ratio {_fmt(target['ratio'], '.2f')} -> "
                 f"{'met' if target['met'] else 'NOT met'}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not args.modes or set(args.modes) - set(MODES):
        print(f"--modes takes {', '.join(MODES)}", file=sys.stderr)
        return 2
    if min(args.conversations, args.turns, args.turn_tokens, args.max_tokens) < 1 or args.warmup < 0 \
            or args.think_s < 0:
        print("--conversations, --turns, --turn-tokens and --max-tokens must be >= 1, "
              "--warmup and --think-s >= 0",
              file=sys.stderr)
        return 2
    out = await run(args)
    print()
    print(f"CPU: {out['environment']['cpu']}")
    print(report(out))
    print(f"\nresults: {write_results(out['timestamp'], out, 'multiturn')}")
    return 0
