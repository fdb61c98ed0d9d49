from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.__main__ import build_parser, settings_from_args
from app.settings import Settings, SettingsError, from_env

REPO = Path(__file__).resolve().parent.parent


def test_defaults_serve_the_converted_model_on_localhost() -> None:
    settings = from_env({})
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.model is None and settings.model_name == "SmolLM2-135M-Instruct"
    assert settings.orphan_grace_s == 10.0


def test_environment_is_read_and_typed() -> None:
    settings = from_env({"STREAMCHAT_PORT": "9000", "STREAMCHAT_MODEL": "/models/qwen/",
                         "STREAMCHAT_MAX_MODEL_LEN": "4096",
                         "STREAMCHAT_ENGINE_ARGS": '{"max_num_seqs": 8}'})
    assert settings.port == 9000 and settings.max_model_len == 4096
    assert settings.model_name == "qwen"  # the folder's name unless served_model_name is set
    assert settings.engine_args == {"max_num_seqs": 8}


@pytest.mark.parametrize(("env", "needle"), [
    ({"STREAMCHAT_PORT": "eighty"}, "STREAMCHAT_PORT must be a whole number, got 'eighty'"),
    ({"STREAMCHAT_PORT": "70000"}, "STREAMCHAT_PORT must be <= 65535, got 70000"),
    ({"STREAMCHAT_ENGINE_ARGS": "{nope"}, "STREAMCHAT_ENGINE_ARGS is not valid JSON"),
    ({"STREAMCHAT_ENGINE_ARGS": "[1]"}, "STREAMCHAT_ENGINE_ARGS must be a JSON object"),
    ({"STREAMCHAT_ORPHAN_GRACE_S": "-1"}, "STREAMCHAT_ORPHAN_GRACE_S must be >= 0, got -1"),
    ({"STREAMCHAT_LOG_LEVEL": "loud"}, "STREAMCHAT_LOG_LEVEL must be one of 'critical'"),
    ({"STREAMCHAT_MAX_MODEL_LEN": "3"}, "STREAMCHAT_MAX_MODEL_LEN must be >= 16"),
    ({"STREAMCHAT_SESSION_TTL_S": "0"}, "STREAMCHAT_SESSION_TTL_S must be > 0"),
    ({"STREAMCHAT_MAX_N": "129"}, "STREAMCHAT_MAX_N must be <= 128"),
    ({"STREAMCHAT_REDIS_URL": "http://x"}, "STREAMCHAT_REDIS_URL must start with redis://"),
    ({"STREAMCHAT_MODEL_ALIASES": "a/b"}, "STREAMCHAT_MODEL_ALIASES must be names without '/'"),
    ({"STREAMCHAT_MODEL": "  "}, "STREAMCHAT_MODEL must not be blank"),
    ({"STREAMCHAT_DRAIN_TIMEOUT_S": "-0.5"}, "STREAMCHAT_DRAIN_TIMEOUT_S must be >= 0"),
    ({"STREAMCHAT_ALLOWED_HOSTS": "ok.example,ex ample"},
     "STREAMCHAT_ALLOWED_HOSTS 'ex ample' is not a host name or address"),
    ({"STREAMCHAT_ALLOWED_HOSTS": "a.example:99999"},
     "STREAMCHAT_ALLOWED_HOSTS 'a.example:99999' has a bad port"),
    ({"STREAMCHAT_CORS_ORIGINS": "http://a.example/app"},
     "STREAMCHAT_CORS_ORIGINS 'http://a.example/app' is not an origin"),
    ({"STREAMCHAT_CORS_ORIGINS": "a.example"}, "STREAMCHAT_CORS_ORIGINS 'a.example' is not an origin"),
])
def test_invalid_values_name_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as caught:
        from_env(env)
    message = str(caught.value)
    assert message.startswith(needle)
    assert "\n" not in message and "pydantic" not in message


