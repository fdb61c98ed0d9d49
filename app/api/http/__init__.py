"""The HTTP plumbing every API uses: authentication (auth.py), the Host and Origin rules
(browser_guard.py), the request log (request_log.py), reading bodies (body.py) and query
parameters (query.py), the error shapes (errors.py), SSE (sse.py, keepalive.py), the
disconnect watcher (disconnect.py), the server's own send (raw_send.py) and what every route
works with (state.py)."""
