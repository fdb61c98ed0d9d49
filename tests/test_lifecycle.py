"""Whether the replica takes new work (app/lifecycle.py)."""

from __future__ import annotations

import pytest

from app.errors import NotReady
from app.lifecycle import Lifecycle
from tests.fakes import ScriptedEngine


def test_loading_ready_draining() -> None:
    engine = ScriptedEngine(ready=False)
    lifecycle = Lifecycle(engine)
    assert lifecycle.not_ready_reason() == "the engine is loading"
    engine._ready = True
    assert lifecycle.not_ready_reason() is None
    lifecycle.check_accepting()
    lifecycle.drain()
    assert lifecycle.not_ready_reason() == "draining"
    with pytest.raises(NotReady) as info:
        lifecycle.check_accepting()
    assert "draining" in info.value.message and info.value.retry_after_s > 0


def test_a_failed_start_is_not_ready() -> None:
    lifecycle = Lifecycle(ScriptedEngine())
    lifecycle.failure = "no memory"
    assert lifecycle.not_ready_reason() == "the engine failed to start"


def test_generations_are_counted_until_they_end() -> None:
    lifecycle = Lifecycle(ScriptedEngine())
    lifecycle.started()
    lifecycle.started()
    assert lifecycle.generations == 2 and not lifecycle.idle
    lifecycle.ended()
    lifecycle.ended()
    assert lifecycle.idle  # however they ended: app/generation.py ends each once