@pytest.mark.parametrize("reserved", ["model", "served_model_name", "max_model_len"])
def test_reserved_engine_args_point_at_their_own_setting(reserved: str) -> None:
    with pytest.raises(SettingsError) as caught:
        from_env({"STREAMCHAT_ENGINE_ARGS": f'{{"{reserved}": 5}}'})
    assert str(caught.value).startswith(f"STREAMCHAT_ENGINE_ARGS must not set {reserved!r}")
    assert f"STREAMCHAT_{reserved.upper()}" in str(caught.value)


def test_text_forms() -> None:
    settings = from_env({"STREAMCHAT_MODEL_ALIASES": "open-autoglm, foo,",
                         "STREAMCHAT_CACHE_DIR": "~/models", "STREAMCHAT_LOG_LEVEL": "DEBUG",
                         "STREAMCHAT_HOST": "", "STREAMCHAT_DRAIN_TIMEOUT_S": "2.5"})
    assert settings.model_aliases == ("open-autoglm", "foo")
    assert settings.cache_dir == Path.home() / "models"
    assert settings.log_level == "debug"
    assert settings.host == "127.0.0.1"  # an empty variable counts as unset
    assert settings.drain_timeout_s == 2.5
    assert from_env({}).drain_timeout_s == 30.0


def test_every_setting_is_declared_with_help_and_derived_names() -> None:
    parser = build_parser()
    flags = {action.dest: action for action in parser._actions}
    for name, info in Settings.model_fields.items():
        assert info.description, f"{name} has no help text"
        action = flags[name]
        assert action.option_strings == ["--" + name.replace("_", "-")]
        assert f"[env STREAMCHAT_{name.upper()}" in (action.help or "")
        assert info.description.replace("%", "%%") in (action.help or "")


def test_settings_constructor_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMCHAT_PORT", "9000")
    monkeypatch.setenv("STREAMCHAT_ORPHAN_GRACE_S", "99")
    settings = Settings(orphan_grace_s=0.2)
    assert (settings.port, settings.orphan_grace_s) == (8000, 0.2)
    assert from_env().port == 9000  # only from_env reads it


def test_settings_are_frozen_and_hashable() -> None:
    settings = Settings(engine_args={"a": 1, "b": [2]})
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
    assert hash(settings) == hash(Settings(engine_args={"b": [2], "a": 1}))
    assert settings == Settings(engine_args={"b": [2], "a": 1})


def test_cli_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMCHAT_PORT", "9000")
    monkeypatch.setenv("STREAMCHAT_MAX_N", "4")
    monkeypatch.setenv("STREAMCHAT_ENGINE_ARGS", '{"max_num_seqs": 8, "swap_space": 1}')
    settings = settings_from_args(["--port", "9100", "--engine-arg", "max_num_seqs=4",
                                   "--engine-arg", "enforce_eager=false",
                                   "--model-aliases", "open-autoglm,foo"])
    assert (settings.port, settings.max_n) == (9100, 4)
    # --engine-arg adds to the variable's engine arguments, key by key.
    assert settings.engine_args == {"max_num_seqs": 4, "enforce_eager": False, "swap_space": 1}
    assert settings.model_aliases == ("open-autoglm", "foo")


def test_engine_arg_flag_needs_key_and_value() -> None:
    with pytest.raises(SettingsError, match="--engine-arg takes KEY=VALUE"):
        settings_from_args(["--engine-arg", "max_num_seqs"])


def test_help_documents_every_setting_and_its_variable() -> None:
    out = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in out
        assert "STREAMCHAT_" + name.upper() in out
    assert "--engine-arg" in out


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--port", "99999"], {}, "streamchat: invalid setting: STREAMCHAT_PORT must be <= 65535, got 99999"),
    ([], {"STREAMCHAT_MAX_N": "lots"}, "invalid setting: STREAMCHAT_MAX_N must be a whole number"),
    ([], {"STREAMCHAT_ENGINE_ARGS": '{"not_an_engine_arg": 1}'}, "unknown vLLM engine argument"),
    ([], {"STREAMCHAT_MODEL": "/does/not/exist"}, "/does/not/exist"),
])
def test_bad_settings_fail_with_one_clear_line(args: list[str], env: dict[str, str],
                                                needle: str) -> None:
    import os

    result = subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=120)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert len([line for line in result.stderr.splitlines() if "streamchat:" in line]) == 1
