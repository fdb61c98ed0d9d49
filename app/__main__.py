"""`python -m app`: serve streamchat. Every flag also reads a STREAMCHAT_* variable."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from pydantic.fields import FieldInfo

from app.errors import ConfigError
from app.settings import Settings, SettingsError, env_name, flag_name, from_env

_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _shown(value: Any) -> str:
    """A default as a person would type it."""
    if value is None:
        return "unset"
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    return str(value)


def _help(name: str, info: FieldInfo) -> str:
    # The constraints come from the declaration too, so --help cannot drift from validation.
    bounds = [f"{_BOUNDS[key]} {getattr(rule, key)}" for rule in info.metadata
              for key in _BOUNDS if getattr(rule, key, None) is not None]
    limits = f"; {', '.join(bounds)}" if bounds else ""
    default = _shown(info.get_default(call_default_factory=True))
    text = f"{info.description} [env {env_name(name)}{limits}] (default: {default})"
    return text.replace("%", "%%")  # argparse formats help with %


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description="streamchat: a streaming-first LLM chat service on an in-process vLLM engine. "
        "Each option can also be set with the environment variable shown; flags win.",
        epilog="other commands: `python -m app keys new --help` (API keys); "
        "`python -m app prepare-model --help` (convert the default model into the cache folder "
        "and exit, for a build step)",
    )
    for name, info in Settings.model_fields.items():
        # Flags stay text (default None = not given): the settings read them as the environment.
        parser.add_argument(flag_name(name), dest=name, metavar=name.upper(), default=None,
                            help=_help(name, info))
    parser.add_argument("--engine-arg", dest="engine_arg", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="one vLLM engine argument, repeatable; VALUE is read as JSON when "
                        "it parses (e.g. --engine-arg max_num_seqs=64 --engine-arg enforce_eager=false)")
    return parser


def _engine_arg(item: str) -> tuple[str, Any]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise SettingsError(f"--engine-arg takes KEY=VALUE, got {item!r}")
    try:
        parsed: Any = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def settings_from_args(argv: list[str] | None = None) -> Settings:
    """Settings from the environment, then the flags in `argv`; raises SettingsError."""
    args = build_parser().parse_args(argv)
    overrides = {name: getattr(args, name) for name in Settings.model_fields}
    settings = from_env(**overrides)
    if not args.engine_arg:
        return settings
    # --engine-arg adds to STREAMCHAT_ENGINE_ARGS / --engine-args rather than replacing them.
    engine_args = {**settings.engine_args, **dict(map(_engine_arg, args.engine_arg))}
    return from_env(**{**overrides, "engine_args": engine_args})


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["keys"]:  # key management, not serving: no settings, no engine
        from app.auth.cli import main as keys_main

        return keys_main(args[1:])
    if args[:1] == ["prepare-model"]:  # a build step: the default model, no engine
        from app.prepare_model import main as prepare_main

        return prepare_main(args[1:])
    try:
        settings = settings_from_args(argv)
    except SettingsError as exc:
        print(f"streamchat: invalid setting: {exc}", file=sys.stderr)
        return 2
    from app.logs import setup_logging

    log_format = setup_logging(settings.log_level, settings.log_format, settings.log_content)
    from app.auth import Authenticator
    from app.lifecycle import Lifecycle
    from app.main import build_engine, create_app
    from app.server import serve

    try:
        authenticator = Authenticator.from_settings(settings)  # before the slow part: fail fast
        engine = build_engine(settings)
        lifecycle = Lifecycle(engine)
        app = create_app(settings, engine, lifecycle=lifecycle, calibrate=True)
    except ConfigError as exc:
        print(f"streamchat: {exc.message}", file=sys.stderr)
        return 2
    scheme = "https" if settings.ssl_certfile else "http"
    log = logging.getLogger("streamchat")
    log.info("serving %s on %s://%s:%d (auth: %s; hosts: %s; CORS origins: %s; logs: %s)",
             settings.model_name, scheme, settings.host, settings.port,
             authenticator.describe() if authenticator else "off",
             ",".join(settings.served_hosts or ("any",)),
             ",".join(settings.cors_origins) or "none", log_format)
    warning = settings.exposure_warning()
    if warning is not None:
        log.warning("%s", warning)
    code = serve(app, settings, lifecycle)
    if code:
        print(f"streamchat: stopped: {lifecycle.failure} (see the log above)", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
