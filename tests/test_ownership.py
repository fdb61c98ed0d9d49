"""Who sees what (app/ownership.py): everything with auth off, only its own with auth on."""

from __future__ import annotations

import pytest

from app.ownership import visible


@pytest.mark.parametrize(("owned_by", "asking", "seen"), [
    (None, None, True), ("alice", None, True),      # auth off: no key asks
    ("alice", "alice", True), ("alice", "bob", False), (None, "bob", False)])
def test_visible(owned_by: str | None, asking: str | None, seen: bool) -> None:
    assert visible(owned_by, asking) is seen
