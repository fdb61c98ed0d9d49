"""The Dockerfile: both targets install with the README's script, copy only what it installs, run
as a user that is not root, serve on 0.0.0.0:8000 and report health from /ready. No Docker
engine is needed: the file is read (tests/dockerfile_parse.py) and linted with hadolint."""

from __future__ import annotations

import http.server
import os
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from setuptools import find_packages

from app.main import STATIC_DIR
from app.settings import from_env
from tests.dockerfile_parse import Dockerfile, Instruction, dockerignore_admits, parse

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
INSTALL_SCRIPT = "scripts/install.sh"
TARGETS = ("cpu", "gpu")


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(DOCKERFILE)


def install_runs(dockerfile: Dockerfile, target: str) -> list[list[str]]:
    """The install script's command lines among the RUN steps that build `target`."""
    runs = []
    for stage in _build_stages(dockerfile, target):
        for instruction in dockerfile.instructions(stage, "RUN"):
            words = shlex.split(instruction.args)
            if words and words[0] == INSTALL_SCRIPT:
                runs.append(words)
    return runs


def _build_stages(dockerfile: Dockerfile, target: str) -> list[str]:
    """The target and every stage it copies from, recursively."""
    names = [target]
    for stage in dockerfile.chain(target):
        for copy in stage.instructions:
            if copy.keyword == "COPY" and "from" in copy.flags:
                names += [n for n in _build_stages(dockerfile, copy.flags["from"]) if n not in names]
    return names


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.fail(f"hadolint is missing at {hadolint}: it comes with the dev extras "
                    "(`make install`, or pip install -e '.[dev]')")
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cpu_is_the_default_target_and_gpu_exists(dockerfile: Dockerfile) -> None:
    names = [stage.name for stage in dockerfile.stages]
    assert "gpu" in names
    assert names[-1] == "cpu"  # `docker build .` builds the last stage


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_installs_with_the_readme_script_without_test_tools(
        dockerfile: Dockerfile, target: str) -> None:
    [run] = install_runs(dockerfile, target)
    device, venv, _python, mode = run[1:]
    assert (device, mode) == (target, "serve")
    # The venv is built and used at one path: the runtime stage is built on the stage that
    # installs it, or copies the tree that holds it to the same place; its bin is first on PATH.
    built_here = any(shlex.split(r.args)[:1] == [INSTALL_SCRIPT]
                     for r in dockerfile.instructions(target, "RUN"))
    copies = [c.args.split() for c in dockerfile.stage(target).instructions
              if c.keyword == "COPY" and "from" in c.flags]
    assert built_here or any(src == dest and (venv == src or venv.startswith(src.rstrip("/") + "/"))
                             for src, dest in copies)
    assert dockerfile.env(target)["PATH"].split(":")[0] == f"{venv}/bin"


def test_the_makefile_still_installs_with_the_test_tools() -> None:
    recipe = (REPO / "Makefile").read_text()
    assert f"{INSTALL_SCRIPT} $(DEVICE) $(VENV) $(PYTHON)\n" in recipe  # mode: dev, the default


