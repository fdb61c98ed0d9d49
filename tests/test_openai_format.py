"""OpenAI's response shapes (app/api/openai/format.py), built from scripted deltas: a streamed
response's chunk objects (the role with a choice's first text, no empty early chunk, the finish
on the last piece, usage, an engine error as one error chunk), the whole response, and the
logprobs of chat and of text completions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from app.api.openai.format import Shape, chunks, finish_reason, whole
from app.api.openai.reasoning import Reasoning
from app.engine.base import Delta, TokenLogprob
from app.errors import EngineFailure
from app.reasoning import ReasoningSplit
from tests.fakes import ScriptedEngine, token_ids

HEAD = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "m"}
USAGE = {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6,
         "prompt_tokens_details": {"cached_tokens": 1}}


class Script:
    """A completion whose deltas are given: counted as they go (as its meter counts them),
    then, if given, an error; `closed` once its reader let go of it."""

    def __init__(self, deltas: Sequence[Delta], error: Exception | None = None) -> None:
        self._deltas = deltas
        self._error = error
        self.generated = 0
        self.closed = False

    async def deltas(self) -> AsyncIterator[Delta | None]:
        try:
            for delta in self._deltas:
                self.generated += delta.token_count
                yield delta
            if self._error is not None:
                raise self._error
        finally:
            self.closed = True

    def usage(self) -> dict[str, int]:
        return {"prompt_tokens": 3, "completion_tokens": self.generated, "cached_tokens": 1}


def shape(chat: bool = True, **fields: Any) -> Shape:
    return Shape(**{"id": "chatcmpl-1", "created": 7, "model": "m", "chat": chat,
                    "logprobs": False, "top_k": 0, **fields})


async def streamed(script: Script, shape: Shape, include_usage: bool = False
                   ) -> list[dict[str, Any]]:
    return [c async for c in chunks(script, shape, include_usage)]  # type: ignore[arg-type]


def choices(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c["choices"][0] for c in out if c.get("choices")]


HELLO = [Delta(0, "Hel", 1), Delta(0, "lo", 1), Delta(0, "!", 1, finish_reason="stop")]


async def test_a_choices_first_chunk_has_the_role_and_its_first_text() -> None:
    out = await streamed(Script(HELLO), shape())
    assert out == [
        {**HEAD, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"},
                              "logprobs": None, "finish_reason": None}]},
        {**HEAD, "choices": [{"index": 0, "delta": {"content": "lo"},
                              "logprobs": None, "finish_reason": None}]},
        {**HEAD, "choices": [{"index": 0, "delta": {"content": "!"},
                              "logprobs": None, "finish_reason": "stop"}]}]


async def test_no_chunk_goes_out_before_there_is_text() -> None:
    """A step with no text yet (a token that is part of a character, a special token) makes
    no chunk: the first chunk a client gets is real text."""
    script = Script([Delta(0, "", 1), Delta(1, "", 1), Delta(1, "B", 1), Delta(0, "A", 1),
                     Delta(0, "", 1, finish_reason="length"), Delta(1, "b", 1, finish_reason="stop")])
    out = choices(await streamed(script, shape(n=2)))
    assert [(c["index"], c["delta"], c["finish_reason"]) for c in out] == [
        (1, {"role": "assistant", "content": "B"}, None),
        (0, {"role": "assistant", "content": "A"}, None),
        (0, {}, "length"),  # the end of a choice is its own chunk when it has no text
        (1, {"content": "b"}, "stop")]


async def test_a_completions_chunks_carry_its_text() -> None:
    out = await streamed(Script(HELLO), shape(chat=False))
    assert {c["object"] for c in out} == {"text_completion"}
    assert [(c["text"], c["finish_reason"]) for c in choices(out)] == [
        ("Hel", None), ("lo", None), ("!", "stop")]


async def test_the_finish_reason_is_on_a_deltas_last_piece() -> None:
    """One step that ends the reasoning and starts the answer is two chunks; the role goes on
    the first, the finish on the last."""
    engine = ScriptedEngine()
    reasoning = Reasoning(lambda: ReasoningSplit(engine.reasoning_parser("qwen3"), [1, 2, 3]))
    text = "plan</think>ans"
    script = Script([Delta(0, text, 3, token_ids=token_ids(text), finish_reason="stop")])
    out = choices(await streamed(script, shape(reasoning=reasoning)))
    assert [(c["delta"], c["finish_reason"]) for c in out] == [
        ({"role": "assistant", "reasoning_content": "plan"}, None),
        ({"content": "ans"}, "stop")]


def test_finish_reasons_are_openais() -> None:
    assert [finish_reason(r) for r in (None, "stop", "length", "abort")] == [
        None, "stop", "length", "stop"]


async def test_include_usage_adds_a_usage_chunk_at_the_end() -> None:
    out = await streamed(Script(HELLO), shape(), include_usage=True)
    assert all(c["usage"] is None for c in out[:-1])  # OpenAI's: null on every other chunk
    assert out[-1] == {**HEAD, "choices": [], "usage": USAGE}


async def test_continuous_usage_is_on_every_chunk_as_it_grows() -> None:
    out = await streamed(Script(HELLO), shape(continuous_usage=True))
    assert [c["usage"]["completion_tokens"] for c in out] == [1, 2, 3]
    assert out[-1]["usage"] == USAGE


async def test_an_engine_error_is_one_error_chunk_and_the_end() -> None:
    script = Script(HELLO[:1], error=EngineFailure("the engine died"))
    out = await streamed(script, shape(), include_usage=True)
    assert len(out) == 2 and out[0]["choices"][0]["delta"]["content"] == "Hel"
    assert out[1] == {"error": {"message": "the engine died", "type": "server_error",
                                "code": "engine_error", "param": None}}  # no usage after it
    assert script.closed


async def test_a_reader_that_stops_closes_the_completion() -> None:
    script = Script(HELLO)
    stream = chunks(script, shape(), False)  # type: ignore[arg-type]
    await anext(stream)
    await stream.aclose()  # type: ignore[attr-defined]
    assert script.closed and script.generated == 1  # not read on to the end


async def test_whole_chat_response() -> None:
    script = Script([Delta(1, "B", 1), Delta(0, "A", 1), Delta(0, "a", 1, finish_reason="length"),
                     Delta(1, "", 1, finish_reason="stop")])
    response = await whole(script, shape(n=2))  # type: ignore[arg-type]
    assert response == {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 7, "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Aa"}, "logprobs": None,
             "finish_reason": "length"},
            {"index": 1, "message": {"role": "assistant", "content": "B"}, "logprobs": None,
             "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                  "prompt_tokens_details": {"cached_tokens": 1}}}


async def test_whole_text_completion() -> None:
    response = await whole(Script(HELLO), shape(chat=False))  # type: ignore[arg-type]
    assert response["object"] == "text_completion"
    assert response["choices"] == [{"index": 0, "text": "Hello!", "logprobs": None,
                                     "finish_reason": "stop"}]
    assert response["usage"] == USAGE


def lp(token: str) -> TokenLogprob:
    return TokenLogprob(token, -0.5, ((token, -0.5), ("zz", -1.5), ("yy", -2.0)))


def test_chat_logprobs_shape() -> None:
    assert shape(logprobs=True, top_k=2).logprobs_of([lp("Hé")], 0) == {"content": [{
        "token": "Hé", "logprob": -0.5, "bytes": [72, 195, 169],
        "top_logprobs": [{"token": "Hé", "logprob": -0.5, "bytes": [72, 195, 169]},
                         {"token": "zz", "logprob": -1.5, "bytes": [122, 122]}]}]}
    assert shape(logprobs=False).logprobs_of([lp("a")], 0) is None


def test_text_logprobs_shape() -> None:
    assert shape(chat=False, logprobs=True, top_k=1).logprobs_of([lp("He"), lp("llo")], 4) == {
        "tokens": ["He", "llo"], "token_logprobs": [-0.5, -0.5],
        "top_logprobs": [{"He": -0.5}, {"llo": -0.5}], "text_offset": [4, 6]}


async def test_streamed_logprobs_wait_for_text_and_offsets_run_on() -> None:
    script = Script([Delta(0, "", 1, logprobs=[lp("\xe2")]), Delta(0, "ab", 1, logprobs=[lp("ab")]),
                     Delta(0, "c", 1, logprobs=[lp("c")], finish_reason="stop")])
    chat = choices(await streamed(script, shape(logprobs=True, top_k=0)))
    # The first token's logprob goes out with the first text, in the same chunk.
    assert [[t["token"] for t in c["logprobs"]["content"]] for c in chat] == [["\xe2", "ab"], ["c"]]
    script = Script([Delta(0, "ab", 1, logprobs=[lp("ab")]),
                     Delta(0, "c", 1, logprobs=[lp("c")], finish_reason="stop")])
    text = choices(await streamed(script, shape(chat=False, logprobs=True, top_k=0)))
    assert [c["logprobs"]["text_offset"] for c in text] == [[0], [2]]
