from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from app.__main__ import settings_from_args
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
    ({"STREAMCHAT_PORT": "eighty"}, "STREAMCHAT_PORT"),
    ({"STREAMCHAT_PORT": "70000"}, "0-65535"),
    ({"STREAMCHAT_ENGINE_ARGS": "{nope"}, "not valid JSON"),
    ({"STREAMCHAT_ENGINE_ARGS": "[1]"}, "JSON object"),
    ({"STREAMCHAT_ENGINE_ARGS": '{"max_model_len": 5}'}, "STREAMCHAT_MAX_MODEL_LEN"),
    ({"STREAMCHAT_ORPHAN_GRACE_S": "-1"}, ">= 0"),
    ({"STREAMCHAT_LOG_LEVEL": "loud"}, "logging level"),
    ({"STREAMCHAT_MAX_MODEL_LEN": "3"}, ">= 16"),
])
def test_invalid_values_name_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError, match=needle):
        from_env(env)


def test_cli_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMCHAT_PORT", "9000")
    settings = settings_from_args(["--port", "9100", "--engine-arg", "max_num_seqs=4",
                                   "--engine-arg", "enforce_eager=false"])
    assert settings.port == 9100
    assert settings.engine_args == {"max_num_seqs": 4, "enforce_eager": False}


def test_help_documents_every_setting_and_its_variable() -> None:
    out = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    for f in fields(Settings):
        assert "--" + f.name.replace("_", "-") in out
        assert "STREAMCHAT_" + f.name.upper() in out
    assert "--engine-arg" in out


@pytest.mark.parametrize(("args", "env", "needle"), [
    (["--port", "99999"], {}, "STREAMCHAT_PORT must be 0-65535"),
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
