"""Raw ASGI calls for tests that must control `receive` (e.g. feed an http.disconnect)."""

from __future__ import annotations

import asyncio
from typing import Any


def http_scope(method: str, path: str, headers: dict[str, str],
               state: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1", "method": method, "scheme": "http", "path": path,
            "raw_path": path.encode(), "query_string": b"", "root_path": "",
            # A local client's Host, as the default allowed hosts want it.
            "headers": [(k.lower().encode(), v.encode())
                        for k, v in {"host": "localhost", **headers}.items()],
            "client": ("127.0.0.1", 1), "server": ("test", 80), "state": state or {}}


class LeavingClient:
    """An ASGI client that sends one request body, then leaves (http.disconnect): after
    `after_chunks` response body chunks, or whenever a test sets `leave`."""

    def __init__(self, body: bytes, after_chunks: int | None = 3) -> None:
        self.body = body
        self.after_chunks = after_chunks
        self.sent: list[dict[str, Any]] = []
        self.leave = asyncio.Event()
        self._delivered = False

    async def receive(self) -> dict[str, Any]:
        if not self._delivered:
            self._delivered = True
            return {"type": "http.request", "body": self.body, "more_body": False}
        await self.leave.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        chunks = sum(1 for m in self.sent if m["type"] == "http.response.body")
        if self.after_chunks is not None and chunks >= self.after_chunks:
            self.leave.set()
