"""The real engine: vLLM's `AsyncLLM`, in this process, its engine core in a child process.

Facts this module relies on are in docs/VLLM-CPU.md: on the CPU backend the engine runs
eagerly (start in ~20 s instead of ~100 s), `gpu_memory_utilization` means host memory, and the
KV cache size comes from `VLLM_CPU_KVCACHE_SPACE`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.engine import reasoning_parsers, tool_parsers, vllm_params
from app.engine.base import ChatTurn, Delta, EngineStats, GenerationParams, LoraAdapter
from app.engine.reaper import EngineReaper, Spawned
from app.engine.vllm_stats import SchedulerStatsLogger
from app.errors import ConfigError, EngineFailure, InvalidRequest, NotReady

log = logging.getLogger("streamchat.engine")


class VllmEngine:
    """`Engine` over vLLM's AsyncLLM. Build with `app.engine.config.create_engine`, then
    `await start()`."""

    def __init__(self, engine_args: Any, model_name: str) -> None:
        self._engine_args = engine_args
        self.model_name = model_name
        self.max_model_len = 0
        self.max_num_seqs = 0  # known once started: the most requests it runs at once
        self._priority_scheduling = False
        self._llm: Any = None
        self._tokenizer: Any = None
        # Every tokenizer call runs here: off the event loop, and never two at once.
        self._tokenizer_thread = ThreadPoolExecutor(max_workers=1,
                                                    thread_name_prefix="streamchat-tokenizer")
        self._ready = False
        # Set once the engine runs, so shutdown() is safe after a failed start.
        self._reaper: EngineReaper | None = None

    @property
    def ready(self) -> bool:
        return self._ready and self._llm is not None and not self._llm.errored

    async def start(self) -> None:
        from vllm.v1.engine.async_llm import AsyncLLM

        started = time.monotonic()
        log.info("engine: starting vLLM for %s", self._engine_args.model)
        spawned = Spawned()  # the engine's processes, not a fine-tuning run's
        watch = asyncio.create_task(spawned.watch())
        try:
            # Building the engine blocks for a while (child process, weights); keep the loop free
            # so /health answers meanwhile.
            self._llm = await asyncio.to_thread(
                AsyncLLM.from_engine_args,
                self._engine_args,
                stat_loggers=[SchedulerStatsLogger],  # type: ignore[list-item]  # duck-typed
            )
        except Exception as exc:  # vLLM raises many types here; the user needs the message.
            spawned.kill()
            raise ConfigError(f"the engine failed to start: {exc}") from exc
        finally:
            watch.cancel()
        # Guard vLLM's processes at once: they must not outlive a service killed from here on.
        self._reaper = EngineReaper.guard(spawned.look())
        if self._tokenizer is None:  # the same model after a restart: the same tokenizer
            self._tokenizer = await asyncio.to_thread(self._load_tokenizer)
        self.max_model_len = int(self._llm.model_config.max_model_len)
        scheduler = self._llm.vllm_config.scheduler_config
        self.max_num_seqs = int(scheduler.max_num_seqs)
        self._priority_scheduling = str(scheduler.policy) == "priority"
        # vLLM starts its output handler at once when built in a running loop (built in a
        # thread here, it would wait for the first request): its end is how died() knows.
        self._llm._run_output_handler()
        self._ready = True
        log.info(
            "engine: ready in %.1f s (max_model_len=%d, max_num_seqs=%d, "
            "max_num_batched_tokens=%d, scheduling %s)", time.monotonic() - started,
            self.max_model_len, self.max_num_seqs, scheduler.max_num_batched_tokens,
            scheduler.policy)

    async def restart(self) -> None:
        """A new AsyncLLM in place of a dead one (app/engine/supervisor.py decides when)."""
        self._stop()
        await self.start()

    async def died(self) -> None:
        # The handler ends only when the core is gone: a thread of vLLM's watching the core
        # process sets it dead and cancels what the handler reads (EngineDeadError).
        handler = self._llm.output_handler
        await asyncio.wait([handler])  # cancelling this wait leaves vLLM's task alone

    def _load_tokenizer(self) -> Any:
        """Our own copy of the model's tokenizer, used from one thread only.

        vLLM's `get_tokenizer()` returns a pool that deep-copies the whole tokenizer whenever
        two threads use it at once; under load that copying took a fifth of this process's CPU
        (py-spy, 16 concurrent chats). One private tokenizer on one thread never copies."""
        from transformers import AutoTokenizer

        config = self._llm.model_config
        return AutoTokenizer.from_pretrained(
            config.tokenizer, revision=config.tokenizer_revision,
            trust_remote_code=config.trust_remote_code)

    async def shutdown(self) -> None:
        self._tokenizer_thread.shutdown(wait=False, cancel_futures=True)
        self._stop()

    def _stop(self) -> None:
        """Stop this AsyncLLM, dead or alive; safe to call twice, and after a failed start."""
        self._ready = False
        if self._llm is not None:
            self._llm.shutdown()
            self._llm = None
        # Only after vLLM's own shutdown: the reaper kills whatever is left, then exits.
        if self._reaper is not None:
            self._reaper.release()
            self._reaper = None

    async def render_chat(self, turns: Sequence[ChatTurn], *,
                          add_generation_prompt: bool = True,
                          continue_final_message: bool = False,
                          tools: Sequence[dict[str, Any]] | None = None) -> list[int]:
        messages = [{"role": t.role, "content": t.content, **t.extra} for t in turns]
        # Long histories take milliseconds to tokenize: keep them off the event loop.
        return await self._on_tokenizer_thread(self._render, messages, add_generation_prompt,
                                               continue_final_message, tools)

    def _render(self, messages: list[dict[str, Any]], add_generation_prompt: bool,
                continue_final_message: bool,
                tools: Sequence[dict[str, Any]] | None) -> list[int]:
        text = self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            tools=list(tools) if tools else None)
        return list(self._tokenizer.encode(text, add_special_tokens=False))

    def tool_parser(self, name: str, tools: Sequence[dict[str, Any]] | None) -> Any:
        return tool_parsers.new_parser(name, self._tokenizer, tools)

    def reasoning_parser(self, name: str) -> Any:
        return reasoning_parsers.new_parser(name, self._tokenizer)

    async def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return list(await self._on_tokenizer_thread(
            lambda: self._tokenizer.encode(text, add_special_tokens=add_special_tokens)))

    async def token_strs(self, token_ids: Sequence[int]) -> list[str]:
        return list(await self._on_tokenizer_thread(
            self._tokenizer.convert_ids_to_tokens, list(token_ids)))

    async def detokenize(self, token_ids: Sequence[int]) -> str:
        if any(t >= len(self._tokenizer) for t in token_ids):
            raise InvalidRequest(f"'tokens': token ids must be below the vocabulary size "
                                 f"({len(self._tokenizer)})", param="tokens")
        return str(await self._on_tokenizer_thread(self._tokenizer.decode, list(token_ids)))

    async def _on_tokenizer_thread(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._tokenizer_thread, call, *args)

    def check(self, params: GenerationParams) -> None:
        if not self.ready:
            raise NotReady("the engine is not ready")
        vllm_params.check(self._llm, params)

    def stats(self) -> EngineStats:
        # The scheduler's counts arrive with engine steps, so an idle engine never reports its
        # last request gone: the front end's own count of unfinished requests settles that.
        if self._llm is None or self._llm.output_processor.get_num_unfinished_requests() == 0:
            return EngineStats(kv_cache_usage=SchedulerStatsLogger.latest.kv_cache_usage)
        return SchedulerStatsLogger.latest

    async def add_lora(self, adapter: LoraAdapter) -> None:
        if not self.ready:
            raise NotReady("the engine is not ready")
        try:
            loaded = await self._llm.add_lora(vllm_params.lora_request(adapter))
        except Exception as exc:  # vLLM says why: a missing file, a rank over max_lora_rank
            raise InvalidRequest(f"could not load the LoRA adapter at {adapter.path}: {exc}",
                                 param="lora_path") from None
        if not loaded:
            raise InvalidRequest(f"the engine did not load the LoRA adapter at {adapter.path}",
                                 param="lora_path")

    async def remove_lora(self, lora_id: int) -> None:
        if self.ready:
            await self._llm.remove_lora(lora_id)

    async def stream(
        self, prompt_token_ids: Sequence[int], params: GenerationParams, request_id: str,
        priority: int = 0,
    ) -> AsyncIterator[Delta]:
        if not self.ready:
            raise NotReady("the engine is not ready")
        sampling = vllm_params.sampling_params(params)
        prompt = {"prompt_token_ids": list(prompt_token_ids)}
        first = True
        try:
            # Cancelling this generator (the consumer's task) makes vLLM abort the request.
            # vLLM refuses a priority unless its scheduler orders by priority.
            extra: dict[str, Any] = {"priority": priority} if self._priority_scheduling else {}
            if params.lora is not None:
                extra["lora_request"] = vllm_params.lora_request(params.lora)
            async for out in self._llm.generate(prompt, sampling, request_id, **extra):
                queue_s = vllm_params.queue_seconds(out.metrics) if out.finished else None
                for choice in out.outputs:
                    delta = Delta(
                        index=choice.index,
                        text=choice.text,
                        token_count=len(choice.token_ids),
                        token_ids=choice.token_ids,
                        finish_reason=choice.finish_reason,
                        logprobs=vllm_params.token_logprobs(choice)
                        if params.logprobs is not None else None,
                        queue_s=queue_s,
                    )
                    if first:
                        delta.prompt_tokens = len(out.prompt_token_ids or prompt_token_ids)
                        delta.cached_tokens = int(out.num_cached_tokens or 0)
                        if out.prompt_logprobs is not None:
                            delta.prompt_logprobs = vllm_params.prompt_logprobs(out.prompt_logprobs)
                        first = False
                    yield delta
        except (asyncio.CancelledError, GeneratorExit):
            raise
        except NotReady:
            raise
        except Exception as exc:
            # A request the engine refused that check() let through is still the client's.
            if first and (refused := vllm_params.invalid(exc, params)) is not None:
                raise refused from None
            if self._llm is not None and self._llm.errored:
                self._ready = False
            raise EngineFailure(f"generation failed: {exc}") from exc
