"""The docs are tested as they are written: every fenced block of README.md, docs/*.md and
benchmarks/README.md (collected by tests/doc_blocks.py, which states the rule for each kind of
block) either runs against the real service, is a shape that is checked (json parses), or
names the test that covers it; and every relative link points at a file of the repo (and an
anchor at one of its headings).

Running: the docs' service, http://127.0.0.1:8000 (or localhost:8000), is the shared e2e
server (tests/e2e_server.py), put in its place in the block's text; `.venv/bin/python` is this
venv's python; OPENAI_BASE_URL and OPENAI_API_KEY (a placeholder: the server has no keys) are
set. `python` blocks run with this python, `sh` blocks with bash under `set -euo pipefail`
with curl failing on an HTTP error, `js` blocks with node in tests/node (tests/node_clients.py).
Each block runs alone (the docs' examples are self-contained), all of them side by side, a few
at a time, from the first test that needs one; a failure names the block's file and line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.doc_blocks import (
    REPO,
    RUNNERS,
    SHAPES,
    Block,
    CoveredBy,
    all_blocks,
    anchors,
    documents,
    links,
    parse,
)
from tests.e2e_server import LiveServer
from tests.node_clients import run_node

BLOCKS = all_blocks()
RUNNABLE = [block for block in BLOCKS if block.runner is not None]
# Three at a time: the shared server admits 4 generations and queues 4 more, and one example
# (docs/operating.md) sends three at once.
PARALLEL = 3
TIMEOUT_S = 90
# An error that comes inside a stream (an SSE `error` event, an error event on a socket) does
# not change an example's exit status; its printed output shows it.
STREAMED_ERROR = re.compile(r"event: error|[\"']type[\"']: ?[\"']error[\"']|type='error'")
BASH_PRELUDE = ('set -euo pipefail\n'
                'curl() { command curl --fail-with-body -sS --max-time 120 "$@"; }\n')


def _id(block: Block) -> str:
    return f"{block.where}-{block.info}"


def test_blocks_are_read_with_their_line_kind_and_covering_test() -> None:
    text = ("# T\n```sh\ncurl localhost:8000/health\n```\n- a list\n"
            '  <!-- covered-by: tests/test_k8s.py "kubectl" -->\n  ```sh\n  kubectl apply\n'
            "    -f x\n  ```\n```\nno info\n```\n")
    first, covered, bare = parse(Path("x.md"), text)
    assert (first.where, first.info, first.code, first.runner) == (
        "x.md:2", "sh", "curl localhost:8000/health\n", "bash")
    assert covered.covered_by == CoveredBy("tests/test_k8s.py", ("kubectl",))
    assert (covered.line, covered.code, covered.runner) == (7, "kubectl apply\n  -f x\n", None)
    assert (bare.info, bare.runner) == ("", None)


def test_every_markdown_file_has_its_blocks_found() -> None:
    # The collector itself: README's examples are there, one per client.
    readme = {block.info for block in BLOCKS if block.doc == Path("README.md")}
    assert {"sh", "python", "js"} <= readme, readme
    assert len(RUNNABLE) >= 20, [block.where for block in RUNNABLE]


@pytest.mark.parametrize("block", BLOCKS, ids=_id)
def test_every_block_says_what_it_is(block: Block) -> None:
    assert block.info in RUNNERS.keys() | SHAPES, (
        f"{block.where}: a fenced block needs an info string, one of "
        f"{sorted(RUNNERS.keys() | SHAPES)} (tests/doc_blocks.py), not {block.info!r}")


def test_json_blocks_parse() -> None:
    bad = []
    for block in (b for b in BLOCKS if b.info == "json"):
        try:
            json.loads(block.code)
        except ValueError as exc:
            bad.append(f"{block.where}: not JSON: {exc}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.covered_by is not None], ids=_id)
def test_a_block_another_test_covers_names_it_truly(block: Block) -> None:
    assert block.covered_by is not None
    covering = REPO / block.covered_by.path
    assert covering.is_file() and covering.is_relative_to(REPO / "tests"), (
        f"{block.where}: covered-by {block.covered_by.path}: no such file under tests/")
    text = covering.read_text()
    for needle in block.covered_by.needles:
        assert needle in block.code, f"{block.where}: {needle!r} is not in the block"
        assert needle in text, f"{block.where}: {needle!r} is not in {block.covered_by.path}"
    assert block.info in RUNNERS, f"{block.where}: only code blocks need a covering test"


@pytest.mark.parametrize("doc", documents(), ids=str)
def test_relative_links_point_into_the_repo(doc: Path) -> None:
    broken = []
    for line, target in links(doc):
        path, _, anchor = target.partition("#")
        resolved = ((REPO / doc).parent / path).resolve() if path else REPO / doc
        if not resolved.is_relative_to(REPO) or not resolved.exists():
            broken.append(f"{doc}:{line}: {target} (no such file in the repo)")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(
                resolved.relative_to(REPO)):
            broken.append(f"{doc}:{line}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_the_two_commands_are_the_makefiles() -> None:
    """README's `make run` and `make test` (covered-by this file): the Makefile serves with
    `python -m app` and tests with pytest after the system packages, and CI runs `make test`."""
    recipes = dict(re.findall(r"^([\w-]+):[^\n]*\n((?:\t[^\n]*\n)+)",
                              (REPO / "Makefile").read_text(), re.M))
    assert "$(PY) -m app" in recipes["run"]
    assert "scripts/test-deps.sh" in recipes["test"] and "$(PY) -m pytest" in recipes["test"]
    assert re.search(r"^make test$", (REPO / ".ci" / "run").read_text(), re.M)


def _as_run(code: str, server: LiveServer) -> str:
    host = urlsplit(server.url).netloc
    for docs_host in ("127.0.0.1:8000", "localhost:8000"):
        code = code.replace(docs_host, host)
    return code.replace(".venv/bin/python", sys.executable)


def _run(block: Block, server: LiveServer) -> subprocess.CompletedProcess[str]:
    code = _as_run(block.code, server)
    env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": "sk-docs-example"}
    if block.runner == "node":
        return run_node(code, env, timeout=TIMEOUT_S)
    with tempfile.TemporaryDirectory(prefix="docs-example-") as folder:
        script = Path(folder) / ("example.py" if block.runner == "python" else "example.sh")
        script.write_text(code if block.runner == "python" else BASH_PRELUDE + code)
        command = [sys.executable if block.runner == "python" else "bash", str(script)]
        return subprocess.run(command, cwd=REPO, env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def runs(live_server: LiveServer) -> Iterator[dict[Block, Future[subprocess.CompletedProcess[str]]]]:
    """Every runnable block, started at once on a bounded pool; each test waits for its own."""
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {block: pool.submit(_run, block, live_server) for block in RUNNABLE}
        try:
            yield futures
        finally:
            for future in futures.values():
                future.cancel()


@pytest.mark.e2e
@pytest.mark.parametrize("block", RUNNABLE, ids=_id)
def test_the_example_runs(block: Block,
                          runs: dict[Block, Future[subprocess.CompletedProcess[str]]]) -> None:
    try:
        result = runs[block].result()
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: the {block.info} example ran past {TIMEOUT_S} s",
                    pytrace=False)
    assert result.returncode == 0, (
        f"{block.where}: the {block.info} example exited {result.returncode}\n"
        f"--- its code ---\n{block.code}--- stdout ---\n{result.stdout[-3000:]}\n"
        f"--- stderr ---\n{result.stderr[-3000:]}")
    assert not STREAMED_ERROR.search(result.stdout), (
        f"{block.where}: the {block.info} example printed an error\n{result.stdout[-3000:]}")
