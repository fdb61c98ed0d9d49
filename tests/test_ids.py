"""The ids the service mints (app/ids.py): one shape, unguessable, never repeated."""

from __future__ import annotations

import re

from app.ids import new_id


def test_an_id_is_its_prefix_and_random_hex() -> None:
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{24}", new_id("chatcmpl-"))
    assert re.fullmatch(r"[0-9a-f]{16}", new_id("", 16))
    assert len({new_id("msg_") for _ in range(1000)}) == 1000
