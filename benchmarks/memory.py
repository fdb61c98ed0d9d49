"""`python -m benchmarks memory`: what an idle session costs in the in-memory store.

In-process, no engine, no server: fill a `MemorySessionStore` with N sessions (default 10,000),
each with one short user turn and one short reply, as a chat that was opened and left. Reported
as bytes per session two ways: Python's own allocations (tracemalloc: exact, but blind to
allocator overhead) and the process's resident memory (VmRSS: what the machine pays, but
coarse). Then the same N sessions into a store capped at --max-sessions (default 1,000), to show
that the cap holds and memory stays bounded.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tracemalloc
from typing import Any

from app.sessions.memory import MemorySessionStore
from app.sessions.models import Message, Session
from benchmarks.output import environment, timestamp, write_results

SYSTEM = "You are a helpful assistant."
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sessions", type=int, default=10_000,
                        help="idle sessions to create and hold (default: 10000)")
    parser.add_argument("--max-sessions", type=int, default=1_000,
                        help="the cap for the bounded-store check (default: 1000)")


async def fill(store: MemorySessionStore, n: int) -> None:
    for _ in range(n):
        session = Session.new(system=SYSTEM, params={}, title="Chat", owner=None)
        await store.create(session)
        await store.append(session.id, [Message.new("user", "hello there", "done"),
                                        Message.new("assistant", "Hi! How can I help?", "done")])


def _site(frame: tracemalloc.Frame) -> str:
    return f"{os.path.relpath(frame.filename, REPO_ROOT)}:{frame.lineno}"


def vm_rss() -> int:
    """Resident memory of this process in bytes (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


async def measure_rss(n: int) -> dict[str, Any]:
    # First, in a clean process and without tracemalloc, whose own bookkeeping would count.
    gc.collect()
    before = vm_rss()
    store = MemorySessionStore(max_sessions=n)
    await fill(store, n)
    gc.collect()
    delta = vm_rss() - before
    held = await store.count()
    await store.close()
    return {"sessions_held": held, "rss_delta_bytes": delta, "bytes_per_session": delta / n}


async def measure_traced(n: int, max_sessions: int) -> dict[str, Any]:
    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        store = MemorySessionStore(max_sessions=n)
        await fill(store, n)
        gc.collect()
        held_bytes = tracemalloc.get_traced_memory()[0] - before
        held = await store.count()
        top = tracemalloc.take_snapshot().statistics("lineno")[:5]
        await store.close()
        del store
        gc.collect()
        # Dropping the store must give it all back, or the number above measured something else.
        left_bytes = tracemalloc.get_traced_memory()[0] - before

        before = tracemalloc.get_traced_memory()[0]
        bounded = MemorySessionStore(max_sessions=max_sessions)
        await fill(bounded, n)
        gc.collect()
        bounded_bytes = tracemalloc.get_traced_memory()[0] - before
        bounded_held = await bounded.count()
    finally:
        tracemalloc.stop()
    return {
        "unbounded": {"sessions_created": n, "max_sessions": n, "sessions_held": held,
                      "traced_bytes": held_bytes, "bytes_per_session": held_bytes / n,
                      "traced_bytes_after_release": left_bytes,
                      "top_allocation_sites": [
                          {"site": _site(s.traceback[0]), "bytes": s.size, "blocks": s.count}
                          for s in top]},
        "bounded": {"sessions_created": n, "max_sessions": max_sessions,
                    "sessions_held": bounded_held, "traced_bytes": bounded_bytes,
                    "bytes_per_held_session": bounded_bytes / max(bounded_held, 1)},
    }


def report(out: dict[str, Any]) -> str:
    rss, traced = out["results"]["rss"], out["results"]["tracemalloc"]
    full, bounded = traced["unbounded"], traced["bounded"]
    n = out["config"]["sessions"]
    lines = [
        f"idle sessions in MemorySessionStore: {n} created, each with 2 short messages",
        f"  held (store.count()):        {full['sessions_held']} "
        f"({'OK' if full['sessions_held'] == n else 'MISMATCH'})",
        f"  tracemalloc:                 {full['traced_bytes'] / 2**20:.2f} MiB, "
        f"{full['bytes_per_session']:.0f} bytes/session "
        f"({full['traced_bytes_after_release']} bytes left after dropping the store)",
        f"  RSS delta (VmRSS):           {rss['rss_delta_bytes'] / 2**20:.2f} MiB, "
        f"{rss['bytes_per_session']:.0f} bytes/session",
        "  top allocation sites:",
        *(f"    {s['bytes'] / 2**10:9.1f} KiB {s['blocks']:>7} blocks  {s['site']}"
          for s in full["top_allocation_sites"]),
        f"bounded: max_sessions={bounded['max_sessions']}, {bounded['sessions_created']} created",
        f"  held (store.count()):        {bounded['sessions_held']} "
        f"({'OK' if bounded['sessions_held'] == bounded['max_sessions'] else 'MISMATCH'})",
        f"  tracemalloc:                 {bounded['traced_bytes'] / 2**20:.2f} MiB, "
        f"{bounded['bytes_per_held_session']:.0f} bytes/held session",
    ]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    if args.sessions < 1 or not 1 <= args.max_sessions <= args.sessions:
        print("--sessions must be >= 1 and --max-sessions between 1 and --sessions", file=sys.stderr)
        return 2
    stamp = timestamp()
    out = {"timestamp": stamp,
           "config": {"sessions": args.sessions, "max_sessions": args.max_sessions,
                      "system": SYSTEM, "messages_per_session": 2},
           "environment": environment(),
           "results": {"rss": await measure_rss(args.sessions),
                       "tracemalloc": await measure_traced(args.sessions, args.max_sessions)}}
    print(report(out))
    print(f"\nresults: {write_results(stamp, out, 'memory')}")
    full, bounded = out["results"]["tracemalloc"]["unbounded"], out["results"]["tracemalloc"]["bounded"]
    ok = full["sessions_held"] == args.sessions and bounded["sessions_held"] == args.max_sessions
    return 0 if ok else 1
