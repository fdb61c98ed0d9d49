"""OpenAI's response shapes: streamed chunks and whole responses, built from engine deltas.

The first chunk of a choice carries the assistant role together with the first text: no empty
chunk is sent early, so a client's time to first token is the time to real text."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from app.api.http.errors import error_body
from app.api.openai.reasoning import Reasoning
from app.api.openai.tool_calls import ToolCalls
from app.completion_batch import CompletionBatch
from app.completions import Completion
from app.engine.base import Delta, PromptLogprob, TokenLogprob
from app.errors import StreamchatError

Answer = Completion | CompletionBatch  # one prompt's completion, or several prompts'


@dataclass
class Shape:
    """What every chunk or response of one request shares, and how choices are written."""

    id: str
    created: int
    model: str
    chat: bool
    logprobs: bool
    top_k: int
    continuous_usage: bool = False  # vLLM's: usage on every chunk
    n: int = 1  # choices per prompt
    tools: ToolCalls | None = None  # the reply read as tool calls (`tool_choice` forced)
    reasoning: Reasoning | None = None  # its reasoning apart (STREAMCHAT_REASONING_PARSER)

    def head(self, streaming: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if streaming else "chat.completion") if self.chat \
            else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def logprobs_of(self, items: list[TokenLogprob], offset: int) -> dict[str, Any] | None:
        if not self.logprobs:
            return None
        if self.chat:
            return {"content": [{
                "token": lp.token, "logprob": lp.logprob, "bytes": list(lp.token.encode()),
                "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode())}
                                 for t, v in lp.top[: self.top_k]]} for lp in items]}
        offsets, position = [], offset
        for lp in items:
            offsets.append(position)
            position += len(lp.token)
        return {"tokens": [lp.token for lp in items],
                "token_logprobs": [lp.logprob for lp in items],
                "top_logprobs": [dict(lp.top[: self.top_k]) for lp in items],
                "text_offset": offsets}


def usage(completion: Answer) -> dict[str, Any]:
    counts = completion.usage()
    prompt, generated = counts["prompt_tokens"], counts["completion_tokens"]
    return {"prompt_tokens": prompt, "completion_tokens": generated,
            "total_tokens": prompt + generated,
            "prompt_tokens_details": {"cached_tokens": counts["cached_tokens"]}}


def finish_reason(reason: str | None) -> str | None:
    return None if reason is None else ("length" if reason == "length" else "stop")


async def chunks(completion: Answer, shape: Shape,
                 include_usage: bool) -> AsyncIterator[dict[str, Any]]:
    """The streamed response's chunks, as objects (the transport encodes and frames each once,
    `sse.openai_frames`; a resumable stream's log keeps them); an error ends it with an error
    chunk."""
    head = shape.head(streaming=True)
    if include_usage:
        head["usage"] = None
    spoken: set[int] = set()  # choices whose role was sent
    pending: dict[int, list[TokenLogprob]] = {}  # of tokens whose text is not shown yet
    offsets: dict[int, int] = {}
    # No heartbeat here: the response pings after any silence (app/api/http/sse.py, `ping_s`).
    async with contextlib.aclosing(completion.deltas()) as deltas:
        try:
            async for delta in deltas:
                if delta is None:
                    continue
                finish = finish_reason(delta.finish_reason)
                pieces = _pieces(shape, delta)
                if shape.tools is not None:
                    finish = shape.tools.finish_reason(delta.index, finish)
                if not pieces and finish is None:
                    pending.setdefault(delta.index, []).extend(delta.logprobs or [])
                    continue  # counted; nothing to show yet
                logprobs = [*pending.pop(delta.index, []), *(delta.logprobs or [])]
                for k, piece in enumerate(pieces or [{}]):
                    choice: dict[str, Any] = {"index": delta.index}
                    if shape.chat:
                        if delta.index not in spoken:
                            spoken.add(delta.index)
                            piece = {"role": "assistant", **piece}
                        choice["delta"] = piece
                    else:
                        choice["text"] = delta.text
                    offset = offsets.get(delta.index, 0)
                    choice["logprobs"] = shape.logprobs_of(logprobs if k == 0 else [], offset)
                    offsets[delta.index] = offset + (len(delta.text) if k == 0 else 0)
                    choice["finish_reason"] = finish if k == max(len(pieces) - 1, 0) else None
                    if shape.continuous_usage:
                        yield {**head, "choices": [choice], "usage": usage(completion)}
                        continue
                    yield {**head, "choices": [choice]}
        except StreamchatError as exc:
            yield error_body(exc.message, exc.kind, exc.code)
            return
    if include_usage:
        yield {**head, "choices": [], "usage": usage(completion)}


def _pieces(shape: Shape, delta: Delta) -> list[dict[str, Any]]:
    """What a delta's text shows: chat content, tool-call deltas (each a chunk of its own), or
    a completion's text; with a reasoning parser, its reasoning first, then the rest's."""
    if shape.reasoning is not None:
        return shape.reasoning.pieces(delta, lambda text: _shown(shape, delta.index, text))
    return _shown(shape, delta.index, delta.text)


def _shown(shape: Shape, index: int, text: str) -> list[dict[str, Any]]:
    if shape.tools is not None:
        return shape.tools.feed(index, text)
    if not text:
        return []
    return [{"content": text}] if shape.chat else [{}]


@dataclass
class _Choice:
    parts: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_logprobs: list[dict[str, Any] | None] | None = None


def prompt_logprobs(delta: Delta) -> list[dict[str, Any] | None] | None:
    """vLLM's `prompt_logprobs`: per prompt token, token id -> logprob, rank, decoded_token."""
    if delta.prompt_logprobs is None:
        return None
    return [None if position is None else {str(token_id): _prompt_logprob(lp)
                                           for token_id, lp in position.items()}
            for position in delta.prompt_logprobs]


