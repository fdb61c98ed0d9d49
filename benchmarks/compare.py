"""The default run: one chat workload against the bare engine, then through streamchat's three
transports (SSE, WebSocket, `/v1/chat/completions`), then through vLLM's own OpenAI server.

Every side sends the same prompts (only the request tag differs, and only where two sides share
a server's prefix cache), temperature 0, ignore_eos and the same max_tokens, from the same
closed-loop client. The bare engine runs first and is shut down completely before any server
starts, and one server runs at a time: on a 2-core machine two engines at once would measure
contention, not streamchat. Both servers get the CPU settings that are not about scheduling
from `load.cpu_settings`, as in `python -m benchmarks load`.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.cli import add_model_options, add_server_options, default_cache_dir
from benchmarks.output import environment, results_dir, timestamp, write_results
from benchmarks.report import ratio, report
from benchmarks.server import ServerProcess, VllmServer, running
from benchmarks.workload import PromptBuilder, RequestResult, summarize

SIDES = ("bare", "sse", "ws", "openai", "vllm")
STREAMCHAT_SIDES = ("sse", "ws", "openai")  # one streamchat server serves all three
# Sides on one server need their own tags, or a later side hits an earlier one's prefix cache;
# sides on different engines get the same letter, so the very same prompts.
TAG_LETTERS = {"bare": "r", "sse": "r", "ws": "w", "openai": "o", "vllm": "r"}
# Reporting only: vLLM's server then says how many prompt tokens its prefix cache served.
VLLM_REPORTING_FLAGS = ["--enable-prompt-tokens-details"]
Levels = list[tuple[int, list[str]]]


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
    parser.add_argument("--skip-openai", action="store_true",
                        help="do not run streamchat's /v1/chat/completions side")
    parser.add_argument("--skip-vllm", action="store_true",
                        help="do not run vLLM's own OpenAI server")


def _tags(concurrency: int, requests: int, letter: str) -> list[str]:
    # Distinct per level too, so that a later level does not hit an earlier one's prefix cache.
    return [f"c{concurrency}-{letter}{i:03d}" for i in range(requests)]


def chosen(args: argparse.Namespace) -> list[str]:
    """The sides this run measures, in the order they run."""
    return [side for side in SIDES if not getattr(args, f"skip_{side}")]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.engine.model import ensure_default_model
    from app.settings import DEFAULT_MODEL_NAME
    from benchmarks.load import cpu_settings

    # Before the bare engine sets LD_PRELOAD and the KV cache size in this process: streamchat
    # runs with the environment it was given, as `python -m app` would.
    shipped_env = dict(os.environ)
    cache_dir: Path = args.cache_dir or default_cache_dir()
    model_dir = Path(args.model) if args.model else ensure_default_model(cache_dir)
    engine_args, vllm_flags, vllm_env = cpu_settings(dict(args.engine_arg))
    vllm_flags = [*vllm_flags, *VLLM_REPORTING_FLAGS]
    prompts = PromptBuilder(str(model_dir), args.prompt_tokens)
    sides = chosen(args)
    levels = {side: [(c, _tags(c, args.requests, TAG_LETTERS[side])) for c in args.concurrency]
              for side in sides}
    first_tag = _tags(args.concurrency[0], 1, "r")[0]
    print(f"[bench] sides: {', '.join(sides)}; prompt: {prompts.repeats} sentence repeats, "
          f"{prompts.count(prompts.text(first_tag))} rendered tokens (target "
          f"{args.prompt_tokens}); max_tokens {args.max_tokens}", flush=True)
    stamp = timestamp()
    model_name = args.model.rstrip("/").rsplit("/", 1)[-1] if args.model else DEFAULT_MODEL_NAME
    out: dict[str, Any] = {
        "timestamp": stamp,
        "config": {"sides": sides, "concurrency": args.concurrency, "requests": args.requests,
                   "prompt_tokens_target": args.prompt_tokens, "max_tokens": args.max_tokens,
                   "warmup": args.warmup, "sentence_repeats": prompts.repeats,
                   "model": model_name, "engine_args": engine_args,
                   "vllm_flags": vllm_flags, "temperature": 0, "ignore_eos": True},
        "environment": environment(),
    }
    common = {"prompts": prompts, "warmup": args.warmup, "max_tokens": args.max_tokens}
    raw: dict[str, dict[int, list[RequestResult]]] = {}
    if "bare" in sides:
        from benchmarks.bare import run_bare

        print("[bench] bare engine: starting", flush=True)
        raw["bare"] = await run_bare(model=args.model, model_name=model_name, cache_dir=cache_dir,
                                     engine_args=engine_args, levels=levels["bare"], **common)
    if any(side in sides for side in STREAMCHAT_SIDES):
        server = ServerProcess(port=args.port, cache_dir=cache_dir, model=args.model,
                               engine_args=engine_args, env=shipped_env,
                               log_path=results_dir() / f"{stamp}-server.log")
        raw |= await _on_server("streamchat", server, args.ready_timeout,
                                {s: levels[s] for s in STREAMCHAT_SIDES if s in sides}, common)
    if "vllm" in sides:
        server = VllmServer(model_dir, model_name, results_dir() / f"{stamp}-vllm.log",
                            vllm_flags, vllm_env)
        raw |= await _on_server("vLLM's server", server, args.ready_timeout,
                                {"vllm": levels["vllm"]}, common)
    out["results"] = []
    for c in args.concurrency:
        level: dict[str, Any] = {"concurrency": c, **{
            side: summarize(side, c, raw[side][c]) if c in raw.get(side, {}) else None
            for side in SIDES}}
        # The figure the target is about: each side's output tokens/s over the bare engine's.
        level["tokens_per_s_vs_bare"] = {side: ratio(level[side], level["bare"])
                                         for side in SIDES if side != "bare"}
        out["results"].append(level)
    return out


async def _on_server(name: str, server: ServerProcess, ready_timeout_s: float,
                     side_levels: Mapping[str, Levels],
                     common: Mapping[str, Any]) -> dict[str, dict[int, list[RequestResult]]]:
    """Start one server, run its sides one after the other, stop it."""
    from benchmarks.openai_client import run_openai
    from benchmarks.sse_client import run_sse
    from benchmarks.ws_client import run_ws

    runners: dict[str, Any] = {"sse": run_sse, "ws": run_ws,
                               "openai": functools.partial(run_openai, name="openai"),
                               "vllm": functools.partial(run_openai, name="vllm")}
    print(f"[bench] {name}: starting on {server.base_url} (log {server.log_path})", flush=True)
    raw = {}
    try:
        async with running(server, ready_timeout_s):
            for side, levels in side_levels.items():
                raw[side] = await runners[side](base_url=server.base_url, levels=levels, **common)
    finally:
        print(f"[bench] {name}: stopped", flush=True)
    return raw


def check(args: argparse.Namespace) -> str | None:
    """A reason not to run, or None."""
    if not chosen(args):
        return "nothing to do: every side skipped"
    if args.requests < 1 or args.prompt_tokens < 1 or args.max_tokens < 1 or args.warmup < 0:
        return "--requests, --prompt-tokens and --max-tokens must be >= 1, --warmup >= 0"
    return None


def print_and_save(args: argparse.Namespace, out: dict[str, Any]) -> Path:
    """Print the tables and write the JSON; returns its path."""
    print()
    print(f"CPU: {out['environment']['cpu']}")
    print(f"prompt ~{args.prompt_tokens} tokens, max_tokens {args.max_tokens}, temperature 0, "
          "ignore_eos; TTFT from the generation request's send (SSE: the message POST; WS: the "
          "message frame; OpenAI and vLLM: the completion POST); ITL of OpenAI and vLLM per "
          "content chunk")
    for level in out["results"]:
        print()
        print(report(level["concurrency"], {side: level[side] for side in chosen(args)}))
    path = write_results(out["timestamp"], out)
    print(f"\nresults: {path}")
    return path


async def main(args: argparse.Namespace) -> int:
    problem = check(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    print_and_save(args, await run(args))
    return 0
