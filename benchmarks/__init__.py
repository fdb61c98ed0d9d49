"""streamchat benchmarks: the same chat workload against the bare engine and the SSE endpoint.

Run `python -m benchmarks --help`. Results are printed as a table and written as JSON to
benchmarks/results/ (git-ignored).
"""
