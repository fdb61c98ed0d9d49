"""The prompt of a turn: the conversation rendered with the model's chat template, trimmed to
leave the reply its room by dropping the oldest whole turns (never the system prompt).

Dropping from the front keeps every remaining turn rendered exactly as before, so the engine's
prefix cache keeps hitting from turn to turn."""

from __future__ import annotations

from app.engine.base import ChatTurn, Engine
from app.sessions.models import FINAL_STATUSES, Message, Session


async def fit_history(engine: Engine, session: Session, content: str, reserve: int) -> list[int]:
    """Token ids of the session's history plus the new user turn, within
    `max_model_len - reserve` when dropping old turns can get there; otherwise the new turn
    alone (whether that leaves the reply enough room is app/token_budget.py's rule)."""
    budget = engine.max_model_len - reserve
    history = _replayed(session)
    system = [ChatTurn("system", session.system)] if session.system else []
    question = ChatTurn("user", content)

    async def render(drop: int) -> list[int]:
        turns = [turn_of(m) for m in history[drop:]]
        return await engine.render_chat([*system, *turns, question])

    ids = await render(0)
    if len(ids) <= budget or not history:
        return ids
    bare = await render(len(history))
    if len(bare) > budget:
        return bare
    # The fewest dropped turns that fit: the rendering only shrinks as turns are dropped.
    lo, hi = 1, len(history)
    best = bare
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = await render(mid)
        if len(candidate) <= budget:
            best, hi = candidate, mid - 1
        else:
            lo = mid + 1
    return best


async def next_turn_prefix(engine: Engine, session: Session, reserve: int) -> list[int] | None:
    """Token ids that the session's next prompt will start with: the whole history rendered
    through the end of the last turn, without a generation prompt. None when the next turn is
    bound to drop old turns (its prompt would then start differently)."""
    history = _replayed(session)
    if not history:
        return None
    system = [ChatTurn("system", session.system)] if session.system else []
    ids = await engine.render_chat([*system, *map(turn_of, history)],
                                   add_generation_prompt=False)
    return ids if len(ids) + reserve < engine.max_model_len else None


def _replayed(session: Session) -> list[Message]:
    """The messages a prompt shows: ended ones with text or a function call (a reasoning-only
    item is not replayed, as the chat templates want)."""
    return [m for m in session.messages
            if m.status in FINAL_STATUSES and (m.content or m.tool_calls)]


def turn_of(message: Message) -> ChatTurn:
    """A message as the chat template takes it; a conversation's `developer` is its system."""
    extra = {k: v for k, v in (("tool_calls", message.tool_calls),
                               ("tool_call_id", message.tool_call_id)) if v}
    return ChatTurn("system" if message.role == "developer" else message.role, message.content,
                    extra)
