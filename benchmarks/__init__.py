"""streamchat benchmarks.

- `python -m benchmarks`: the same chat workload against the bare engine, streamchat's SSE
  session endpoint, session WebSocket and `/v1/chat/completions`, and vLLM's own OpenAI server
  (benchmarks/compare.py); each side's output tokens/s as a ratio to the bare engine's.
- `python -m benchmarks multiturn`: TTFT per turn of a growing conversation, server-side session
  vs a changed history each turn.
- `python -m benchmarks memory`: bytes per idle session in the in-memory store, and its bound.
- `python -m benchmarks load`: streamchat vs vLLM's own OpenAI server under load
  (benchmarks/load.py): vLLM's benchmark client at several concurrency levels, fairness
  between a heavy and a light user, overload beyond the sustained rate.

Run `python -m benchmarks --help`. Results are printed and written as JSON to
benchmarks/results/ (git-ignored).
"""
