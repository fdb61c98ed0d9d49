"""The fenced blocks and relative links of the repo's Markdown (README.md, docs/*.md,
benchmarks/README.md), as tests/test_docs_examples.py checks and runs them.

What a block is, by its info string (every block must declare one, so that no command hides
in an unlabelled block):
- code, run against the real service: `python` (the venv's python), `sh`/`bash` (bash), `js`/`mjs`
  (node, with the openai node SDK of tests/node);
- shapes and sample output, not run: `text`, `http`, `json` (a `json` block must parse).
A code block that cannot run inside a test (`make run`, `kubectl apply`, a server started with
other settings) says which test covers it in an HTML comment on the line right before it:
    <!-- covered-by: tests/test_k8s.py "kubectl apply -f deploy/k8s/" -->
Each quoted needle must be in the block and in the named file, so the claim stays checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNNERS = {"python": "python", "sh": "bash", "bash": "bash", "js": "node", "mjs": "node",
           "javascript": "node"}
SHAPES = {"text", "http", "json"}

_FENCE = re.compile(r"^(\s*)(`{3,})(\S*)\s*$")
_COVERED = re.compile(r'^\s*<!--\s*covered-by:\s*(\S+)((?:\s+"[^"]+")+)\s*-->\s*$')
_NEEDLE = re.compile(r'"([^"]+)"')
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6}\s+(.*)$")


@dataclass(frozen=True)
class CoveredBy:
    path: str  # relative to the repo
    needles: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    doc: Path  # relative to the repo
    line: int  # the opening fence's, 1-based
    info: str
    code: str  # dedented by the fence's indent
    covered_by: CoveredBy | None

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def runner(self) -> str | None:
        """How it runs in the tests; None for a shape or a block another test covers."""
        return None if self.covered_by is not None else RUNNERS.get(self.info)


def documents() -> list[Path]:
    """The Markdown the tests hold to its word, relative to the repo."""
    return [Path("README.md"), *sorted(p.relative_to(REPO) for p in (REPO / "docs").glob("*.md")),
            Path("benchmarks/README.md")]


def blocks(doc: Path) -> list[Block]:
    return parse(doc, (REPO / doc).read_text())


def parse(doc: Path, text: str) -> list[Block]:
    lines = text.split("\n")
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence, info = opening.groups()
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        code = "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip()
                         for line in lines[index + 1:end])
        covered = _COVERED.match(lines[index - 1]) if index > 0 else None
        found.append(Block(doc, index + 1, info, code + "\n", CoveredBy(
            covered.group(1), tuple(_NEEDLE.findall(covered.group(2)))) if covered else None))
        index = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for doc in documents() for block in blocks(doc)]


def links(doc: Path) -> list[tuple[int, str]]:
    """(line, target) of every relative link outside code blocks; URLs with a scheme left out."""
    found, inside = [], False
    for number, line in enumerate((REPO / doc).read_text().split("\n"), 1):
        if _FENCE.match(line):
            inside = not inside
        elif not inside:
            found += [(number, target) for target in _LINK.findall(line)
                      if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]
    return found


def anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    found, inside = set(), False
    for line in (REPO / doc).read_text().split("\n"):
        if _FENCE.match(line):
            inside = not inside
        elif not inside and (heading := _HEADING.match(line)):
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-"))
    return found
