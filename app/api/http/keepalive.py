"""Keep-alive for a stream whose source cannot tell when it is quiet (app/api/http/sse.py)."""

from __future__ import annotations

import asyncio

from starlette.types import Send


class Pinger:
    """Sends `ping` (a comment frame) from a timer while a stream waits for its next frame,
    after `interval_s` without one. The timer is armed once per quiet period (a frame only
    moves `_sent_at`), and frames never overlap: the stream waits for a ping in flight before
    it sends its own."""

    def __init__(self, send: Send, interval_s: float, ping: bytes) -> None:
        self._send = send
        self._ping_frame = ping
        self._interval_s = interval_s
        self._loop = asyncio.get_running_loop()
        self._sent_at = self._loop.time()
        self._sending = False  # the stream is sending a frame
        self._ping: asyncio.Task[None] | None = None
        self._pinged = False  # a ping went out since the stream's last frame
        self._timer: asyncio.TimerHandle | None = self._loop.call_at(
            self._sent_at + interval_s, self._due)

    def _due(self) -> None:
        now = self._loop.time()
        quiet_until = self._sent_at + self._interval_s
        if now >= quiet_until and not self._sending and self._ping is None:
            self._ping = asyncio.create_task(self._send_ping())
            quiet_until = now + self._interval_s
        elif now >= quiet_until:  # busy sending: look again after another interval
            quiet_until = now + self._interval_s
        self._timer = self._loop.call_at(quiet_until, self._due)

    async def _send_ping(self) -> None:
        try:
            await self._send({"type": "http.response.body", "body": self._ping_frame, "more_body": True})
            self._pinged = True
            self._sent_at = self._loop.time()
        except Exception:  # the stream's next send meets the same failure
            pass
        finally:
            self._ping = None

    async def before_send(self) -> bool:
        """Called before the stream's frame: whether a ping went out since its last one."""
        self._sending = True
        if self._ping is not None:
            await self._ping
        pinged, self._pinged = self._pinged, False
        return pinged

    def after_send(self) -> None:
        self._sending = False
        self._sent_at = self._loop.time()

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        ping, self._ping = self._ping, None
        if ping is not None:
            ping.cancel()
            await asyncio.gather(ping, return_exceptions=True)
