"""A Dockerfile read into stages and instructions, for tests that check what the image does.

Only what this repository's Dockerfile uses: line continuations, comments, `FROM image AS name`,
leading `--flag=value` options, ENV's `KEY=value` pairs and exec-form (JSON) commands.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_FLAG = re.compile(r"--([a-z-]+)=(\S+)\s*")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: RUN, COPY, ...
    flags: dict[str, str]  # leading --name=value options: COPY --from, RUN --mount, ...
    args: str  # the rest, continuation lines joined

    def exec_form(self) -> list[str]:
        """A JSON-array command: ENTRYPOINT [...], or HEALTHCHECK's CMD [...]."""
        text = self.args.removeprefix("CMD").strip() if self.keyword == "HEALTHCHECK" else self.args
        command = json.loads(text)
        assert isinstance(command, list), f"{self.keyword} is not in exec form: {self.args}"
        return [str(part) for part in command]


@dataclass
class Stage:
    name: str
    base: str  # an image, or an earlier stage's name
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"no stage named {name!r}")

    def chain(self, name: str) -> list[Stage]:
        """The stage and the stages it is built FROM, the root first."""
        names = {stage.name for stage in self.stages}
        chain = [self.stage(name)]
        while chain[0].base in names:
            chain.insert(0, self.stage(chain[0].base))
        return chain

    def instructions(self, name: str, keyword: str) -> list[Instruction]:
        """Every `keyword` instruction a stage runs or inherits, in order."""
        return [i for stage in self.chain(name) for i in stage.instructions if i.keyword == keyword]

    def last(self, name: str, keyword: str) -> Instruction | None:
        """The instruction of this kind that is in force in the stage (USER, ENTRYPOINT, ...)."""
        found = self.instructions(name, keyword)
        return found[-1] if found else None

    def env(self, name: str) -> dict[str, str]:
        """The stage's environment as ENV sets it ($NAME expanded from earlier values)."""
        env: dict[str, str] = {}
        for instruction in self.instructions(name, "ENV"):
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                env[key] = re.sub(r"\$(\w+)", lambda m: env.get(m.group(1), m.group(0)), value)
        return env


def parse(path: Path) -> Dockerfile:
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text()):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name, words[0]))
            continue
        if keyword == "ARG" and not stages:
            continue  # an ARG before the first FROM only feeds FROM lines
        flags: dict[str, str] = {}
        while (match := _FLAG.match(rest)) is not None:
            flags[match.group(1)] = match.group(2)
            rest = rest[match.end():]
        stages[-1].instructions.append(Instruction(keyword, flags, rest))
    return Dockerfile(stages)


def _logical_lines(text: str) -> list[str]:
    """Instructions with their continuation lines joined; comments and blank lines dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continued instruction, as Docker does
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    if pending:
        lines.append(pending)
    return lines


def dockerignore_admits(dockerignore: Path, path: str) -> bool:
    """Whether Docker sends `path` (relative to the context) with the build context: the last
    pattern that matches the path or one of its parent folders decides; `!` lets it back in."""
    admitted = True
    for line in dockerignore.read_text().splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        regex = _glob_regex(pattern.removeprefix("!").strip("/"))
        parts = path.split("/")
        if any(regex.match("/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            admitted = negated
    return admitted


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Docker's glob: `*` and `?` stay within a folder, `**` spans any number of them."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] in "*?":
            out, i = out + ("[^/]*" if pattern[i] == "*" else "[^/]"), i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(f"^{out}$")
