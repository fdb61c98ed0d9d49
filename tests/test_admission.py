"""Admission control (app/admission/): the gate in front of the engine, its bounded and fair
queue, and what every transport answers when the queue is full."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from app.admission import Admission, Ticket
from app.api.http.sse import EventParser
from app.errors import QueueFull
from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.sse_parse import check_grammar, parse_frames


def gate(active: int = 2, queue: int = 4, prefilling: int = 8) -> Admission:
    return Admission(max_active=active, max_queue=queue, max_prefilling=prefilling)


def admitted(ticket: Ticket) -> bool:
    return ticket.admitted is not None and ticket.admitted.done() and not ticket.released


# -- the gate ----------------------------------------------------------------------------------

async def test_admits_at_once_while_there_is_room_then_queues_then_refuses_at_once() -> None:
    admission = gate(active=2, queue=2)
    first, second = admission.enqueue("a"), admission.enqueue("b")
    assert admitted(first) and admitted(second)
    third, fourth = admission.enqueue("c"), admission.enqueue("d")
    assert not admitted(third) and not admitted(fourth) and admission.waiting == 2
    with pytest.raises(QueueFull) as refused:
        admission.enqueue("e")
    assert refused.value.retry_after_s >= 1 and refused.value.code == "queue_full"
    admission.release(first)
    assert admitted(third) and not admitted(fourth)


async def test_a_prompt_waits_while_max_prefilling_prompts_have_no_first_token() -> None:
    admission = gate(active=8, prefilling=2)
    a, b, c = (admission.enqueue("u") for _ in range(3))
    assert admitted(a) and admitted(b) and not admitted(c)
    admission.first_token(a)  # a decodes now: its prompt's place goes to c
    assert admitted(c) and admission.prefilling == 2 and admission.active == 3


async def test_the_user_with_the_fewest_generations_in_the_engine_goes_first() -> None:
    """One user with many streams does not starve a user with one: the light user's request
    jumps the heavy user's queue, and each user's own requests keep their order."""
    admission = gate(active=3, queue=10)
    held = [admission.enqueue("heavy") for _ in range(3)]
    heavy = [admission.enqueue("heavy") for _ in range(3)]
    light = admission.enqueue("light")
    assert admission.order() == [light, *heavy]
    admission.release(held[0])
    assert admitted(light) and not any(admitted(t) for t in heavy)
    admission.release(held[1])
    assert admitted(heavy[0]) and not admitted(heavy[1])


async def test_a_user_with_nothing_in_the_engine_does_not_wait_for_a_heavy_users_prompts() -> None:
    admission = gate(active=8, prefilling=2)
    heavy = [admission.enqueue("heavy") for _ in range(3)]
    assert [admitted(t) for t in heavy] == [True, True, False]
    light = admission.enqueue("light")
    assert admitted(light) and admission.prefilling == 3  # one place beyond max_prefilling
    again = admission.enqueue("light")
    assert not admitted(again)  # only while it has nothing in the engine
    admission.first_token(heavy[0])
    admission.first_token(heavy[1])
    # Fewest in the engine first; and no heavier prompt joins light's while they prefill.
    assert admitted(again) and not admitted(heavy[2])
    admission.first_token(light)  # light now has as many in the engine as heavy
    assert admitted(heavy[2])


async def test_beside_a_lighter_user_a_heavy_users_prompts_are_prefilled_one_at_a_time() -> None:
    admission = gate(active=16, queue=10, prefilling=4)
    alone = [admission.enqueue("heavy") for _ in range(4)]
    assert all(admitted(t) for t in alone)  # alone, a user fills every prompt place
    for ticket in alone:
        admission.first_token(ticket)
    light = admission.enqueue("light")
    admission.first_token(light)  # the light user streams one reply
    heavy = [admission.enqueue("heavy") for _ in range(3)]
    assert [admitted(t) for t in heavy] == [True, False, False]
    admission.first_token(heavy[0])
    assert [admitted(t) for t in heavy] == [True, True, False]
    admission.release(light)  # the light user has gone: the heavy one fills the places again
    assert admitted(heavy[2])


async def test_users_take_turns_by_their_counts_in_the_engine() -> None:
    admission = gate(active=1, queue=10)
    blocker = admission.enqueue("x")
    a = [admission.enqueue("a") for _ in range(3)]
    b = [admission.enqueue("b") for _ in range(2)]
    assert admission.order() == [a[0], b[0], a[1], b[1], a[2]]
    admission.release(blocker)
    assert admitted(a[0])


async def test_positions_are_told_when_they_change() -> None:
    admission = gate(active=1, queue=10)
    running = admission.enqueue("x")
    told: dict[str, list[int]] = {"p": [], "q": []}
    p = admission.enqueue("p")
    admission.watch(p, told["p"].append)
    q = admission.enqueue("q")
    admission.watch(q, told["q"].append)
    assert told == {"p": [0], "q": [1]}
    admission.release(p)  # p gives up while waiting: q moves up
    assert told["q"] == [1, 0]
    admission.release(running)
    assert admitted(q) and told["q"] == [1, 0]


async def test_a_waiter_cancelled_leaves_the_queue() -> None:
    admission = gate(active=1, queue=2)
    running = admission.enqueue("x")
    waiting = admission.enqueue("y")
    waits = asyncio.Event()

    async def wait() -> bool:
        waits.set()  # what follows runs on until it waits for its place
        return await admission.wait(waiting)

    waiter = asyncio.create_task(wait())
    await waits.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert admission.waiting == 0 and waiting.released
    admission.release(running)
    assert admission.active == 0


async def test_wait_with_a_timeout_says_whether_it_was_admitted() -> None:
    admission = gate(active=1, queue=2)
    running = admission.enqueue("x")
    waiting = admission.enqueue("y")
    assert await admission.wait(waiting, 0.01) is False
    admission.release(running)
    assert await admission.wait(waiting, 0.01) is True


async def test_idle_and_busy_are_announced_for_background_work() -> None:
    admission = gate(active=1, queue=2, prefilling=1)
    events: list[str] = []
    admission.on_busy(lambda: events.append("busy"))
    admission.on_idle(lambda: events.append("idle"))
    ticket = admission.enqueue("u")
    assert events == ["busy"] and not admission.idle
    admission.first_token(ticket)
    assert events[-1] == "idle" and admission.idle


# -- every transport: a full queue is a 429 with Retry-After, at once ------------------------

SSE = {"Accept": "text/event-stream"}
CHAT = {"model": "scripted", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def busy() -> Iterator[tuple[TestClient, str]]:
    """A service whose engine holds one slow generation and whose queue holds one more; and
    a session with no reply in flight."""
    engine = ScriptedEngine(tokens=["w"] * 200, delay_s=0.02)
    settings = Settings(max_concurrent_generations=1, max_queue=1, prefix_warmup=False)
    with TestClient(create_app(settings, engine)) as client:
        sids = [client.post("/v1/sessions").json()["id"] for _ in range(3)]
        for sid in sids[:2]:
            assert client.post(f"/v1/sessions/{sid}/messages",
                               json={"content": "go"}).status_code == 202
        yield client, sids[2]


def check_queue_full(status: int, headers: dict[str, str], body: dict[str, object]) -> None:
    assert status == 429
    assert int(headers["retry-after"]) >= 1
    error = body["error"]
    assert isinstance(error, dict) and error["code"] == "queue_full"
    assert error["type"] == "rate_limit_error"


def test_a_full_queue_is_a_429_on_the_sessions_api(busy: tuple[TestClient, str]) -> None:
    client, sid = busy
    for headers in ({}, SSE):
        response = client.post(f"/v1/sessions/{sid}/messages", json={"content": "go"},
                               headers=headers)
        check_queue_full(response.status_code, dict(response.headers), response.json())
    # Nothing was stored for the refused message, and the session takes the next one.
    assert client.get(f"/v1/sessions/{sid}").json()["messages"] == []
    metrics = client.get("/metrics").text
    assert 'streamchat_rejected_requests_total{reason="queue_full"} 2.0' in metrics


def test_a_full_queue_is_a_4429_error_frame_on_the_websocket(busy: tuple[TestClient, str]) -> None:
    client, sid = busy
    with client.websocket_connect(f"/v1/sessions/{sid}/ws") as ws:
        ws.send_json({"type": "message", "content": "go"})
        frame = ws.receive_json()
        assert frame["type"] == "error" and frame["status"] == 4429
        assert frame["code"] == "queue_full"
        assert isinstance(frame["retry_after"], int) and frame["retry_after"] >= 1  # as Retry-After
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}  # the socket stays open


def test_a_full_queue_is_a_429_in_the_openai_shape(busy: tuple[TestClient, str]) -> None:
    client, _ = busy
    for body in (CHAT, {**CHAT, "stream": True}):
        response = client.post("/v1/chat/completions", json=body)
        check_queue_full(response.status_code, dict(response.headers), response.json())
    response = client.post("/v1/completions", json={"model": "scripted", "prompt": "x"})
    check_queue_full(response.status_code, dict(response.headers), response.json())


# -- progress before the first token ------------------------------------------------------------

def test_queued_and_prefill_come_in_order_before_the_first_token() -> None:
    """A reply that waits says where it stands (`queued`, its position, again when it moves),
    then `prefill` when the engine takes it, then its tokens; progress carries no id."""
    engine = ScriptedEngine(tokens=["a", "b"], delay_s=0.05, prefill_s=0.1)
    settings = Settings(max_concurrent_generations=1, max_queue=4, prefix_warmup=False)
    with TestClient(create_app(settings, engine)) as client:
        sids = [client.post("/v1/sessions").json()["id"] for _ in range(3)]
        for sid in sids[:2]:  # one in the engine, one waiting
            client.post(f"/v1/sessions/{sid}/messages", json={"content": "go"})
        response = client.post(f"/v1/sessions/{sids[2]}/messages", json={"content": "go"},
                               headers=SSE)
    frames = parse_frames(response.text)
    kinds = [f["event"] for f in frames]
    assert kinds[:4] == ["start", "queued", "queued", "prefill"], kinds
    assert [f["data"]["position"] for f in frames[1:3]] == [1, 0]
    assert frames[3]["data"]["queue_ms"] > 0 and frames[3]["data"]["prompt_tokens"] > 0
    events = check_grammar(frames)
    assert events[-1]["data"]["timings"]["queue_ms"] >= frames[3]["data"]["queue_ms"]


def test_progress_reaches_a_websocket_client_without_seq() -> None:
    engine = ScriptedEngine(tokens=["a", "b"], delay_s=0.05, prefill_s=0.1)
    settings = Settings(max_concurrent_generations=1, max_queue=4, prefix_warmup=False)
    with TestClient(create_app(settings, engine)) as client:
        sids = [client.post("/v1/sessions").json()["id"] for _ in range(2)]
        client.post(f"/v1/sessions/{sids[0]}/messages", json={"content": "go"})
        with client.websocket_connect(f"/v1/sessions/{sids[1]}/ws") as ws:
            ws.send_json({"type": "message", "content": "go"})
            frames = []
            while not frames or frames[-1]["type"] not in ("done", "error"):
                frames.append(ws.receive_json())
    assert [f["type"] for f in frames[:3]] == ["start", "queued", "prefill"]
    assert frames[1]["position"] == 0 and "seq" not in frames[1] and "seq" not in frames[2]
    assert [f["seq"] for f in frames if "seq" in f] == list(range(len(frames) - 2))


def test_a_waiting_openai_stream_gets_keepalive_comments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.api.http.sse.PING_INTERVAL_S", 0.02)
    engine = ScriptedEngine(tokens=["w"] * 10, delay_s=0.02)
    settings = Settings(max_concurrent_generations=1, max_queue=4, prefix_warmup=False)
    with TestClient(create_app(settings, engine)) as client:
        sid = client.post("/v1/sessions").json()["id"]
        client.post(f"/v1/sessions/{sid}/messages", json={"content": "go"})
        with client.stream("POST", "/v1/chat/completions",
                           json={**CHAT, "stream": True}) as response:
            reads = list(response.iter_raw())  # one network read per frame sent
    body = b"".join(reads).decode()
    head = body.split("data: ", 1)[0]
    assert head.count(": ping") >= 3  # while it waited, before its first chunk
    assert body.endswith("data: [DONE]\n\n")
    # Each data chunk is intact for a parser that follows the SSE rules...
    assert [e.data for e in EventParser().feed(body.encode())][-1] == "[DONE]"
    # ...and for vLLM's benchmark client, which strips each read before splitting on blank
    # lines: a ping read on its own must not swallow the first content chunk.
    from vllm.benchmarks.lib.endpoint_request_func import StreamedResponseHandler

    handler = StreamedResponseHandler()
    messages = [m for read in reads if read.strip() for m in handler.add_chunk(read.strip())]
    data = [m for m in messages if not m.startswith(":")]
    assert json.loads(data[0].removeprefix("data: "))["choices"][0]["delta"]["content"] == "w"
    assert data[-1] == "data: [DONE]" and len(data) == 11


def test_a_queued_reply_whose_client_left_leaves_the_queue() -> None:
    """Cancelled while it waits, a reply never reaches the engine, and is stored cancelled."""
    engine = ScriptedEngine(tokens=["w"] * 100, delay_s=0.02)
    settings = Settings(max_concurrent_generations=1, max_queue=4, prefix_warmup=False)
    with TestClient(create_app(settings, engine)) as client:
        sids = [client.post("/v1/sessions").json()["id"] for _ in range(2)]
        client.post(f"/v1/sessions/{sids[0]}/messages", json={"content": "go"})
        queued = client.post(f"/v1/sessions/{sids[1]}/messages", json={"content": "go"}).json()
        cancelled = client.post(f"/v1/sessions/{sids[1]}/messages/{queued['message_id']}/cancel")
        assert cancelled.json()["status"] == "cancelled"
        assert len(engine.prompts) == 1

