"""`GenerationParams` as vLLM's `SamplingParams` (an adapter as its `LoRARequest`), vLLM's own
checks of them as the contract's error, and what vLLM returns (logprobs, queue time) as ours.

vLLM checks a request's params (token ids within the vocabulary, a schema or regex its
structured-output backend can compile) only when the request reaches the engine: by then a
stream has started, and the failure would be a 500 or an error chunk. `check` runs the same
checks first, so a bad value is a 400 naming its field.
"""

from __future__ import annotations

from typing import Any

from app.engine.base import GenerationParams, LoraAdapter, PromptLogprob, TokenLogprob
from app.errors import InvalidRequest


def sampling_params(params: GenerationParams) -> Any:
    from vllm.sampling_params import RequestOutputKind, SamplingParams

    return SamplingParams(
        n=params.n,
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        min_p=params.min_p,
        stop=list(params.stop) or None,
        stop_token_ids=list(params.stop_token_ids) or None,
        seed=params.seed,
        presence_penalty=params.presence_penalty,
        frequency_penalty=params.frequency_penalty,
        repetition_penalty=params.repetition_penalty,
        logit_bias=dict(params.logit_bias) or None,
        min_tokens=params.min_tokens,
        bad_words=list(params.bad_words) or None,
        include_stop_str_in_output=params.include_stop_str_in_output,
        ignore_eos=params.ignore_eos,
        logprobs=params.logprobs,
        prompt_logprobs=params.prompt_logprobs,
        structured_outputs=_structured(params),
        output_kind=RequestOutputKind.DELTA,
    )


def _structured(params: GenerationParams) -> Any:
    if params.structured is None:
        return None
    from vllm.sampling_params import StructuredOutputsParams

    s = params.structured
    return StructuredOutputsParams(
        json=s.json, json_object=s.json_object, regex=s.regex,
        choice=list(s.choice) if s.choice is not None else None, grammar=s.grammar)


def check(llm: Any, params: GenerationParams) -> None:
    """vLLM's own validation of `params` (what `AsyncLLM.generate` would refuse), as
    InvalidRequest with the request's field as `param`."""
    processor = llm.input_processor
    if params.min_tokens > params.max_tokens:  # vLLM's message names no field
        raise InvalidRequest(f"'min_tokens' must be at most max_tokens ({params.max_tokens}), "
                             f"got {params.min_tokens}", param="min_tokens")
    try:
        sampling = sampling_params(params)
        sampling.verify(processor.model_config, processor.speculative_config,
                        processor.structured_outputs_config, processor.tokenizer)
        if processor.tokenizer is not None:  # bad_words: each must tokenize to something
            sampling.update_from_tokenizer(processor.tokenizer)
    except Exception as exc:
        refused = invalid(exc, params)
        if refused is None:
            raise
        raise refused from None


def invalid(exc: Exception, params: GenerationParams) -> InvalidRequest | None:
    """A vLLM error caused by the request (its `VLLMClientError`s; the structured-output
    backends raise plain ValueErrors) as InvalidRequest naming the field; else None."""
    from vllm.exceptions import VLLMClientError

    if not isinstance(exc, (VLLMClientError, ValueError)):
        return None
    param = getattr(exc, "parameter", None)
    if params.structured is not None and param in (None, "structured_outputs"):
        param = params.structured.param  # the structured-output checks name no field
    message = str(exc).split(" (parameter=")[0]  # vLLM appends its own field list
    return InvalidRequest(f"'{param}': {message}" if param else message, param=param)


def prompt_logprobs(entries: Any) -> list[dict[int, PromptLogprob] | None]:
    """vLLM's prompt logprobs (per position: token id -> Logprob, None for the first)."""
    return [None if position is None else {
        int(token_id): PromptLogprob(float(lp.logprob), lp.rank, lp.decoded_token)
        for token_id, lp in position.items()} for position in entries]


def lora_request(adapter: LoraAdapter) -> Any:
    from vllm.lora.request import LoRARequest

    return LoRARequest(adapter.name, adapter.lora_id, adapter.path)


def queue_seconds(stats: Any) -> float | None:
    if stats is None or not getattr(stats, "scheduled_ts", 0.0):
        return None
    return max(0.0, float(stats.scheduled_ts - stats.queued_ts))


def token_logprobs(choice: Any) -> list[TokenLogprob]:
    result: list[TokenLogprob] = []
    if not choice.logprobs:
        return result
    for token_id, position in zip(choice.token_ids, choice.logprobs, strict=False):
        chosen = position.get(token_id)
        ranked = sorted(position.values(), key=lambda lp: lp.rank or 0)
        result.append(
            TokenLogprob(
                token=(chosen.decoded_token if chosen else "") or "",
                logprob=float(chosen.logprob) if chosen else float("-inf"),
                top=tuple((lp.decoded_token or "", float(lp.logprob)) for lp in ranked),
            )
        )
    return result