def test_copies_from_the_context_are_what_pip_installs_and_the_script(dockerfile: Dockerfile) -> None:
    """pip needs pyproject.toml, its readme and the packages it finds; the app serves static/
    from beside its package; the script is what the RUN steps call."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {name.split(".")[0] for name in find_packages(where=str(REPO), include=include)}
    needed = {"pyproject.toml", project["project"]["readme"], *packages,
              str(STATIC_DIR.relative_to(REPO)), INSTALL_SCRIPT}
    copied: dict[str, str] = {}
    for copy in _context_copies(dockerfile):
        *sources, dest = copy.args.split()
        for source in sources:
            copied[source.rstrip("/")] = dest
    assert set(copied) == needed
    # Laid out as in the repository, so that the editable install finds static/ beside app/.
    root = "/src/"
    for source, dest in copied.items():
        assert dest in (root, f"{root}{source}", f"{root}{source}/"), (source, dest)


def _context_copies(dockerfile: Dockerfile) -> Iterator[Instruction]:
    for stage in dockerfile.stages:
        for instruction in stage.instructions:
            assert instruction.keyword != "ADD", "COPY, not ADD"
            if instruction.keyword == "COPY" and "from" not in instruction.flags:
                yield instruction


def test_dockerignore_sends_exactly_what_is_copied(dockerfile: Dockerfile) -> None:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    files = [path for path in listed if (REPO / path).is_file()]
    sources = {source.rstrip("/") for copy in _context_copies(dockerfile)
               for source in copy.args.split()[:-1]}
    copied = {path for path in files
              if any(path == source or path.startswith(f"{source}/") for source in sources)}
    sent = {path for path in files if dockerignore_admits(REPO / ".dockerignore", path)}
    assert sent == copied
    assert not dockerignore_admits(REPO / ".dockerignore", "app/__pycache__/main.cpython-311.pyc")


@pytest.mark.parametrize("target", TARGETS)
def test_runtime_runs_as_a_numeric_user_that_is_not_root(dockerfile: Dockerfile, target: str) -> None:
    user = dockerfile.last(target, "USER")
    assert user is not None, f"{target} runs as root"
    uid = user.args.split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: Kubernetes' runAsNonRoot can check it
    created = [run.args for run in dockerfile.instructions(target, "RUN") if "useradd" in run.args]
    assert any(f"--uid {uid} " in args for args in created), "the user is not created"


@pytest.mark.parametrize("target", TARGETS)
def test_the_users_group_is_the_one_user_names(dockerfile: Dockerfile, target: str) -> None:
    """`useradd --system --user-group` picks a system gid (999): the group USER names must be
    made with its number, and be the user's own."""
    user = dockerfile.last(target, "USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    assert gid.isdigit(), "USER names no numeric group: the process would run in group 0"
    commands = _commands(dockerfile, target)
    assert any(c[0] == "groupadd" and _option(c, "--gid") == gid for c in commands)
    [useradd] = [c for c in commands if c[0] == "useradd"]
    assert (_option(useradd, "--uid"), _option(useradd, "--gid")) == (uid, gid)
    assert "--user-group" not in useradd


def test_every_folder_of_the_cache_path_is_the_users(dockerfile: Dockerfile) -> None:
    """vLLM writes ~/.cache/vllm beside streamchat's cache: a ~/.cache owned by root makes it
    log PermissionError at start."""
    user = dockerfile.last("cpu", "USER")
    assert user is not None
    uid, _, gid = user.args.partition(":")
    home, cache = Path(dockerfile.env("cpu")["HOME"]), Path(dockerfile.env("cpu")["STREAMCHAT_CACHE_DIR"])
    owned: set[Path] = set()
    for command in _commands(dockerfile, "cpu"):
        if command[:2] == ["install", "-d"] and _option(command, "-o") in (uid, "streamchat") \
                and _option(command, "-g") in (gid, "streamchat"):
            owned |= {Path(word) for word in command if word.startswith("/")}
    assert home in cache.parents
    below_home = [folder for folder in (cache, *cache.parents) if home in folder.parents]
    assert set(below_home) <= owned, sorted(map(str, set(below_home) - owned))


def _commands(dockerfile: Dockerfile, target: str) -> list[list[str]]:
    """The simple commands of the target's RUN steps (split at &&)."""
    commands = []
    for run in dockerfile.instructions(target, "RUN"):
        words: list[str] = []
        for word in [*shlex.split(run.args), "&&"]:
            if word == "&&":
                commands.append(words)
                words = []
            else:
                words.append(word)
    return [c for c in commands if c]


def _option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command[:-1] else None


@pytest.mark.parametrize("target", TARGETS)
def test_serves_the_app_on_all_interfaces_port_8000(dockerfile: Dockerfile, target: str) -> None:
    settings = from_env({k: v for k, v in dockerfile.env(target).items() if k.startswith("STREAMCHAT_")})
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)
    expose = dockerfile.last(target, "EXPOSE")
    assert expose is not None and expose.args == str(settings.port)
    entrypoint = dockerfile.last(target, "ENTRYPOINT")
    assert entrypoint is not None and entrypoint.exec_form()[-3:] == ["python", "-m", "app"]


def test_cpu_image_carries_the_converted_default_model_and_gpu_none(dockerfile: Dockerfile) -> None:
    def prepares(target: str) -> bool:
        return any("-m app prepare-model" in run.args for stage in _build_stages(dockerfile, target)
                   for run in dockerfile.instructions(stage, "RUN"))

    assert prepares("cpu") and not prepares("gpu")
    cache = dockerfile.env("cpu")["STREAMCHAT_CACHE_DIR"]
    user = dockerfile.last("cpu", "USER")
    assert user is not None
    # Prepared in the runtime's own chain, at the path the service reads, and owned by the user
    # (vLLM and the Hugging Face cache write beside it).
    commands = _commands(dockerfile, "cpu")
    assert any(c[0] == "cp" and c[-1].rstrip("/") == cache for c in commands)
    assert any(c[:2] == ["chown", "-R"] and c[2:] == [user.args, cache] for c in commands)
    for target in TARGETS:
        assert "STREAMCHAT_MODEL" not in dockerfile.env(target)


def test_cpu_runtime_has_the_tcmalloc_the_engine_preloads(dockerfile: Dockerfile) -> None:
    from app.engine.cpu import TCMALLOC_NAMES

    assert TCMALLOC_NAMES[0] == "libtcmalloc_minimal.so.4"  # Debian: libtcmalloc-minimal4
    runs = " ".join(run.args for run in dockerfile.instructions("cpu", "RUN"))
    assert "libtcmalloc-minimal4" in runs


class _Ready(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self) -> None:
        _Ready.paths.append(self.path)
        self.send_response(_Ready.status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("target", TARGETS)
def test_healthcheck_is_healthy_only_when_ready_says_so(dockerfile: Dockerfile, target: str) -> None:
    healthcheck = dockerfile.last(target, "HEALTHCHECK")
    assert healthcheck is not None
    command = healthcheck.exec_form()
    assert command[0] == "python"  # the venv's, first on PATH
    _Ready.paths.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "STREAMCHAT_PORT": str(server.server_address[1])}
    env.pop("STREAMCHAT_SSL_CERTFILE", None)
    try:
        codes = {}
        for status in (200, 503):
            _Ready.status = status
            codes[status] = subprocess.run([sys.executable, *command[1:]], env=env,
                                           capture_output=True, timeout=30).returncode
    finally:
        server.shutdown()
        server.server_close()
    assert codes[200] == 0 and codes[503] != 0
    assert set(_Ready.paths) == {"/ready"}
