"""Node clients for the tests: the openai node SDK and @openai/agents, installed in tests/node
by scripts/test-deps.sh (`npm ci` from the committed package-lock.json)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent / "node"


def run_node(script: str | Path, env: dict[str, str],
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Runs `script` (a path, or ES-module source text) with node in NODE_DIR, so that its
    imports resolve against tests/node/node_modules; `env` is added to this process's
    environment. Source text is written to a temporary .mjs inside NODE_DIR for the same
    reason (node resolves bare imports from the importing file's folder, not the cwd)."""
    full_env = {**os.environ, **env}
    if isinstance(script, Path):
        return _run(script, full_env, timeout)
    with tempfile.NamedTemporaryFile("w", suffix=".mjs", prefix=".run-", dir=NODE_DIR,
                                     delete=False) as source:
        source.write(script)
    path = Path(source.name)
    try:
        return _run(path, full_env, timeout)
    finally:
        path.unlink(missing_ok=True)


def _run(path: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", str(path.resolve())], cwd=NODE_DIR, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
