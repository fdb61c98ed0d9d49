"""The official `openai` SDK, sync and async, streaming and not, sending vLLM's request
surface and structured output to the app with a scripted engine: what it sends reaches the
engine, and what comes back parses as the SDK's own types."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from starlette.testclient import TestClient

from app.engine.base import StructuredOutput
from app.main import create_app
from app.settings import Settings
from tests.conftest import Start
from tests.fakes import ScriptedEngine
from tests.sdk_clients import async_sdk_for, sdk_for

MESSAGES: Any = [{"role": "user", "content": "Hi"}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}}
EXTRAS = {"min_p": 0.1, "repetition_penalty": 1.2, "min_tokens": 1, "bad_words": ["x"],
          "stop_token_ids": [7], "include_stop_str_in_output": True, "priority": 2}


@pytest.fixture
def sdk(engine: ScriptedEngine) -> Iterator[openai.OpenAI]:
    settings = Settings(max_n=4, default_max_tokens=16)
    with TestClient(create_app(settings, engine)) as test_client:
        yield sdk_for(test_client)


def _assert_extras_reached(engine: ScriptedEngine) -> None:
    params = engine.params[-1]
    assert (params.min_p, params.repetition_penalty, params.min_tokens, params.bad_words,
            params.stop_token_ids, params.include_stop_str_in_output) == (
        0.1, 1.2, 1, ("x",), (7,), True)


def test_sync_chat_with_vllms_fields_streaming_and_not(sdk: openai.OpenAI,
                                                       engine: ScriptedEngine) -> None:
    reply = sdk.chat.completions.create(
        model="scripted", messages=MESSAGES, logit_bias={"5": 10},
        response_format={"type": "json_schema",
                         "json_schema": {"name": "a", "schema": SCHEMA, "strict": True}},
        extra_body=EXTRAS)
    assert reply.choices[0].message.content == "Hello there!"
    _assert_extras_reached(engine)
    assert engine.params[-1].logit_bias == ((5, 10.0),)
    assert engine.params[-1].structured is not None
    assert engine.params[-1].structured.param == "response_format.json_schema.schema"
    stream = sdk.chat.completions.create(
        model="scripted", messages=MESSAGES, stream=True,
        stream_options={"include_usage": True, "continuous_usage_stats": True},  # type: ignore[typeddict-unknown-key]
        extra_body={**EXTRAS, "structured_outputs": {"choice": ["a", "b"]}})
    chunks = list(stream)
    assert [c.usage.completion_tokens for c in chunks if c.usage] == [1, 2, 3, 4, 4]
    assert engine.params[-1].structured == StructuredOutput("structured_outputs.choice",
                                                            choice=("a", "b"))
    _assert_extras_reached(engine)


def test_sync_completions_prompts_echo_and_prompt_logprobs(sdk: openai.OpenAI) -> None:
    many = sdk.completions.create(model="scripted", prompt=["Hi", "Yo"], n=2, echo=True)
    assert [(c.index, c.text[:2]) for c in many.choices] == [
        (0, "Hi"), (1, "Hi"), (2, "Yo"), (3, "Yo")]
    scored = sdk.completions.create(model="scripted", prompt="Hi",
                                    extra_body={"prompt_logprobs": 0})
    assert (scored.choices[0].model_extra or {})["prompt_logprobs"][0] is None
    with pytest.raises(openai.BadRequestError) as info:
        sdk.completions.create(model="scripted", prompt="Hi",
                               extra_body={"structured_outputs": {"regex": 5}})
    assert info.value.body["param"] == "structured_outputs.regex"  # type: ignore[index]


async def test_async_sdk_streaming_and_not(running: Start) -> None:
    engine = ScriptedEngine()
    app = await running(Settings(default_max_tokens=16), engine)
    async with async_sdk_for(app) as sdk:
        reply = await sdk.chat.completions.create(
            model="scripted", messages=MESSAGES, response_format={"type": "json_object"},
            extra_body=EXTRAS)
        assert reply.choices[0].message.content == "Hello there!"
        _assert_extras_reached(engine)
        assert engine.params[-1].structured == StructuredOutput("response_format",
                                                                json_object=True)
        stream = await sdk.completions.create(
            model="scripted", prompt=["a", "b"], stream=True,
            extra_body={**EXTRAS, "structured_outputs": {"regex": "[a-z]+"}})
        indexes = {c.choices[0].index async for c in stream}
        assert indexes == {0, 1}
        _assert_extras_reached(engine)
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.chat.completions.create(model="scripted", messages=MESSAGES,
                                              extra_body={"min_p": 2})
        assert info.value.body["param"] == "min_p"  # type: ignore[index]
