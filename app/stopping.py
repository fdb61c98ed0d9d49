"""Why a generation's task was stopped: whoever stops one for a reason says it with
`stop(task, cause)`, and the generation (app/generation.py) reads it back as it ends."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, Literal

AbortCause = Literal["client_left", "cancel", "drain", "timeout", "engine_error"]
# Why a task was stopped, for the generation it runs (`stop`); weak: a task ended is forgotten.
_causes: weakref.WeakKeyDictionary[asyncio.Task[Any], AbortCause] = weakref.WeakKeyDictionary()


def stop(task: asyncio.Task[Any] | None, cause: AbortCause) -> None:
    """Stop the generation `task` runs, for `cause` (the first cause named wins)."""
    if task is None or task.done():
        return
    _causes.setdefault(task, cause)
    task.cancel()


def cause_of(task: asyncio.Task[Any] | None) -> AbortCause | None:
    return _causes.get(task) if task is not None else None
