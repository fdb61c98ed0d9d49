"""streamchat benchmarks.

- `python -m benchmarks`: the same chat workload against the bare engine, the SSE session
  endpoint and the session WebSocket.
- `python -m benchmarks multiturn`: TTFT per turn of a growing conversation, server-side session
  vs a changed history each turn.
- `python -m benchmarks memory`: bytes per idle session in the in-memory store, and its bound.
- `python -m benchmarks openai`: /v1/chat/completions vs vLLM's own OpenAI server
  (benchmarks/openai_compare.py), driven by vLLM's benchmark client.

Run `python -m benchmarks --help`. Results are printed and written as JSON to
benchmarks/results/ (git-ignored).
"""
