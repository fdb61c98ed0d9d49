"""A TCP proxy on 127.0.0.1 for tests that need a network to fail: `cut()` drops every
connection through it at once, as a lost Wi-Fi or a phone put to sleep does, and `down()` /
`up()` refuse new ones meanwhile. It runs its own event loop in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.e2e_server import free_port


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.accepting = True
        self.refused = 0  # connections refused while down
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._started.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._started.set()
        self._loop.run_forever()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.accepting:
            self.refused += 1
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    def _call(self, fn: object) -> None:
        asyncio.run_coroutine_threadsafe(self._do(fn), self._loop).result(10)

    async def _do(self, fn: object) -> None:
        fn()  # type: ignore[operator]

    def cut(self) -> None:
        """Drop every connection now (both ends see a reset)."""
        self._call(lambda: [w.transport.abort() for w in list(self._writers)])

    def down(self) -> None:
        """Cut, and refuse new connections until up()."""
        self.accepting = False
        self.cut()

    def up(self) -> None:
        self.accepting = True

    def close(self) -> None:
        self.down()

        async def shut() -> None:
            self._server.close()
            await self._server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