def _prompt_logprob(lp: PromptLogprob) -> dict[str, Any]:
    return {"logprob": lp.logprob, "rank": lp.rank, "decoded_token": lp.decoded_token}


async def whole(completion: Answer, shape: Shape) -> dict[str, Any]:
    """The non-streamed response."""
    choices: dict[int, _Choice] = {}
    async with contextlib.aclosing(completion.deltas()) as deltas:
        async for delta in deltas:
            if delta is None:
                continue
            choice = choices.setdefault(delta.index, _Choice())
            choice.parts.append(delta.text)
            choice.logprobs.extend(delta.logprobs or [])
            if delta.prompt_logprobs is not None:  # on a prompt's first delta, for its choices
                choice.prompt_logprobs = prompt_logprobs(delta)
            if delta.finish_reason is not None:
                choice.finish_reason = finish_reason(delta.finish_reason)
    out = []
    for index in sorted(choices):
        choice, text = choices[index], "".join(choices[index].parts)
        body: dict[str, Any] = {"index": index}
        reasoning, answer = None, text  # type: tuple[str | None, str | None]
        if shape.reasoning is not None:  # vLLM's: null content when all of it was reasoning
            reasoning, answer = shape.reasoning.split(text)
        if shape.tools is not None:
            body["message"] = shape.tools.message(index, answer or "")
            choice.finish_reason = shape.tools.finish_reason(index, choice.finish_reason)
        elif shape.chat:
            body["message"] = {"role": "assistant", "content": answer}
        else:
            body["text"] = text
        if shape.reasoning is not None:
            body["message"]["reasoning_content"] = reasoning
        body["logprobs"] = shape.logprobs_of(choice.logprobs, 0)
        body["finish_reason"] = choice.finish_reason
        prompt = choices.get(index - index % shape.n)  # the prompt's first choice has them
        if not shape.chat and prompt is not None and prompt.prompt_logprobs is not None:
            body["prompt_logprobs"] = prompt.prompt_logprobs
        out.append(body)
    response = {**shape.head(streaming=False), "choices": out, "usage": usage(completion)}
    if shape.chat and choices and choices[min(choices)].prompt_logprobs is not None:
        response["prompt_logprobs"] = choices[min(choices)].prompt_logprobs  # vLLM's place
    return response
