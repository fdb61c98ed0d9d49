"""`python -m app`: serve streamchat. Every flag also reads a STREAMCHAT_* variable."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import fields
from typing import Any

from app.errors import ConfigError
from app.settings import ENV_PREFIX, SETTING_HELP, Settings, SettingsError, from_env, parse_value


def _shown(value: Any) -> str:
    if value is None:
        return "see text"
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return str(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="streamchat: a streaming-first LLM chat service on an in-process vLLM engine. "
        "Each option can also be set with the environment variable shown; flags win.",
    )
    defaults = Settings()
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env = ENV_PREFIX + f.name.upper()
        default = getattr(defaults, f.name)
        parser.add_argument(flag, dest=f.name, metavar=f.name.upper(), default=None,
                            help=f"{SETTING_HELP[f.name]} [env {env}] (default: {_shown(default)})")
    parser.add_argument("--engine-arg", dest="engine_arg", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="one vLLM engine argument, repeatable; VALUE is read as JSON when "
                        "it parses (e.g. --engine-arg max_num_seqs=64 --engine-arg enforce_eager=false)")
    return parser


def settings_from_args(argv: list[str] | None = None) -> Settings:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    for f in fields(Settings):
        raw = getattr(args, f.name)
        if raw is not None:
            overrides[f.name] = parse_value(f.name, raw)
    if args.engine_arg:
        base = dict(overrides.get("engine_args") or from_env().engine_args)
        for item in args.engine_arg:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise SettingsError(f"--engine-arg takes KEY=VALUE, got {item!r}")
            try:
                base[key.strip().replace("-", "_")] = json.loads(value)
            except json.JSONDecodeError:
                base[key.strip().replace("-", "_")] = value
        overrides["engine_args"] = base
    return from_env(**overrides)


def main(argv: list[str] | None = None) -> int:
    try:
        settings = settings_from_args(argv)
    except SettingsError as exc:
        print(f"streamchat: invalid setting: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    from app.main import build_engine, create_app

    try:
        engine = build_engine(settings)
    except ConfigError as exc:
        print(f"streamchat: {exc.message}", file=sys.stderr)
        return 2
    app = create_app(settings, engine=engine)
    logging.getLogger("streamchat").info(
        "serving %s on http://%s:%d", settings.model_name, settings.host, settings.port)
    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            log_level=settings.log_level, loop="uvloop", http="httptools",
                            ws="websockets-sansio", ws_max_size=settings.max_body_bytes,
                            timeout_graceful_shutdown=30)
    server = uvicorn.Server(config)

    def stop_server() -> None:
        server.should_exit = True

    app.state.stop_server = stop_server
    server.run()
    code = int(getattr(app.state, "exit_code", 0))
    if code:
        print("streamchat: stopped: the engine failed to start (see the log above)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
