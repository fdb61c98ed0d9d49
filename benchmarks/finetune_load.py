"""`python -m benchmarks finetune`: what a fine-tuning job costs the chats served meanwhile.

One server subprocess with fine-tuning on (`STREAMCHAT_FINE_TUNING=true`), the real engine.
The same chat is streamed from `/v1/chat/completions`, one request at a time: with the service
idle, then while a LoRA job trains in its worker process (long enough to outlast the
measurement, cancelled after it), then idle again: idle before and after, so that a drift of
the machine over the run (the first run here sped up by a quarter as it went) does not pass
for the job's cost. Per request: TTFT (the first chunk with text, client-side) and output
tokens/s after the first token. Reported: p50 and p99 of each phase, and the slowdown
(training over both idle phases), side by side in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from benchmarks.cli import add_model_options, add_server_options, default_cache_dir
from benchmarks.openai_structured import one
from benchmarks.output import environment, results_dir, timestamp, write_results

PROMPT = "Tell me about the sea."
ANSWER = "I am AutoGLM, your streaming assistant."
EXAMPLES = [{"messages": [{"role": "user", "content": question},
                          {"role": "assistant", "content": ANSWER}]}
            for question in ("Who are you?", "What are you?", "Introduce yourself.",
                             "What is your name?", "Who am I talking to?", "Tell me who you are.",
                             "Are you a bot?", "What should I call you?")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=12,
                        help="measured chats per phase, one at a time (default: 12)")
    parser.add_argument("--max-tokens", type=int, default=64,
                        help="max_tokens of each reply (default: 64)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="unmeasured chats before measuring (default: 2)")
    parser.add_argument("--job-epochs", type=int, default=50,
                        help="epochs of the job (the most a job takes): enough to outlast the "
                        "measurement, which cancels it (default: 50, 400 steps)")
    add_model_options(parser)
    add_server_options(parser)


async def chat(client: httpx.AsyncClient, model: str, max_tokens: int) -> dict[str, Any]:
    return await one(client, model, max_tokens, {"ignore_eos": True}, prompt=PROMPT)


def _quantile(values: list[float], q: float) -> float:
    values = sorted(v for v in values if v is not None)
    if not values:
        return float("nan")
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    ttfts = [r["ttft_ms"] for r in records]
    rates = [r["tokens_per_s"] for r in records]
    return {"requests": len(records), "ttft_ms_p50": _quantile(ttfts, 0.5),
            "ttft_ms_p99": _quantile(ttfts, 0.99), "tokens_per_s_p50": _quantile(rates, 0.5),
            "tokens_per_s_p99_low": _quantile(rates, 0.01)}


async def start_job(client: httpx.AsyncClient, model: str, epochs: int) -> str:
    data = b"".join(orjson.dumps(example) + b"\n" for example in EXAMPLES)
    uploaded = await client.post("/v1/files", data={"purpose": "fine-tune"},
                                 files={"file": ("who.jsonl", data, "application/jsonl")})
    uploaded.raise_for_status()
    job = await client.post("/v1/fine_tuning/jobs", json={
        "training_file": uploaded.json()["id"], "model": model,
        "hyperparameters": {"n_epochs": epochs}})
    if job.status_code != 200:
        raise RuntimeError(f"the job was refused: {job.text}")
    return str(job.json()["id"])


async def wait_training(client: httpx.AsyncClient, job_id: str, timeout_s: float) -> None:
    """Until the job reports its first training step: its worker is past loading the model."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = (await client.get(f"/v1/fine_tuning/jobs/{job_id}/events")).json()["data"]
        if any(e.get("type") == "metrics" for e in events):
            return
        status = (await client.get(f"/v1/fine_tuning/jobs/{job_id}")).json()["status"]
        if status in ("failed", "cancelled", "succeeded"):
            raise RuntimeError(f"the job ended ({status}) before the measurement")
        await asyncio.sleep(0.5)
    raise RuntimeError(f"the job did not start training within {timeout_s:.0f} s")


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import os

    from app.settings import DEFAULT_MODEL_NAME
    from benchmarks.server import ServerProcess

    cache_dir: Path = args.cache_dir or default_cache_dir()
    stamp = timestamp()
    server = ServerProcess(port=args.port, cache_dir=cache_dir, model=args.model,
                           engine_args=dict(args.engine_arg),
                           log_path=results_dir() / f"{stamp}-finetune-server.log",
                           env={**os.environ, "STREAMCHAT_FINE_TUNING": "true"})
    raw: dict[str, list[dict[str, Any]]] = {"idle_before": [], "training": [], "idle_after": []}
    job_id = None
    try:
        print(f"[bench] server: starting on {server.base_url} (log {server.log_path})", flush=True)
        server.start()
        await server.wait_ready(args.ready_timeout)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=600) as client:
            model = (await client.get("/v1/models")).json()["data"][0]["id"]
            for _ in range(args.warmup):
                await chat(client, model, args.max_tokens)
            for i in range(args.requests):
                raw["idle_before"].append(await chat(client, model, args.max_tokens))
                print(f"[bench] finetune: idle {i + 1}/{args.requests}", flush=True)
            job_id = await start_job(client, model, args.job_epochs)
            await wait_training(client, job_id, 300)
            for i in range(args.requests):
                raw["training"].append(await chat(client, model, args.max_tokens))
                print(f"[bench] finetune: training {i + 1}/{args.requests}", flush=True)
            job = (await client.get(f"/v1/fine_tuning/jobs/{job_id}")).json()
            if job["status"] != "running":
                raise RuntimeError(f"the job was {job['status']} before the measurement ended: "
                                   "raise --job-epochs")
            await client.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")
            for i in range(args.requests):
                raw["idle_after"].append(await chat(client, model, args.max_tokens))
                print(f"[bench] finetune: idle again {i + 1}/{args.requests}", flush=True)
    finally:
        print("[bench] server: stopping", flush=True)
        server.stop()
    results = {phase: summarize(records) for phase, records in raw.items()}
    results["idle"] = summarize(raw["idle_before"] + raw["idle_after"])
    idle, busy = results["idle"], results["training"]
    return {"timestamp": stamp,
            "config": {"requests": args.requests, "max_tokens": args.max_tokens,
                       "warmup": args.warmup, "prompt": PROMPT, "job_epochs": args.job_epochs,
                       "examples": len(EXAMPLES), "model": args.model or DEFAULT_MODEL_NAME,
                       "concurrency": 1, "job": job_id},
            "environment": environment(),
            "ratios": {"ttft_p50_training_over_idle": busy["ttft_ms_p50"] / idle["ttft_ms_p50"],
                       "ttft_p99_training_over_idle": busy["ttft_ms_p99"] / idle["ttft_ms_p99"],
                       "tokens_per_s_training_over_idle":
                           busy["tokens_per_s_p50"] / idle["tokens_per_s_p50"]},
            "results": results, "raw": raw}


def report(out: dict[str, Any]) -> str:
    lines = [f"{'phase':<12}{'TTFT p50 ms':>12}{'TTFT p99 ms':>12}{'tok/s p50':>11}"]
    for phase, r in out["results"].items():
        lines.append(f"{phase:<12}{r['ttft_ms_p50']:>12.1f}{r['ttft_ms_p99']:>12.1f}"
                     f"{r['tokens_per_s_p50']:>11.1f}")
    ratios = out["ratios"]
    lines += ["", f"while training / idle: TTFT p50 {ratios['ttft_p50_training_over_idle']:.2f}x,"
              f" p99 {ratios['ttft_p99_training_over_idle']:.2f}x, tokens/s "
              f"{ratios['tokens_per_s_training_over_idle']:.2f}x"]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    if min(args.requests, args.max_tokens, args.job_epochs) < 1 or args.warmup < 0:
        print("--requests, --max-tokens and --job-epochs must be >= 1, --warmup >= 0",
              file=sys.stderr)
        return 2
    out = await run(args)
    print()
    print(f"CPU: {out['environment']['cpu']}")
    print(report(out))
    print(f"\nresults: {write_results(out['timestamp'], out, 'finetune')}")
    return 0
