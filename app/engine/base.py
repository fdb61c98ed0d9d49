"""What the rest of the service needs from an inference engine, and nothing more.

`VllmEngine` (engine/vllm.py) is the one implementation that ships; tests may script another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling parameters a client may set; validated by `app.params`."""

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
    # Set on the first delta of a request.
    prompt_tokens: int | None = None
    cached_tokens: int | None = None
    # Set on the last delta of a choice: "stop" | "length" | "abort".
    finish_reason: str | None = None
    logprobs: list[TokenLogprob] | None = None
    # Seconds the request waited in the engine before it was first scheduled (last delta only).
    queue_s: float | None = None


@dataclass(frozen=True, slots=True)
class EngineStats:
    running: int = 0
    waiting: int = 0
    kv_cache_usage: float = 0.0


@dataclass(frozen=True, slots=True)
class ChatTurn:
    role: str
    content: str
    extra: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    model_name: str
    max_model_len: int
    max_num_seqs: int  # the most requests it runs at once (known once started)

    @property
    def ready(self) -> bool: ...

    async def start(self) -> None: ...

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
                          add_generation_prompt: bool = True) -> list[int]:
        """Token ids of the chat rendered with the model's template: ready for generation, or
        (without the generation prompt) the prefix the next turn's prompt will start with."""
        ...

    async def tokenize(self, text: str) -> list[int]: ...

    def stats(self) -> EngineStats: ...
