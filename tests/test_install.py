"""scripts/install.sh's 4th argument: dev (make's default) installs the test tools, serve (the
Docker image) does not. Run against a stand-in venv whose python only records what pip is asked,
so nothing is downloaded."""

from __future__ import annotations

import os
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


@pytest.mark.parametrize("found", [True, False])
def test_apt_get_installs_tcmalloc_only_when_the_loader_does_not_find_it(
        tmp_path: Path, found: bool) -> None:
    """As root on Debian (the image, a root `make install`): an image that has tcmalloc does
    not run apt-get again."""
    venv, calls, bin_dir = tmp_path / "venv", tmp_path / "calls", tmp_path / "bin"
    (venv / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    listed = "\tlibtcmalloc_minimal.so.4 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
    fakes = {venv / "bin" / "python": f'echo "$*" >> {calls}\n',
             bin_dir / "ldconfig": "echo '\tlibc.so.6 (libc6,x86-64) => /lib/libc.so.6'\n"
                                   + (f"echo '{listed}'\n" if found else ""),
             bin_dir / "id": "echo 0\n",
             bin_dir / "apt-get": f'echo "apt-get $*" >> {calls}\n'}
    for path, body in fakes.items():
        path.write_text(f"#!/bin/sh\n{body}")
        path.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", "scripts/install.sh", "cpu", str(venv), "true", "serve"],
                            cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    apt = [call for call in calls.read_text().splitlines() if call.startswith("apt-get install")]
    assert bool(apt) is not found
    assert all("libtcmalloc-minimal4" in call for call in apt)
