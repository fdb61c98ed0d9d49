"""scripts/install.sh's 4th argument: dev (make's default) installs the test tools, serve (the
Docker image) does not. Run against a stand-in venv whose python only records what pip is asked,
so nothing is downloaded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def run_install(tmp_path: Path, *mode: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    venv, calls = tmp_path / "venv", tmp_path / "calls"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    python.chmod(0o755)
    # gpu: no CPU torch and no tcmalloc step, so only pip is called.
    result = subprocess.run(["bash", "scripts/install.sh", "gpu", str(venv), "true", *mode],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    return result, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize(("mode", "extras"), [((), "gpu,dev"), (("dev",), "gpu,dev"),
                                              (("serve",), "gpu")])
def test_the_mode_picks_the_extras_of_an_editable_install(
        tmp_path: Path, mode: tuple[str, ...], extras: str) -> None:
    result, calls = run_install(tmp_path, *mode)
    assert result.returncode == 0, result.stdout + result.stderr
    installs = [call for call in calls if call.startswith("-m pip install") and " -e " in call]
    assert installs == [f"-m pip install -q -e .[{extras}]"]


def test_an_unknown_mode_is_refused_before_anything_is_installed(tmp_path: Path) -> None:
    result, calls = run_install(tmp_path, "prod")
    assert result.returncode == 2 and "dev or serve" in result.stderr
    assert calls == []
