"""vLLM's request surface on the OpenAI API, with a scripted engine: every new field reaches
the engine's params when good and is a 400 naming it when bad; lists of prompts, `echo`,
`prompt_logprobs`, `continuous_usage_stats`, chat continuation, `priority`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from app.engine.base import StructuredOutput
from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.test_api_openai import CHAT, assert_openai_error, sse_chunks

PROMPT = {"model": "scripted", "prompt": "Hi"}
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


@pytest.fixture
def client(engine: ScriptedEngine) -> Any:
    settings = Settings(max_n=4, default_max_tokens=16)
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


@pytest.mark.parametrize(("extra", "field", "expected"), [
    ({"min_p": 0.1}, "min_p", 0.1),
    ({"repetition_penalty": 1.3}, "repetition_penalty", 1.3),
    ({"logit_bias": {"50": -100, "7": 2.5}}, "logit_bias", ((7, 2.5), (50, -100.0))),
    ({"stop_token_ids": [2, 9]}, "stop_token_ids", (2, 9)),
    ({"min_tokens": 3}, "min_tokens", 3),
    ({"bad_words": ["foo", "bar baz"]}, "bad_words", ("foo", "bar baz")),
    ({"include_stop_str_in_output": True}, "include_stop_str_in_output", True),
    ({"prompt_logprobs": 2}, "prompt_logprobs", 2),
    ({"response_format": {"type": "json_object"}}, "structured",
     StructuredOutput("response_format", json_object=True)),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA,
                                                                  "strict": True}}},
     "structured", StructuredOutput("response_format.json_schema.schema",
                                    json=json.dumps(SCHEMA, separators=(",", ":")))),
    ({"response_format": {"type": "text"}}, "structured", None),
    ({"structured_outputs": {"choice": ["yes", "no"]}}, "structured",
     StructuredOutput("structured_outputs.choice", choice=("yes", "no"))),
    ({"structured_outputs": {"regex": "[0-9]+"}}, "structured",
     StructuredOutput("structured_outputs.regex", regex="[0-9]+")),
    ({"structured_outputs": {"grammar": 'root ::= "a"'}}, "structured",
     StructuredOutput("structured_outputs.grammar", grammar='root ::= "a"')),
    ({"structured_outputs": {"json": json.dumps(SCHEMA)}}, "structured",
     StructuredOutput("structured_outputs.json", json=json.dumps(SCHEMA, separators=(",", ":")))),
    ({"structured_outputs": {"json_object": True}}, "structured",
     StructuredOutput("structured_outputs.json_object", json_object=True)),
])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_a_good_value_reaches_the_engine(client: TestClient, engine: ScriptedEngine, path: str,
                                         extra: dict[str, Any], field: str,
                                         expected: Any) -> None:
    body = {**(CHAT if "chat" in path else PROMPT), **extra}
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    assert getattr(engine.params[-1], field) == expected


@pytest.mark.parametrize(("extra", "param"), [
    ({"min_p": 1.5}, "min_p"),
    ({"min_p": "0.1"}, "min_p"),
    ({"repetition_penalty": 0}, "repetition_penalty"),
    ({"logit_bias": {"x": 1}}, "logit_bias"),
    ({"logit_bias": {"5": 101}}, "logit_bias.5"),
    ({"logit_bias": {"99999999": 1}}, "logit_bias"),  # outside the vocabulary: the engine's check
    ({"stop_token_ids": [-1]}, "stop_token_ids[0]"),
    ({"stop_token_ids": [99999999]}, "stop_token_ids"),
    ({"min_tokens": -1}, "min_tokens"),
    ({"min_tokens": True}, "min_tokens"),
    ({"bad_words": [""]}, "bad_words[0]"),
    ({"bad_words": "foo"}, "bad_words"),
    ({"include_stop_str_in_output": "yes"}, "include_stop_str_in_output"),
    ({"prompt_logprobs": 21}, "prompt_logprobs"),
    ({"prompt_logprobs": -1}, "prompt_logprobs"),
    ({"prompt_logprobs": 1, "stream": True}, "prompt_logprobs"),
    ({"priority": 1.5}, "priority"),
    ({"priority": 2**63}, "priority"),
    ({"stream": True, "stream_options": {"continuous_usage_stats": True}},
     "stream_options"),
    ({"stream": True, "stream_options": {"include_usage": True, "continuous_usage_stats": 1}},
     "stream_options.continuous_usage_stats"),
    ({"response_format": {"type": "xml"}}, "response_format"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema.json_schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}},
     "response_format.json_schema.json_schema.name"),
    ({"response_format": {"type": "json_schema",
                          "json_schema": {"name": "a", "schema": {"type": "integre"}}}},
     "response_format.json_schema.json_schema.schema"),
    ({"response_format": {"type": "json_schema",
                          "json_schema": {"name": "a", "schema": SCHEMA, "strict": "yes"}}},
     "response_format.json_schema.json_schema.strict"),
    ({"structured_outputs": {}}, "structured_outputs"),
    ({"structured_outputs": {"regex": "a", "choice": ["a"]}}, "structured_outputs"),
    ({"structured_outputs": {"choice": []}}, "structured_outputs.choice"),
    ({"structured_outputs": {"json": "{nope"}}, "structured_outputs.json"),
    ({"structured_outputs": {"json": {"type": 5}}}, "structured_outputs.json"),
    ({"structured_outputs": {"json_object": False}}, "structured_outputs.json_object"),
    ({"structured_outputs": {"grammar": ""}}, "structured_outputs.grammar"),
    ({"structured_outputs": {"backend": "x", "regex": "a"}}, "structured_outputs.backend"),
    # vLLM 0.32 ignores these per request (its backends read the server's config): refused.
    ({"structured_outputs": {"regex": "a", "disable_any_whitespace": True}},
     "structured_outputs.disable_any_whitespace"),
    ({"structured_outputs": {"json": SCHEMA, "disable_additional_properties": True}},
     "structured_outputs.disable_additional_properties"),
    ({"response_format": {"type": "json_object"}, "structured_outputs": {"regex": "a"}},
     "structured_outputs"),
])
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
def test_a_bad_value_is_a_400_naming_it(client: TestClient, engine: ScriptedEngine, path: str,
                                        extra: dict[str, Any], param: str) -> None:
    body = {**(CHAT if "chat" in path else PROMPT), **extra}
    assert_openai_error(client.post(path, json=body), 400, param)
    assert engine.params == []


@pytest.mark.parametrize(("extra", "param"), [
    ({"echo": True}, "echo"),
    ({"prompt": ["a", "b"]}, "prompt"),
])
def test_completion_only_fields_are_unknown_on_chat(client: TestClient, extra: dict[str, Any],
                                                    param: str) -> None:
    error = assert_openai_error(client.post("/v1/chat/completions", json={**CHAT, **extra}), 400,
                                param)
    assert error["code"] == "unknown_parameter"


def test_a_list_of_prompts_numbers_choices_by_prompt_then_n(client: TestClient,
                                                            engine: ScriptedEngine) -> None:
    body = client.post("/v1/completions", json={**PROMPT, "prompt": ["Hi", "Yo"], "n": 2}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2, 3]
    assert all(c["text"] == "Hello there!" for c in body["choices"])
    assert len(engine.params) == 2 and engine.params[0].n == 2
    assert sorted(engine.prompts) == [[1, ord("H"), ord("i")], [1, ord("Y"), ord("o")]]
    assert body["usage"]["prompt_tokens"] == 6 and body["usage"]["completion_tokens"] == 16


def test_a_list_of_prompts_streams_every_choice(client: TestClient) -> None:
    text = client.post("/v1/completions", json={**PROMPT, "prompt": [[5, 6], "Yo"],
                                                "stream": True}).text
    texts: dict[int, str] = {}
    for chunk in sse_chunks(text):
        choice = chunk["choices"][0]
        texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
    assert texts == {0: "Hello there!", 1: "Hello there!"}


def test_prompts_times_n_within_max_n(client: TestClient) -> None:
    assert_openai_error(client.post("/v1/completions", json={
        **PROMPT, "prompt": ["a", "b", "c"], "n": 2}), 400, "prompt")
    assert_openai_error(client.post("/v1/completions", json={**PROMPT, "prompt": []}), 400,
                        "prompt")
    assert_openai_error(client.post("/v1/completions", json={**PROMPT, "prompt": ["a", 5]}),
                        400, "prompt")


def test_echo_starts_each_choice_with_its_prompt(client: TestClient) -> None:
    body = client.post("/v1/completions", json={**PROMPT, "prompt": ["Hi", [89, 111]],
                                                "echo": True}).json()
    assert [c["text"] for c in body["choices"]] == ["HiHello there!", "YoHello there!"]
    chunks = sse_chunks(client.post("/v1/completions", json={**PROMPT, "echo": True,
                                                             "stream": True}).text)
    assert "".join(c["choices"][0]["text"] for c in chunks) == "HiHello there!"
    assert_openai_error(client.post("/v1/completions", json={**PROMPT, "echo": True,
                                                             "logprobs": 1}), 400, "echo")


def test_prompt_logprobs_in_vllms_places(client: TestClient) -> None:
    body = client.post("/v1/completions", json={**PROMPT, "prompt_logprobs": 1, "n": 2}).json()
    for choice in body["choices"]:
        assert choice["prompt_logprobs"] == [
            None, {str(ord("H")): {"logprob": -1.0, "rank": 1, "decoded_token": "H"}},
            {str(ord("i")): {"logprob": -1.0, "rank": 1, "decoded_token": "i"}}]
    chat = client.post("/v1/chat/completions", json={**CHAT, "prompt_logprobs": 0}).json()
    assert chat["prompt_logprobs"][0] is None and len(chat["prompt_logprobs"]) > 2
    assert "prompt_logprobs" not in chat["choices"][0]


def test_continuous_usage_stats_on_every_chunk(client: TestClient) -> None:
    chunks = sse_chunks(client.post("/v1/chat/completions", json={
        **CHAT, "stream": True,
        "stream_options": {"include_usage": True, "continuous_usage_stats": True}}).text)
    counts = [c["usage"]["completion_tokens"] for c in chunks if c["choices"]]
    assert counts == [1, 2, 3, 4]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    plain = sse_chunks(client.post("/v1/chat/completions", json={
        **CHAT, "stream": True, "stream_options": {"include_usage": True}}).text)
    assert all(c["usage"] is None for c in plain if c["choices"])


def test_continue_final_message_and_add_generation_prompt(client: TestClient,
                                                          engine: ScriptedEngine) -> None:
    turns = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Well,"}]
    ok = client.post("/v1/chat/completions", json={
        **CHAT, "messages": turns, "continue_final_message": True,
        "add_generation_prompt": False})
    assert ok.status_code == 200, ok.text
    assert engine.renders[-1] == (False, True)
    assert client.post("/v1/chat/completions", json={
        **CHAT, "add_generation_prompt": False}).status_code == 200
    assert engine.renders[-1] == (False, False)
    assert_openai_error(client.post("/v1/chat/completions", json={
        **CHAT, "messages": turns, "continue_final_message": True}), 400,
        "continue_final_message")
    assert_openai_error(client.post("/v1/chat/completions", json={
        **CHAT, "continue_final_message": True, "add_generation_prompt": False}), 400,
        "continue_final_message")


async def test_priority_orders_a_users_own_waiting_requests() -> None:
    from app.admission import Admission

    admission = Admission(max_active=1, max_queue=8, max_prefilling=1)
    running = admission.enqueue("u")
    other = admission.enqueue("v", rank=9)
    later, sooner = admission.enqueue("u", rank=5), admission.enqueue("u", rank=-100)
    admission.release(running)
    # Never ahead of another user's request, whatever its priority: "v" came first ...
    assert other.admitted_at is not None and sooner.admitted_at is None
    admission.release(other)
    # ... but among "u"'s own, the lower priority first, though it came later.
    assert sooner.admitted_at is not None and later.admitted_at is None
    admission.release(sooner)
    assert later.admitted_at is not None


def test_priority_reaches_the_admission_queue(client: TestClient, engine: ScriptedEngine) -> None:
    assert client.post("/v1/chat/completions", json={**CHAT, "priority": -3}).status_code == 200
    assert client.post("/v1/completions", json={**PROMPT, "priority": 7}).status_code == 200
    assert len(engine.priorities) == 2  # the engine's own priority stays the fairness rule

