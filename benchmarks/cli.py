"""Command-line pieces shared by the sub-commands that start a model (engine or server)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def engine_arg(raw: str) -> tuple[str, Any]:
    key, sep, value = raw.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--engine-arg takes KEY=VALUE, got {raw!r}")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def default_cache_dir() -> Path:
    from app.settings import Settings

    env = os.environ.get("STREAMCHAT_CACHE_DIR")
    return Path(os.path.expanduser(env)) if env else Settings().cache_dir


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="streamchat's cache folder with the converted default model "
                        "(default: $STREAMCHAT_CACHE_DIR or ~/.cache/streamchat)")
    parser.add_argument("--model", default=None,
                        help="model folder or Hugging Face id (default: the converted SmolLM2-135M)")
    parser.add_argument("--engine-arg", type=engine_arg, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="vLLM engine argument, repeatable "
                        "(e.g. --engine-arg max_num_batched_tokens=256)")


def add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0,
                        help="port for the server subprocess on 127.0.0.1 (default: a free one)")
    parser.add_argument("--ready-timeout", type=float, default=600.0,
                        help="seconds to wait for the server's GET /ready (default: 600)")
