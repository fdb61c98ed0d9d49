"""A turn's prompt: the history rendered and trimmed by whole turns (app/history.py)."""

from __future__ import annotations

from app.history import fit_history
from app.sessions.models import Message, Session
from tests.fakes import ScriptedEngine

SYSTEM_IDS = [1, 2, *[ord(c) for c in "SYSTEM"], 3]


def conversation(turns: int, status: str = "done") -> Session:
    session = Session.new(system="SYSTEM", params={}, title=None, owner=None)
    for i in range(turns):
        letter = chr(ord("a") + i)
        session.messages += [Message.new("user", letter * 60, "done"),
                             Message.new("assistant", letter.upper() * 10, status)]  # type: ignore[arg-type]
    return session


async def test_the_whole_history_when_it_fits() -> None:
    engine = ScriptedEngine(max_model_len=4096)
    ids = await fit_history(engine, conversation(3), "next", reserve=16)
    assert ids[: len(SYSTEM_IDS)] == SYSTEM_IDS
    assert ids.count(ord("a")) == 60 and ids.count(ord("c")) == 60


async def test_oldest_turns_are_dropped_whole_and_the_system_prompt_kept() -> None:
    engine = ScriptedEngine(max_model_len=256)
    ids = await fit_history(engine, conversation(5), "f" * 60, reserve=16)
    assert len(ids) <= 256 - 16
    assert ids[: len(SYSTEM_IDS)] == SYSTEM_IDS  # the system prompt is never dropped
    assert ord("a") not in ids  # the oldest turn went first
    assert ids.count(ord("f")) == 60  # the new question is whole
    # What remains after the system prompt starts with a whole earlier user turn, rendered as
    # before: the prefix cache keeps hitting.
    assert ids[len(SYSTEM_IDS):][:2] == [1, 2]
    assert ids.count(ord("e")) == 60  # and as many recent turns as fit are kept


async def test_unfinished_replies_are_not_history() -> None:
    engine = ScriptedEngine(max_model_len=4096)
    ids = await fit_history(engine, conversation(1, status="streaming"), "next", reserve=16)
    assert ord("A") not in ids


async def test_a_new_turn_too_long_for_the_room_is_returned_alone() -> None:
    """Whether it leaves the reply enough room is the token budget's rule, not history's."""
    engine = ScriptedEngine(max_model_len=256)
    ids = await fit_history(engine, conversation(2), "z" * 250, reserve=16)
    assert ord("a") not in ids and ids.count(ord("z")) == 250
