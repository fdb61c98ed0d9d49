"""Several prompts as one completion (app/completion_batch.py): each prompt its own generation,
choices numbered prompt_index * n + i, `echo` once at the start of each choice, usage summed,
and the parts started, read, left and refused together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest

from app.admission import Admission
from app.completion_batch import CompletionBatch, Prompt, complete
from app.completions import Caller, CompletionService
from app.engine.base import Delta, GenerationParams
from app.errors import ContextTooLong, EngineFailure, QueueFull
from app.generation import Generation
from app.lifecycle import Lifecycle
from tests.fakes import ScriptedEngine
from tests.waiting import until

SCRIPT = "Hello there!"  # what the scripted engine says, to every prompt and every choice


def service_for(engine: ScriptedEngine, *, active: int = 8, queue: int = 8) -> CompletionService:
    return CompletionService(engine, Lifecycle(engine),
                             Admission(max_active=active, max_queue=queue, max_prefilling=active),
                             default_max_tokens=16)


async def started(service: CompletionService, prompts: Sequence[Prompt], n: int = 1, *,
                  echo: bool = False) -> CompletionBatch:
    batch = await complete(service, prompts, GenerationParams(n=n), None,
                           Caller("cmpl-1", 0.0), echo=echo)
    assert isinstance(batch, CompletionBatch)
    return batch


async def read(batch: CompletionBatch) -> list[Delta]:
    return [delta async for delta in batch.deltas() if delta is not None]


def texts(deltas: list[Delta]) -> dict[int, str]:
    out: dict[int, str] = {}
    for delta in deltas:
        out[delta.index] = out.get(delta.index, "") + delta.text
    return out


def idle(service: CompletionService) -> bool:
    """Every part ended: none counted by the lifecycle, none holding a place at the gate."""
    admission = service.gate.admission
    return service.lifecycle.generations == 0 and admission.active == 0 and admission.waiting == 0


async def test_choices_are_numbered_prompt_index_times_n_plus_i() -> None:
    service = service_for(ScriptedEngine())
    # "a" is 2 prompt tokens, "bbb" 4 (the scripted tokenizer: one per char, and a BOS).
    deltas = await read(await started(service, ["a", "bbb"], n=2))
    assert texts(deltas) == {0: SCRIPT, 1: SCRIPT, 2: SCRIPT, 3: SCRIPT}
    firsts = {d.index: d.prompt_tokens for d in deltas if d.prompt_tokens is not None}
    assert firsts == {0: 2, 2: 4}  # each prompt's first choice: prompt 0, then prompt 1
    ends = sorted((d.index, d.finish_reason) for d in deltas if d.finish_reason is not None)
    assert ends == [(0, "stop"), (1, "stop"), (2, "stop"), (3, "stop")]
    assert idle(service)


async def test_echo_starts_each_choice_with_its_prompts_text_once() -> None:
    service = service_for(ScriptedEngine())
    deltas = await read(await started(service, ["Say ", [1, 72, 105, 32]], n=2, echo=True))
    # Token ids are echoed as their text ("Hi ": the BOS has none).
    assert texts(deltas) == {0: "Say " + SCRIPT, 1: "Say " + SCRIPT,
                             2: "Hi " + SCRIPT, 3: "Hi " + SCRIPT}
    firsts: dict[int, str] = {}
    for delta in deltas:
        firsts.setdefault(delta.index, delta.text)
    assert firsts == {0: "Say Hel", 1: "Say Hel", 2: "Hi Hel", 3: "Hi Hel"}


async def test_one_prompt_is_a_batch_only_with_echo() -> None:
    service = service_for(ScriptedEngine())
    params, caller = GenerationParams(), Caller("cmpl-1", 0.0)
    plain = await complete(service, ["one"], params, None, caller)
    assert isinstance(plain, Generation)  # answered as it is
    await plain.release()
    echoed = await started(service, ["one "], echo=True)
    assert texts(await read(echoed)) == {0: "one " + SCRIPT}
    assert idle(service)


class CachingEngine(ScriptedEngine):
    """Reports all but the first token of each prompt as found in the prefix cache."""

    async def stream(self, *args: object, **kwargs: object) -> AsyncIterator[Delta]:  # type: ignore[override]
        async for delta in super().stream(*args, **kwargs):  # type: ignore[arg-type]
            if delta.prompt_tokens is not None:
                delta.cached_tokens = delta.prompt_tokens - 1
            yield delta


async def test_usage_is_every_prompts_summed() -> None:
    service = service_for(CachingEngine())
    batch = await started(service, ["a", "bbb"], n=2)
    await read(batch)
    # 4 tokens a choice, 2 choices a prompt; prompts of 2 and 4 tokens, all but one cached.
    assert batch.usage() == {"prompt_tokens": 6, "completion_tokens": 16, "cached_tokens": 4}


async def test_a_reader_that_leaves_while_waiting_takes_every_part_with_it() -> None:
    engine = ScriptedEngine()
    engine.proceed = asyncio.Event()  # never set: both prompts held in prefill
    service = service_for(engine)
    batch = await started(service, ["a", "bbb", "cc"])
    reader = asyncio.create_task(read(batch))
    await until(lambda: len(engine.prompts) == 3)  # every part in the engine
    reader.cancel()  # the HTTP server's way: its client went away
    with pytest.raises(asyncio.CancelledError):
        async with asyncio.timeout(5):  # a part left running would hold its reader
            await reader
    assert engine.aborted == ["cmpl-1"] * 3 and not engine.running
    assert idle(service)


async def test_a_reader_that_stops_reading_takes_every_part_with_it() -> None:
    engine = ScriptedEngine(tokens=["w"] * 1000, delay_s=0.001)  # paced: mid-stream for 1 s
    service = service_for(engine)
    batch = await started(service, ["a", "bbb"])
    async with asyncio.timeout(5), contextlib.aclosing(batch.deltas()) as deltas:
        async for delta in deltas:
            if delta is not None:
                break  # e.g. a streamed response whose client left
    assert engine.aborted == ["cmpl-1"] * 2 and engine.finished == []
    assert idle(service)


class FailingOn(ScriptedEngine):
    """Fails the prompt of `length` tokens at once; holds every other one in prefill."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.length = length
        self.proceed = asyncio.Event()

    async def stream(self, prompt_token_ids: Sequence[int], *args: object,  # type: ignore[override]
                     **kwargs: object) -> AsyncIterator[Delta]:
        if len(prompt_token_ids) == self.length:
            raise EngineFailure("the engine died")
        async for delta in super().stream(prompt_token_ids, *args, **kwargs):  # type: ignore[arg-type]
            yield delta


async def test_a_part_that_fails_fails_the_batch_and_stops_the_others() -> None:
    engine = FailingOn(length=4)
    service = service_for(engine)
    batch = await started(service, ["a", "bbb"])
    with pytest.raises(EngineFailure):
        await read(batch)
    assert engine.aborted == ["cmpl-1"]  # "a", held: stopped
    assert idle(service)


@pytest.mark.parametrize(("prompts", "refused"), [
    (["a", "x" * 300], ContextTooLong),  # past the context: a 400 (it had a place)
    (["a", "b", "c"], QueueFull),  # one place and one in the queue: a 429
])
async def test_a_later_prompt_refused_releases_the_earlier_ones(
        prompts: list[str], refused: type[Exception]) -> None:
    engine = ScriptedEngine()
    service = service_for(engine, active=1, queue=1)
    with pytest.raises(refused):
        await complete(service, prompts, GenerationParams(), None, Caller("cmpl-1", 0.0))
    assert idle(service)
    assert engine.prompts == []  # nothing reached the engine
    again = await started(service, ["a", "b"])  # their places are free again
    assert texts(await read(again)) == {0: SCRIPT, 1: SCRIPT}
