"""End to end against the real engine: structured output (json_schema, choice, regex), vLLM's
sampling fields taking effect, lists of prompts, echo, prompt logprobs, chat continuation, and
/tokenize + /detokenize, through the official `openai` SDK (sync and async) and httpx."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.e2e_server import LiveServer

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
ASK = [{"role": "user", "content": "Is the sky blue? Answer in JSON."}]
SCHEMA = {"type": "object", "additionalProperties": False, "required": ["answer", "confidence"],
          "properties": {"answer": {"type": "string", "enum": ["yes", "no"]},
                         "confidence": {"type": "integer", "minimum": 0, "maximum": 9}}}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": SCHEMA,
                                                      "strict": True}}


@pytest.fixture
def client(live_server: LiveServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=live_server.url + "/v1", api_key="unused",
                       max_retries=0) as sdk:
        yield sdk


def async_sdk(server: LiveServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_json_schema_output_validates_streaming_and_not(live_server: LiveServer,
                                                        client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=40,
                                           temperature=0, response_format=JSON_SCHEMA)  # type: ignore[arg-type]
    jsonschema.validate(json.loads(reply.choices[0].message.content or ""), SCHEMA)
    stream = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=40,
                                            temperature=0.8, seed=3, stream=True,
                                            response_format=JSON_SCHEMA)  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    jsonschema.validate(json.loads(text), SCHEMA)
    # On completions too, and json_object: any JSON object.
    completion = client.completions.create(model=MODEL, prompt="A JSON verdict:", max_tokens=40,
                                           temperature=0, extra_body={"response_format": JSON_SCHEMA})
    jsonschema.validate(json.loads(completion.choices[0].text), SCHEMA)
    anything = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=30,
                                              temperature=0, response_format={"type": "json_object"})
    if anything.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(anything.choices[0].message.content or ""), dict)


def test_choice_and_regex_async_streaming_and_not(live_server: LiveServer) -> None:
    colours = ["red", "green", "blue"]

    async def run() -> None:
        async with async_sdk(live_server) as client:
            reply = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=5,
                extra_body={"structured_outputs": {"choice": colours}})
            assert reply.choices[0].message.content in colours
            stream = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "A product code?"}],
                max_tokens=12, stream=True, extra_body={"structured_outputs": {
                    "regex": "[0-9]{3}-[a-z]{2}"}})
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert re.fullmatch("[0-9]{3}-[a-z]{2}", text), text
            completion = await client.completions.create(
                model=MODEL, prompt="My favourite colour is", max_tokens=5,
                extra_body={"structured_outputs": {"choice": colours}})
            assert completion.choices[0].text in colours

    asyncio.run(run())


@pytest.mark.parametrize(("extra", "param"), [
    ({"structured_outputs": {"regex": "(unclosed"}}, "structured_outputs.regex"),
    ({"structured_outputs": {"grammar": "root ::= ("}}, "structured_outputs.grammar"),
    ({"response_format": {"type": "json_schema",
                          "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}},
     "response_format.json_schema.json_schema.schema"),
    ({"logit_bias": {"999999999": 5}}, "logit_bias"),
    ({"stop_token_ids": [999999999]}, "stop_token_ids"),
    ({"min_tokens": 50, "max_tokens": 10}, "min_tokens"),
    ({"bad_words": [" "]}, "bad_words"),
])
def test_what_the_engine_refuses_is_a_400_naming_the_field(live_server: LiveServer,
                                                            extra: dict[str, Any],
                                                            param: str) -> None:
    for stream in (False, True):
        response = httpx.post(live_server.url + "/v1/chat/completions", timeout=60, json={
            "model": MODEL, "messages": ASK, "max_tokens": 10, "stream": stream, **extra})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == param


def test_logit_bias_bad_words_and_min_tokens_take_effect(live_server: LiveServer,
                                                         client: openai.OpenAI) -> None:
    tokens = httpx.post(live_server.url + "/tokenize", json={
        "prompt": " zebra", "add_special_tokens": False, "return_token_strs": True}).json()
    zebra = tokens["tokens"][0]
    forced = client.completions.create(model=MODEL, prompt="The capital of France is",
                                       max_tokens=4, temperature=0,
                                       logit_bias={str(zebra): 100})
    assert forced.choices[0].text.startswith(httpx.post(
        live_server.url + "/detokenize", json={"tokens": [zebra] * 4}).json()["prompt"])
    assert forced.usage is not None and forced.usage.completion_tokens == 4

    plain = client.completions.create(model=MODEL, prompt="The capital of France is",
                                      max_tokens=6, temperature=0).choices[0].text
    word = plain.split()[0]
    banned = client.completions.create(model=MODEL, prompt="The capital of France is",
                                       max_tokens=6, temperature=0,
                                       extra_body={"bad_words": [word, " " + word]})
    assert word not in banned.choices[0].text, (plain, banned.choices[0].text)

    # stop_token_ids ends a list at its next comma; min_tokens keeps it going past it.
    comma = httpx.post(live_server.url + "/tokenize", json={
        "prompt": ",", "add_special_tokens": False}).json()["tokens"]
    counting = {"model": MODEL, "prompt": "One, two, three, four,", "max_tokens": 20,
                "temperature": 0, "extra_body": {"stop_token_ids": comma}}
    stopped = client.completions.create(**counting)  # type: ignore[call-overload]
    assert stopped.usage.completion_tokens <= 4, stopped.choices[0].text
    counting["extra_body"] = {"stop_token_ids": comma, "min_tokens": 10}
    at_least = client.completions.create(**counting)  # type: ignore[call-overload]
    assert at_least.usage.completion_tokens >= 10, at_least.choices[0].text


def test_tokenize_detokenize_round_trip(live_server: LiveServer,
                                        client: openai.OpenAI) -> None:
    text = "Hello, world! Ünïcode ✓ and\nnew lines."
    body = httpx.post(live_server.url + "/tokenize", json={
        "model": MODEL, "prompt": text, "return_token_strs": True}).json()
    assert body["count"] == len(body["tokens"]) == len(body["token_strs"]) > 5
    assert body["max_model_len"] > 0
    back = httpx.post(live_server.url + "/detokenize", json={"tokens": body["tokens"]}).json()
    assert back["prompt"].endswith(text)
    # A chat's count is the prompt a chat completion of it is charged for.
    chat = httpx.post(live_server.url + "/tokenize", json={"messages": ASK}).json()
    reply = client.chat.completions.create(model=MODEL, messages=ASK, max_tokens=1)
    assert reply.usage is not None and reply.usage.prompt_tokens == chat["count"]


def test_prompts_echo_prompt_logprobs_and_continuation(live_server: LiveServer,
                                                       client: openai.OpenAI) -> None:
    many = client.completions.create(model=MODEL, prompt=["One, two,", "Red, green,"],
                                     max_tokens=3, n=2, seed=1, echo=True)
    assert [c.index for c in many.choices] == [0, 1, 2, 3]
    assert many.choices[1].text.startswith("One, two,")
    assert many.choices[2].text.startswith("Red, green,")
    scored = client.completions.create(model=MODEL, prompt="The capital of France is",
                                       max_tokens=1, extra_body={"prompt_logprobs": 1})
    entries = scored.choices[0].model_extra["prompt_logprobs"]  # type: ignore[index]
    assert entries[0] is None and len(entries) == scored.usage.prompt_tokens  # type: ignore[union-attr]
    assert all(lp["logprob"] <= 0 for entry in entries[1:] for lp in entry.values())
    going_on = client.chat.completions.create(
        model=MODEL, max_tokens=5, temperature=0,
        messages=[*ASK, {"role": "assistant", "content": '{"answer": "'}],
        extra_body={"continue_final_message": True, "add_generation_prompt": False,
                    "structured_outputs": {"regex": "(yes|no)\""}})
    assert going_on.choices[0].message.content in ('yes"', 'no"')


def test_continuous_usage_and_models(live_server: LiveServer,
                                     client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=6, stream=True, temperature=0,
        stream_options={"include_usage": True, "continuous_usage_stats": True})  # type: ignore[typeddict-unknown-key]
    counts = [c.usage.completion_tokens for c in stream if c.choices and c.usage]
    assert counts and counts == sorted(counts) and counts[-1] <= 6
    (model, *_) = client.models.list().data
    extra = model.model_extra or {}
    assert extra["max_model_len"] > 0 and extra["parent"] is None and extra["permission"]
