"""How a reply ends, and its exact replay from the stored message (app/replies/transcript.py)."""

from __future__ import annotations

import pytest

from app.replies.transcript import INTERRUPTED, Ending, Transcript, conclude, replay, terminal_event
from app.sessions.models import Message
from app.streams.log import Event, ReplyLog

PIECES = [("Hel", 1), ("lo", 1), (" wörld", 2), ("!", 1)]
USAGE = {"prompt_tokens": 7, "completion_tokens": 6, "cached_tokens": 0}
TIMINGS = {"queue_ms": 1.0, "ttft_ms": 2.0, "total_ms": 3.0, "tokens_per_s": 4.0}


def live_reply(ending: Ending) -> tuple[Message, list[Event]]:
    """A reply as the live path produces it: its log's events, and its concluded message."""
    message = Message.new("assistant", "", "queued", model="m")
    log, transcript = ReplyLog(message.id, "s"), Transcript()
    log.append("start", {"message_id": message.id, "session_id": "s", "model": "m"})
    for text, n in PIECES:
        transcript.add(text, n)
        log.append("token", {"text": text, "n": n})
    conclude(message, transcript, ending, usage=USAGE, timings=TIMINGS)
    log.append(*terminal_event(message))
    return message, log.events


def shape(events: list[Event]) -> list[tuple[int, str, dict[str, object]]]:
    return [(e.seq, e.type, e.data) for e in events]


@pytest.mark.parametrize("ending", [
    Ending("done", "stop"), Ending("done", "length"), Ending("cancelled", "cancelled"),
    Ending("error", "error", {"code": "engine_error", "message": "boom"}),
])
def test_replay_rebuilds_the_live_events_exactly(ending: Ending) -> None:
    message, events = live_reply(ending)
    assert shape(list(replay(message, "s", "other-model"))) == shape(events)
    assert message.content == "Hello wörld!" and message.status == ending.status


def test_resume_after_any_id_gets_the_rest_with_original_ids_and_ends() -> None:
    message, events = live_reply(Ending("done", "stop"))
    for after in range(-1, len(events) - 1):
        assert shape(list(replay(message, "s", "m", after))) == shape(events[after + 1:])
        text = "".join(str(e.data.get("text", "")) for e in replay(message, "s", "m", after))
        assert message.content.endswith(text)
    # A client at or past the end still gets the terminal event, under its own id.
    for after in (len(events) - 1, 17, 10_000):
        assert shape(list(replay(message, "s", "m", after))) == shape(events[-1:])


def test_terminal_events() -> None:
    done, _ = live_reply(Ending("done", "length"))
    assert terminal_event(done) == ("done", {"finish_reason": "length", "usage": USAGE,
                                             "timings": TIMINGS})
    broken = Message.new("assistant", "", "streaming")  # never concluded: its replica died
    assert terminal_event(broken) == ("error", INTERRUPTED)


def test_a_transcript_is_rebuilt_from_recorded_events() -> None:
    _, events = live_reply(Ending("done", "stop"))
    transcript = Transcript.of_events(events)
    assert transcript.text == "Hello wörld!" and transcript.token_count == 5
    assert transcript.spans() == "3,2,6:2,1"


def test_a_message_stored_without_spans_replays_as_one_token_event() -> None:
    message = Message.new("assistant", "old text", "done")
    message.usage = {"completion_tokens": 3}
    events = list(replay(message, "s", "m"))
    assert [(e.seq, e.type) for e in events] == [(0, "start"), (1, "token"), (2, "done")]
    assert events[1].data == {"text": "old text", "n": 3}


def test_an_interrupted_reply_ends_after_every_id_its_client_had() -> None:
    """Its replica died after sending a client events Redis never got (the resume gap): the
    stored text stops earlier, and the resume's error comes after the client's last id."""
    recorded, _ = live_reply(Ending("done", "stop"))  # a log's first 2 tokens reached Redis
    message = Message.new("assistant", "", "streaming", model="m")
    conclude(message, Transcript.of_events(list(replay(recorded, "s", "m"))[:3]),
             Ending("error", "error", INTERRUPTED), usage=USAGE, timings=None)
    assert [e.seq for e in replay(message, "s", "m", 1)] == [2, 3]  # token 2, then the error
    client_had = 4  # tokens 3 and 4 reached the client, not Redis
    resumed = list(replay(message, "s", "m", client_had))
    assert [(e.seq, e.type) for e in resumed] == [(client_had + 1, "error")]
    assert resumed[0].data == INTERRUPTED
    # A reply that ended on its own keeps its terminal id: nothing can follow it.
    done, events = live_reply(Ending("done", "stop"))
    assert [e.seq for e in replay(done, "s", "m", 10_000)] == [events[-1].seq]
