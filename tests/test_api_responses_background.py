"""Background responses (`background: true`) with a scripted engine: run without a client,
fetched while they run and once done, their typed events streamed again from any sequence
number, on one replica and across two sharing Redis; cancelled, here or from the other
replica; and one left "in progress" by a replica that died reads as failed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.responses.stored import KIND
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.redis_server import RedisServer
from tests.sdk_clients import sdk_for
from tests.sse_parse import parse_frames
from tests.test_api_responses import TEXT_EVENTS
from tests.waiting import status_polled

TOKENS = [f"w{i} " for i in range(30)]


def wait_for_status(client: TestClient, response_id: str, statuses: set[str]) -> dict[str, Any]:
    return status_polled(client, f"/v1/responses/{response_id}", statuses)


def events_of(text: str) -> list[dict[str, Any]]:
    return [frame["data"] for frame in parse_frames(text)]


@pytest.fixture
def client() -> Iterator[TestClient]:
    engine = ScriptedEngine(["Hel", "lo", " there", "!"], delay_s=0.01)
    with TestClient(create_app(Settings(default_max_tokens=200, orphan_grace_s=0.2),
                               engine)) as test_client:
        yield test_client


def test_a_background_response_runs_without_a_client_and_resumes_from_any_event(
        client: TestClient) -> None:
    sdk = sdk_for(client)
    queued = sdk.responses.create(model="scripted", input="Hi", background=True)
    assert queued.status == "queued" and queued.background is True and queued.output == []
    time.sleep(0.5)  # well past the orphan grace (0.2 s): nobody follows it, it goes on
    done = wait_for_status(client, queued.id, {"completed"})
    assert done["status"] == "completed" and done["output"][0]["content"][0]["text"] == \
        "Hello there!"
    every = list(sdk.responses.retrieve(queued.id, stream=True))
    assert [e.type for e in every] == ["response.created", "response.queued", *TEXT_EVENTS[1:]]
    assert [e.sequence_number for e in every] == list(range(len(every)))
    for after in (-1, 0, 5, len(every) - 2):
        again = list(sdk.responses.retrieve(queued.id, stream=True, starting_after=after))
        assert [e.model_dump() for e in again] == [e.model_dump() for e in every[after + 1:]]
    # An EventSource resumes with Last-Event-ID, the `id:` of each event.
    raw = client.get(f"/v1/responses/{queued.id}?stream=true", headers={"Last-Event-ID": "5"})
    assert [e["sequence_number"] for e in events_of(raw.text)] == \
        list(range(6, len(every)))


def test_background_and_stream_follows_it_live(client: TestClient) -> None:
    events = list(sdk_for(client).responses.create(model="scripted", input="Hi",
                                                   background=True, stream=True))
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "Hello there!"  # type: ignore[union-attr]


def test_only_background_responses_are_streamed_again_or_cancelled(client: TestClient) -> None:
    response = sdk_for(client).responses.create(model="scripted", input="Hi")
    again = client.get(f"/v1/responses/{response.id}?stream=true")
    assert again.status_code == 400 and again.json()["error"]["param"] == "stream"
    cancel = client.post(f"/v1/responses/{response.id}/cancel")
    assert cancel.status_code == 400 and cancel.json()["error"]["param"] == "response_id"
    bad = client.get(f"/v1/responses/{response.id}?stream=true&starting_after=x")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "starting_after"


def test_cancel_stops_the_engine_and_ends_it_cancelled() -> None:
    engine = ScriptedEngine(TOKENS, delay_s=0.05)
    with TestClient(create_app(Settings(default_max_tokens=200), engine)) as client:
        sdk = sdk_for(client)
        queued = sdk.responses.create(model="scripted", input="Hi", background=True)
        wait_for_status(client, queued.id, {"in_progress"})
        time.sleep(0.2)
        cancelled = sdk.responses.cancel(queued.id)
        assert cancelled.status == "cancelled"
        assert engine.aborted  # the engine request stopped, not only the stream
        assert 0 < len(cancelled.output_text) < len("".join(TOKENS))
        events = list(sdk.responses.retrieve(queued.id, stream=True))
        assert events[-1].type == "response.cancelled"
        # Cancelling again, or a finished response, changes nothing.
        assert sdk.responses.cancel(queued.id).model_dump() == cancelled.model_dump()


def test_an_in_progress_response_whose_replica_died_reads_as_failed(client: TestClient) -> None:
    services = client.app_state["services"]
    client.portal.call(services.records.put, KIND, "resp_orphan", {  # type: ignore[union-attr]
        "owner": None, "messages": [], "response": {
            "id": "resp_orphan", "object": "response", "status": "in_progress",
            "background": True, "output": []}})
    body = client.get("/v1/responses/resp_orphan").json()
    assert body["status"] == "failed" and body["error"]["code"] == "interrupted"


@pytest.fixture
def replicas(redis_server: RedisServer) -> Iterator[tuple[TestClient, TestClient, ScriptedEngine]]:
    redis_server.flush()
    settings = Settings(redis_url=redis_server.url, default_max_tokens=200)
    engine_a = ScriptedEngine(TOKENS, delay_s=0.03)
    with TestClient(create_app(settings, engine_a)) as a, \
            TestClient(create_app(settings, ScriptedEngine())) as b:
        yield a, b, engine_a


def test_started_on_one_replica_followed_and_fetched_through_the_other(replicas: Any) -> None:
    a, b, engine_a = replicas
    queued = sdk_for(a).responses.create(model="scripted", input="Hi", background=True)
    assert b.get(f"/v1/responses/{queued.id}").json()["status"] in ("queued", "in_progress")
    live = list(sdk_for(b).responses.retrieve(queued.id, stream=True, starting_after=3))
    assert live[0].sequence_number == 4 and live[-1].type == "response.completed"
    assert live[-1].response.output_text == "".join(TOKENS)  # type: ignore[union-attr]
    assert wait_for_status(b, queued.id, {"completed"})["status"] == "completed"
    assert not engine_a.aborted
    # Chained through the other replica: the conversation is shared too.
    chained = sdk_for(b).responses.create(model="scripted", input="More",
                                          previous_response_id=queued.id)
    assert chained.status == "completed"


def test_cancelled_through_the_other_replica(replicas: Any) -> None:
    a, b, engine_a = replicas
    queued = sdk_for(a).responses.create(model="scripted", input="Hi", background=True)
    wait_for_status(b, queued.id, {"in_progress"})
    cancelled = sdk_for(b).responses.cancel(queued.id)
    assert cancelled.status == "cancelled" and engine_a.aborted


def test_unknown_response_on_every_replica_is_a_404(replicas: Any) -> None:
    _, b, _ = replicas
    with pytest.raises(openai.NotFoundError):
        sdk_for(b).responses.retrieve("resp_nope")
