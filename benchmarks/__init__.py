"""streamchat benchmarks.

- `python -m benchmarks`: the same chat workload against the bare engine, the SSE session
  endpoint and the session WebSocket.
- `python -m benchmarks multiturn`: TTFT per turn of a growing conversation, server-side session
  vs a changed history each turn.
- `python -m benchmarks memory`: bytes per idle session in the in-memory store, and its bound.
- `python -m benchmarks load`: streamchat vs vLLM's own OpenAI server under load
  (benchmarks/load.py): vLLM's benchmark client at several concurrency levels, fairness
  between a heavy and a light user, overload beyond the sustained rate.

Run `python -m benchmarks --help`. Results are printed and written as JSON to
benchmarks/results/ (git-ignored).
"""
