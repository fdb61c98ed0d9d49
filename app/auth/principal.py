"""Who a request is, once its credential is verified, and what it may do."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

Scope = Literal["chat", "admin"]
# `chat`: sessions, WebSocket, OpenAI API. `admin`: /metrics and operations. Neither implies the
# other: an ops key that should also chat is given `chat+admin`, so a monitoring key cannot chat.
SCOPES: tuple[Scope, ...] = get_args(Scope)
_BY_NAME: dict[str, Scope] = {scope: scope for scope in SCOPES}


@dataclass(frozen=True, slots=True)
class Principal:
    owner: str  # the API key's id, or the JWT's subject: sessions belong to it
    scopes: frozenset[str]
    via: Literal["key", "jwt"]

    def can(self, scope: str) -> bool:
        return scope in self.scopes


class Rejected(Exception):
    """Why a credential was refused: logged at debug level, never shown to the client."""


def parse_scopes(text: str, separators: str = "+") -> frozenset[Scope]:
    """Scope names joined by any of `separators`, or ValueError. Unknown names are not echoed:
    a secret put in the wrong field of a badly formed entry would land here."""
    expected = f"expected {' or '.join(SCOPES)}, joined with {separators[0]!r}"
    if not text.strip():
        raise ValueError(f"no scopes, {expected}")
    found: set[Scope] = set()
    for name in re.split(f"[{re.escape(separators)}]", text):
        scope = _BY_NAME.get(name.strip())
        if scope is None:
            raise ValueError(f"unknown scope, {expected}")
        found.add(scope)
    return frozenset(found)


def format_scopes(scopes: Iterable[str]) -> str:
    """Scopes as written in keys: `+`-joined, in declaration order, so lines compare equal."""
    given = set(scopes)
    return "+".join(scope for scope in SCOPES if scope in given)
