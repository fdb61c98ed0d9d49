"""HTTP, SSE and WebSocket only: parse, authenticate, encode. One folder per API (sessions/,
openai/, responses/, fine_tuning/), each exporting its `routes`; ops.py (health, readiness,
metrics); and http/, the plumbing they all use."""
