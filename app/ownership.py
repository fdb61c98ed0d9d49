"""Who sees what: with auth off (no key asking) everything; with auth on, a key only what it
created. Another key's session, response, file or job is as if it did not exist: each caller
answers it with its own 404."""

from __future__ import annotations


def visible(owned_by: str | None, asking: str | None) -> bool:
    """Whether the key `asking` (None: auth off) sees a thing that `owned_by` created."""
    return asking is None or owned_by == asking
