"""What the rest of the service needs from an inference engine, and nothing more.

`VllmEngine` (engine/vllm.py) is the one implementation that ships; tests may script another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StructuredOutput:
    """One structured-output constraint (vLLM's `StructuredOutputsParams`): exactly one of
    these is set. `param` is the request field it came from, for the error that names it."""

    param: str
    json: str | None = None  # a JSON schema, serialized
    json_object: bool | None = None
    regex: str | None = None
    choice: tuple[str, ...] | None = None
    grammar: str | None = None


@dataclass(frozen=True, slots=True)
class LoraAdapter:
    """A LoRA adapter the engine serves (vLLM's `LoRARequest`): its served name, the number
    the engine knows it by, and its peft folder."""

    name: str
    lora_id: int
    path: str


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling parameters a client may set; validated by `app.params` and the OpenAI
    request models (app/api/openai/schemas.py)."""

    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 1.0
    top_k: int = -1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ignore_eos: bool = False
    n: int = 1
    logprobs: int | None = None  # top-k logprobs per token; 0 = only the sampled token's
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, bias): hashable, like the rest
    stop_token_ids: tuple[int, ...] = ()
    min_tokens: int = 0
    bad_words: tuple[str, ...] = ()
    include_stop_str_in_output: bool = False
    prompt_logprobs: int | None = None  # top-k logprobs per prompt token
    structured: StructuredOutput | None = None
    lora: LoraAdapter | None = None  # generate with this adapter on the base weights


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


@dataclass(slots=True)
class Delta:
    """What one engine step produced for one choice of one request."""

    index: int
    text: str
    token_count: int
    # The step's new token ids (a reasoning parser reads them: app/reasoning.py).
    token_ids: Sequence[int] = ()
    # Set on the first delta of a request.
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    # Set on the last delta of a choice: "stop" | "length" | "abort".
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None
    # Seconds the request waited in the engine before it was first scheduled (last delta only).
    queue_s: float | None = None
    # With `prompt_logprobs`, on the first delta: one entry per prompt token (None for the
    # first, which has no logprob), each the token's own and its top-k, by token id.
    prompt_logprobs: list[dict[int, PromptLogprob] | None] | None = None


@dataclass(frozen=True, slots=True)
class PromptLogprob:
    logprob: float
    rank: int | None
    decoded_token: str | None


@dataclass(frozen=True, slots=True)
class EngineStats:
    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: str
    content: str
    extra: dict[str, Any] = field(default_factory=dict)  # more keys of the template's message


class Engine(Protocol):
    model_name: str
    max_model_len: int
    max_num_seqs: int  # the most requests it runs at once (known once started)

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None: ...

    async def restart(self) -> None:
        """Stop this engine, dead (`ready` went False after a start) or alive, its processes
        with it, and start a new one in this process; what was loaded into the old one (LoRA
        adapters) is not loaded again here (app/engine/supervisor.py)."""
        ...

    async def died(self) -> None:
        """Return once this engine, started, has died (its processes gone); never for one that
        lives. Cancelling the wait stops nothing."""
        ...

    async def shutdown(self) -> None: ...

    def stream(
        self, prompt_token_ids: Sequence[int], params: GenerationParams, request_id: str,
        priority: int = 0,
    ) -> AsyncIterator[Delta]:
        """Deltas as the engine produces them. Closing or cancelling the iterator aborts the
        request in the engine: that is how every caller stops a generation. `priority`
        (lower first) orders the engine's own queue where its scheduler uses priorities."""
        ...

    async def render_chat(self, turns: Sequence[ChatTurn], *,
                          add_generation_prompt: bool = True,
                          continue_final_message: bool = False,
                          tools: Sequence[dict[str, Any]] | None = None) -> list[int]:
        """Token ids of the chat rendered with the model's template: ready for generation, or
        (without the generation prompt) the prefix the next turn's prompt will start with;
        `continue_final_message` leaves the last (assistant) message open for the reply;
        `tools` (OpenAI's tool dicts) go to the template's `tools`, a turn's `extra` (e.g.
        `tool_calls`, `tool_call_id`) into its message."""
        ...

    async def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]: ...

    def tool_parser(self, name: str, tools: Sequence[dict[str, Any]] | None) -> Any:
        """A new vLLM tool-call parser `name` over this model's tokenizer, for one reply
        (app/engine/tool_parsers.py); ConfigError if there is none such or it does not fit."""
        ...

    def reasoning_parser(self, name: str) -> Any:
        """A new vLLM reasoning parser `name` over this model's tokenizer, for one reply
        (app/engine/reasoning_parsers.py); ConfigError if there is none such or it does not
        fit."""
        ...

    async def token_strs(self, token_ids: Sequence[int]) -> list[str]:
        """Each token id's own token string (the vocabulary's spelling)."""
        ...

    async def detokenize(self, token_ids: Sequence[int]) -> str: ...

    def check(self, params: GenerationParams) -> None:
        """InvalidRequest naming the field if the engine would refuse `params` (token ids
        outside the vocabulary, a schema or regex its structured-output backend cannot
        compile): before a request is admitted, so the client gets a 400, never a failed
        stream."""
        ...

    def stats(self) -> EngineStats: ...

    async def add_lora(self, adapter: LoraAdapter) -> None:
        """Load `adapter` now (the engine must serve LoRA); InvalidRequest if it cannot."""
        ...

    async def remove_lora(self, lora_id: int) -> None: ...
