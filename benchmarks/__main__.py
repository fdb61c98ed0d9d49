"""`python -m benchmarks [SUB-COMMAND] [options]`: dispatch to the comparison run or a sub-command.

Sub-commands are picked by the first argument, before argparse, so that each one owns its whole
option set (argparse sub-parsers would let the main run's options mix with theirs).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import textwrap

from benchmarks import compare

# name -> (module, one-line summary for --help)
SUB_COMMANDS: dict[str, tuple[str, str]] = {
    "suite": ("benchmarks.suite",
              "everything below and the default run, one after the other (`make bench`): "
              "benchmarks/results/<date>.json, plots in benchmarks/plots/, the table in "
              "benchmarks/README.md"),
    "multiturn": ("benchmarks.multiturn",
                  "TTFT of every turn of a 10-turn conversation: one server-side session (prefix "
                  "cache hits) vs a client that sends a changed history each turn"),
    "affinity": ("benchmarks.affinity",
                 "what session affinity in nginx buys: a 10-turn conversation through "
                 "deploy/nginx.conf in front of 2 and 3 replicas on one Redis, round robin vs "
                 "affine; cached prompt tokens and TTFT per turn"),
    "memory": ("benchmarks.memory",
               "bytes per idle session in the in-memory session store (tracemalloc and RSS), "
               "and that max_sessions bounds it; no engine, no server"),
    "transport": ("benchmarks.transport",
                  "the transport's ceiling on one core: the real app on a token source with no "
                  "model, SSE and WebSocket at 100, 1,000, 2,000 streams (events/s flat out, "
                  "added latency at 20 tok/s each), against sse-starlette and bare Starlette"),
    "stream-memory": ("benchmarks.stream_memory",
                      "the server's RSS growth per token event under steady streaming (100 "
                      "streams of replies one after the other, token source, no model), with "
                      "optional tracemalloc snapshots and gc counts of what grew"),
    "openai": ("benchmarks.openai_structured",
               "what structured output costs: /v1/chat/completions streamed plain and with "
               "response_format json_schema, one at a time, TTFT and tokens/s side by side"),
    "finetune": ("benchmarks.finetune_load",
                 "what a fine-tuning job costs the chats served meanwhile: TTFT p50/p99 and "
                 "tokens/s idle and while a LoRA job trains, side by side"),
    "load": ("benchmarks.load",
             "streamchat vs the bare engine vs vLLM's own OpenAI server under load: levels at "
             "concurrency 1, 16, 64; fairness between a heavy and a light user; overload at 3x "
             "the sustained rate; a burst on pre-opened connections (table, JSON, PNG plot)"),
    "reply-mirror": ("benchmarks.reply_mirror",
                     "what holding a reply's events until Redis has them costs: latency from "
                     "append to listener, memory mode vs mirrored, with a real redis-server and "
                     "no engine"),
    "soak": ("benchmarks.soak",
             "long runs stay flat: the real service under 16 concurrent streams (session chats "
             "over SSE and WebSocket, /v1/chat/completions, background /v1/responses) for 20 "
             "minutes; RSS growth after warm-up, errors, streams left open (JSON, PNG plot)"),
}


def build_parser() -> argparse.ArgumentParser:
    listing = "\n".join(
        textwrap.fill(summary, 90, initial_indent=f"  {name:<11}", subsequent_indent=" " * 13)
        for name, (_, summary) in SUB_COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        usage="python -m benchmarks [options]\n       python -m benchmarks {"
              + ",".join(SUB_COMMANDS) + "} [options]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Without a sub-command: measure one chat workload against the bare in-process "
        "vLLM engine,\nthen against streamchat's session endpoint over SSE and over the WebSocket "
        "(one `python -m app`\nsubprocess serves both, SSE first), and print TTFT, inter-token "
        "latency and output tokens/s\nside by side with the sse/bare and ws/bare ratios. All sides "
        "use temperature 0 and ignore_eos,\nso every reply is exactly max_tokens long.",
        epilog=f"sub-commands (`python -m benchmarks NAME --help` for their options):\n{listing}\n\n"
        "Results are printed and written as JSON to benchmarks/results/\n"
        "(<timestamp>.json; <timestamp>-NAME.json for multiturn and memory;\n"
        "load writes a <timestamp>-load/ folder).",
    )
    compare.add_arguments(parser)
    return parser


def _sub_parser(name: str, module: object) -> argparse.ArgumentParser:
    doc = (getattr(module, "__doc__", None) or "").split("\n", 1)
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks {name}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     description=doc[-1].strip() if len(doc) > 1 else None)
    module.add_arguments(parser)  # type: ignore[attr-defined]
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUB_COMMANDS:
        module = importlib.import_module(SUB_COMMANDS[argv[0]][0])
        if not hasattr(module, "add_arguments"):
            return int(module.main(argv[1:]))  # a module with its own parser and event loop
        args = _sub_parser(argv[0], module).parse_args(argv[1:])
        entry = module.main
    else:
        args = build_parser().parse_args(argv)
        entry = compare.main
    try:
        return int(asyncio.run(entry(args)))
    except KeyboardInterrupt:
        print("[bench] interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
