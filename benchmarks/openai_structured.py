"""`python -m benchmarks openai`: what structured output costs on `/v1/chat/completions`.

One server subprocess, the real engine. The same prompt is streamed, one request at a time, in
two modes: plain chat (with ignore_eos, so that it is as long as the other), and with
`response_format` `json_schema` (a small object with a list), both at temperature 0 with the same
max_tokens. The small default model pads its JSON with whitespace and rarely closes it within
max_tokens: a structured reply runs to max_tokens, and its validity is only judged when it ended
on its own (`stop`). Per request: TTFT (the first chunk with text,
client-side), output tokens/s after the first token (usage over the time from the first chunk
to the last), and whether the JSON output parses and holds the schema's keys. The first
structured request pays the schema's grammar compilation: it is reported on its own and left
out of the medians, which are over warm requests.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from app.api.http.sse import EventParser
from benchmarks.cli import add_model_options, add_server_options, default_cache_dir
from benchmarks.output import environment, results_dir, timestamp, write_results

PROMPT = ("Invent a fictional person. Give their name, their age, and a list of eight hobbies, "
          "each described in a few words.")
SCHEMA = {"type": "object",
          "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                         "hobbies": {"type": "array", "items": {"type": "string"}}},
          "required": ["name", "age", "hobbies"]}
MODES: dict[str, dict[str, Any]] = {
    "plain": {"ignore_eos": True},
    "json_schema": {"response_format": {"type": "json_schema",
                                        "json_schema": {"name": "person", "schema": SCHEMA}}},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests", type=int, default=12,
                        help="measured requests per mode, one at a time (default: 12)")
    parser.add_argument("--max-tokens", type=int, default=128,
                        help="max_tokens of each reply (default: 128)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="unmeasured plain requests before measuring (default: 2)")
    add_model_options(parser)
    add_server_options(parser)


async def one(client: httpx.AsyncClient, model: str, max_tokens: int,
              extra: dict[str, Any], prompt: str = PROMPT) -> dict[str, Any]:
    """One chat streamed: TTFT, tokens, tokens/s after the first, and (structured) validity."""
    body = {"model": model, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}, **extra}
    parser, text, usage, finish = EventParser(), [], {}, None
    sent = time.perf_counter()
    first = last = None
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for raw in response.aiter_raw():
            for event in parser.feed(raw):
                if event.data == "[DONE]":
                    continue
                chunk = orjson.loads(event.data)
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices", []):
                    finish = choice.get("finish_reason") or finish
                    piece = choice.get("delta", {}).get("content")
                    if piece:
                        now = time.perf_counter()
                        first = first or now
                        last = now
                        text.append(piece)
    tokens = int(usage.get("completion_tokens", 0))
    decode_s = (last - first) if first is not None and last is not None else 0.0
    output = "".join(text)
    valid = None
    if "response_format" in extra and finish == "stop":
        try:
            parsed = orjson.loads(output)
            valid = isinstance(parsed, dict) and set(SCHEMA["required"]) <= set(parsed)
        except orjson.JSONDecodeError:
            valid = False
    return {"ttft_ms": (first - sent) * 1000 if first is not None else None,
            "tokens": tokens,
            "tokens_per_s": (tokens - 1) / decode_s if decode_s > 0 and tokens > 1 else None,
            "valid_json": valid, "finish_reason": finish, "chars": len(output)}


def _median(values: list[Any]) -> float:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else float("nan")


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    ttfts = sorted(r["ttft_ms"] for r in records if r["ttft_ms"] is not None)
    return {"requests": len(records), "ttft_ms_p50": _median(ttfts),
            "ttft_ms_max": ttfts[-1] if ttfts else float("nan"),
            "tokens_per_s_p50": _median([r["tokens_per_s"] for r in records]),
            "tokens_p50": _median([r["tokens"] for r in records]),
            "valid_json": sum(1 for r in records if r["valid_json"]),
            "ended_by_itself": sum(1 for r in records if r["finish_reason"] == "stop")}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from app.settings import DEFAULT_MODEL_NAME
    from benchmarks.server import ServerProcess

    cache_dir: Path = args.cache_dir or default_cache_dir()
    stamp = timestamp()
    server = ServerProcess(port=args.port, cache_dir=cache_dir, model=args.model,
                           engine_args=dict(args.engine_arg),
                           log_path=results_dir() / f"{stamp}-openai-server.log")
    raw: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    first_structured: dict[str, Any] = {}
    try:
        print(f"[bench] server: starting on {server.base_url} (log {server.log_path})", flush=True)
        server.start()
        await server.wait_ready(args.ready_timeout)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=600) as client:
            model = (await client.get("/v1/models")).json()["data"][0]["id"]
            for _ in range(args.warmup):
                await one(client, model, args.max_tokens, {})
            first_structured = await one(client, model, args.max_tokens, MODES["json_schema"])
            for i in range(args.requests):  # alternate: drift in the machine hits both alike
                for mode, extra in MODES.items():
                    raw[mode].append(await one(client, model, args.max_tokens, extra))
                print(f"[bench] openai: {i + 1}/{args.requests}", flush=True)
    finally:
        print("[bench] server: stopping", flush=True)
        server.stop()
    results = {mode: summarize(records) for mode, records in raw.items()}
    plain, structured = results["plain"], results["json_schema"]
    return {"timestamp": stamp,
            "config": {"requests": args.requests, "max_tokens": args.max_tokens,
                       "warmup": args.warmup, "prompt": PROMPT, "schema": SCHEMA,
                       "model": args.model or DEFAULT_MODEL_NAME, "temperature": 0,
                       "concurrency": 1},
            "environment": environment(),
            "first_structured_request": first_structured,
            "ratios": {"ttft_json_over_plain": structured["ttft_ms_p50"] / plain["ttft_ms_p50"],
                       "tokens_per_s_json_over_plain":
                           structured["tokens_per_s_p50"] / plain["tokens_per_s_p50"]},
            "results": results, "raw": raw}


def report(out: dict[str, Any]) -> str:
    lines = [f"{'mode':<12}{'TTFT p50 ms':>12}{'TTFT max':>10}{'tok/s p50':>11}{'tokens p50':>12}"
             f"{'valid JSON':>20}"]
    for mode, r in out["results"].items():
        valid = (f"{r['valid_json']} of {r['ended_by_itself']} ended" if mode != "plain" else "-")
        lines.append(f"{mode:<12}{r['ttft_ms_p50']:>12.1f}{r['ttft_ms_max']:>10.1f}"
                     f"{r['tokens_per_s_p50']:>11.1f}{r['tokens_p50']:>12.0f}{valid:>20}")
    first, ratios = out["first_structured_request"], out["ratios"]
    lines += ["", f"first json_schema request (grammar compiled): TTFT {first['ttft_ms']:.1f} ms",
              f"json_schema / plain: TTFT {ratios['ttft_json_over_plain']:.2f}x, "
              f"tokens/s {ratios['tokens_per_s_json_over_plain']:.2f}x"]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    if min(args.requests, args.max_tokens) < 1 or args.warmup < 0:
        print("--requests and --max-tokens must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    out = await run(args)
    print()
    print(f"CPU: {out['environment']['cpu']}")
    print(report(out))
    print(f"\nresults: {write_results(out['timestamp'], out, 'openai')}")
    return 0
