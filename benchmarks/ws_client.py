"""Side 3: the same session endpoint, the reply read over the session WebSocket (API.md).

Per chat, like a browser tab: create the session over HTTP, open its socket, send one
`message` frame, read frames until `done`. TTFT counts from sending the message frame, so the
socket's opening handshake is left out (a chat page opens it once, before the user types).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import httpx
from websockets.asyncio.client import connect

from benchmarks.session_api import apply_event, measured_chat, reply_params
from benchmarks.sse_client import level_client
from benchmarks.workload import PromptBuilder, RequestResult, TokenClock, run_levels

# Far above any expected TTFT: a slow reply is a data point, not a timeout.
OPEN_TIMEOUT_S = 30.0


async def one_chat(client: httpx.AsyncClient, ws_url: str, tag: str, content: str,
                   max_tokens: int) -> RequestResult:
    """One simulated chat over the WebSocket; `ws_url` is ws://HOST:PORT."""
    frame = json.dumps({"type": "message", "content": content, "params": reply_params(max_tokens)})

    async def converse(sid: str, result: RequestResult) -> None:
        # Library defaults otherwise (permessage-deflate offered, as browsers do; keepalive pings).
        async with connect(f"{ws_url}/v1/sessions/{sid}/ws", open_timeout=OPEN_TIMEOUT_S,
                           max_size=None) as ws:
            clock = TokenClock(result)
            result.sent_s = time.perf_counter()
            await ws.send(frame)
            async for raw in ws:
                now = time.perf_counter()
                data = json.loads(raw)
                kind = data.get("type")
                apply_event(kind, data, now, result, clock)
                if kind in ("done", "error"):
                    break
        if result.finish_reason is None and result.error is None:
            result.error = "socket closed without a done frame"

    return await measured_chat(client, tag, converse)


async def run_ws(
    *,
    base_url: str,
    prompts: PromptBuilder,
    levels: Sequence[tuple[int, list[str]]],
    warmup: int,
    max_tokens: int,
) -> dict[int, list[RequestResult]]:
    """Run every (concurrency, tags) level against a running server (base_url is http://...)."""
    ws_url = "ws" + base_url.removeprefix("http")
    async with level_client(base_url, levels, warmup) as client:

        async def one(tag: str) -> RequestResult:
            return await one_chat(client, ws_url, tag, prompts.text(tag), max_tokens)

        return await run_levels("ws", one, levels, warmup)
