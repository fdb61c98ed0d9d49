"""The default run: one chat workload against the bare engine, then over SSE and WebSocket.

The bare engine runs first and is shut down completely before the server starts: on a 2-core
machine two engines at once would measure contention, not streamchat. One server then serves
the SSE level and the WebSocket level, one after the other.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from benchmarks.cli import add_model_options, add_server_options, default_cache_dir
from benchmarks.output import environment, results_dir, timestamp, write_results
from benchmarks.report import report
from benchmarks.workload import summarize

SIDES = ("bare", "sse", "ws")


def _concurrency_list(raw: str) -> list[int]:
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,16, got {raw!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("concurrency values must be >= 1")
    return list(dict.fromkeys(values))  # keep order, drop repeats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=_concurrency_list, default=[16],
                        help="simultaneous chats; a list like 1,16 runs each level (default: 16)")
    parser.add_argument("--requests", type=int, default=64,
                        help="chats per concurrency level (default: 64)")
    parser.add_argument("--prompt-tokens", type=int, default=128,
                        help="approximate length of the rendered prompt in tokens (default: 128)")
    parser.add_argument("--max-tokens", type=int, default=64,
                        help="max_tokens of each reply (default: 64)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="unmeasured requests per side before measuring (default: 2)")
    add_model_options(parser)
    add_server_options(parser)
    parser.add_argument("--skip-bare", action="store_true", help="do not run the bare engine side")
    parser.add_argument("--skip-sse", action="store_true", help="do not run the SSE side")
    parser.add_argument("--skip-ws", action="store_true", help="do not run the WebSocket side")


def _tags(concurrency: int, requests: int, letter: str) -> list[str]:
    # Distinct tags per level, so a later level does not hit an earlier one's prefix cache; WS
    # gets its own letter because it shares the SSE side's server (same token count: checked).
    return [f"c{concurrency}-{letter}{i:03d}" for i in range(requests)]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.engine.model import ensure_default_model
    from app.settings import DEFAULT_MODEL_NAME
    from benchmarks.workload import PromptBuilder

    cache_dir: Path = args.cache_dir or default_cache_dir()
    engine_args = dict(args.engine_arg)
    model_dir = args.model or str(ensure_default_model(cache_dir))
    prompts = PromptBuilder(model_dir, args.prompt_tokens)
    # Bare and SSE run against different engines: the same prompts, exactly.
    levels = [(c, _tags(c, args.requests, "r")) for c in args.concurrency]
    ws_levels = [(c, _tags(c, args.requests, "w")) for c in args.concurrency]
    print(f"[bench] prompt: {prompts.repeats} sentence repeats, "
          f"{prompts.count(prompts.text(levels[0][1][0]))} rendered tokens "
          f"(target {args.prompt_tokens}); max_tokens {args.max_tokens}", flush=True)
    stamp = timestamp()
    out: dict[str, Any] = {
        "timestamp": stamp,
        "config": {"concurrency": args.concurrency, "requests": args.requests,
                   "prompt_tokens_target": args.prompt_tokens, "max_tokens": args.max_tokens,
                   "warmup": args.warmup, "sentence_repeats": prompts.repeats,
                   "model": args.model or DEFAULT_MODEL_NAME, "engine_args": engine_args,
                   "temperature": 0, "ignore_eos": True},
        "environment": environment(),
    }
    raw: dict[str, dict[int, Any]] = {side: {} for side in SIDES}
    common = {"prompts": prompts, "warmup": args.warmup, "max_tokens": args.max_tokens}
    if not args.skip_bare:
        from benchmarks.bare import run_bare

        print("[bench] bare engine: starting", flush=True)
        raw["bare"] = await run_bare(model=args.model, model_name=args.model or DEFAULT_MODEL_NAME,
                                     cache_dir=cache_dir, engine_args=engine_args, levels=levels,
                                     **common)
    if not (args.skip_sse and args.skip_ws):
        from benchmarks.server import ServerProcess
        from benchmarks.sse_client import run_sse
        from benchmarks.ws_client import run_ws

        server = ServerProcess(port=args.port, cache_dir=cache_dir, model=args.model,
                               engine_args=engine_args, log_path=results_dir() / f"{stamp}-server.log")
        try:
            print(f"[bench] server: starting on {server.base_url} (log {server.log_path})", flush=True)
            server.start()
            await server.wait_ready(args.ready_timeout)
            if not args.skip_sse:
                raw["sse"] = await run_sse(base_url=server.base_url, levels=levels, **common)
            if not args.skip_ws:
                raw["ws"] = await run_ws(base_url=server.base_url, levels=ws_levels, **common)
        finally:
            # Always, also on errors and Ctrl-C (asyncio.run cancels this task, finally still runs).
            print("[bench] server: stopping", flush=True)
            server.stop()
    out["results"] = [
        {"concurrency": c,
         **{side: summarize(side, c, raw[side][c]) if c in raw[side] else None for side in SIDES}}
        for c, _ in levels
    ]
    return out


def check(args: argparse.Namespace) -> str | None:
    """A reason not to run, or None."""
    if args.skip_bare and args.skip_sse and args.skip_ws:
        return "nothing to do: --skip-bare, --skip-sse and --skip-ws all given"
    if args.requests < 1 or args.prompt_tokens < 1 or args.max_tokens < 1 or args.warmup < 0:
        return "--requests, --prompt-tokens and --max-tokens must be >= 1, --warmup >= 0"
    return None


def print_and_save(args: argparse.Namespace, out: dict[str, Any]) -> None:
    print()
    print(f"CPU: {out['environment']['cpu']}")
    print(f"prompt ~{args.prompt_tokens} tokens, max_tokens {args.max_tokens}, temperature 0, "
          "ignore_eos; TTFT from the generation request's send "
          "(SSE: the message POST; WS: the message frame)")
    for level in out["results"]:
        print()
        print(report(level["concurrency"], {side: level[side] for side in SIDES}))
    print(f"\nresults: {write_results(out['timestamp'], out)}")


async def main(args: argparse.Namespace) -> int:
    problem = check(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    print_and_save(args, await run(args))
    return 0
