"""End to end: real OpenAI clients against the real service and engine."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import openai
import pytest
import requests

from tests.e2e_server import REPO, LiveServer, warm_prefix_cache

pytestmark = pytest.mark.e2e
MODEL = "SmolLM2-135M-Instruct"
MESSAGES = [{"role": "user", "content": "Say hello in one short sentence."}]


def sdk(server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_sync_chat_streaming_and_not(live_server: LiveServer) -> None:
    client = sdk(live_server)
    warm_prefix_cache(live_server, MODEL, MESSAGES)
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20,
                                           temperature=0)
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.content
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 20
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20,
                                            temperature=0, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content  # the first chunk already has text
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == reply.choices[0].message.content  # temperature 0: the same reply
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens


def test_sync_n2_and_logprobs(live_server: LiveServer) -> None:
    client = sdk(live_server)
    reply = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=8, n=2,
                                           logprobs=True, top_logprobs=3, seed=7)
    assert [c.index for c in reply.choices] == [0, 1]
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content and all(t.logprob <= 0 and len(t.top_logprobs) == 3 for t in content)
    completion = client.completions.create(model=MODEL, prompt="The capital of France is",
                                           max_tokens=5, logprobs=2, temperature=0)
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and len(logprobs.tokens or []) == completion.usage.completion_tokens  # type: ignore[union-attr]


def test_async_completions_streaming_and_not(live_server: LiveServer) -> None:
    async def run() -> None:
        client = openai.AsyncOpenAI(base_url=live_server.url + "/v1", api_key="unused",
                                    max_retries=0)
        plain = await client.completions.create(model=MODEL, prompt="Once upon a time",
                                                max_tokens=12, temperature=0)
        assert plain.choices[0].text and plain.object == "text_completion"
        stream = await client.completions.create(model=MODEL, prompt="Once upon a time",
                                                 max_tokens=12, temperature=0, stream=True,
                                                 stream_options={"include_usage": True})
        pieces, usage = [], None
        async for chunk in stream:
            pieces.extend(c.text for c in chunk.choices)
            usage = chunk.usage or usage
        assert "".join(pieces) == plain.choices[0].text
        assert usage is not None and usage.completion_tokens == plain.usage.completion_tokens  # type: ignore[union-attr]
        chat = await client.chat.completions.create(model=MODEL, messages=MESSAGES,
                                                    max_tokens=10)
        assert chat.choices[0].message.content
        await client.close()

    asyncio.run(run())


def test_models_and_unknown_model(live_server: LiveServer) -> None:
    client = sdk(live_server)
    assert [m.id for m in client.models.list()] == [MODEL, "open-autoglm"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def test_seed_documents_example_client(live_server: LiveServer) -> None:
    """The seed article's client, verbatim but for the URL."""
    url = live_server.url + "/v1/engines/open-autoglm/completions"
    api_key = "your_api_key_here"
    payload = {"prompt": "请解释什么是Transformer架构", "max_tokens": 200, "temperature": 0.7}
    response = requests.post(url, json=payload, headers={"Authorization": f"Bearer {api_key}",
                                                         "Content-Type": "application/json"},
                             timeout=120)
    text = response.json()["choices"][0]["text"]
    assert isinstance(text, str) and text
    print(text)


def test_stream_disconnect_aborts_the_engine_request(live_server: LiveServer) -> None:
    with httpx.stream("POST", live_server.url + "/v1/chat/completions", timeout=60,
                      json={"model": MODEL, "messages": MESSAGES, "max_tokens": 1000,
                            "ignore_eos": True, "stream": True}) as response:
        for n, _ in enumerate(response.iter_lines()):
            if n > 6:
                break
    # A plain OpenAI stream (not a background response) ends with its connection.
    live_server.wait_for_metric("streamchat_engine_running_requests", 0)


@pytest.mark.parametrize(("backend", "endpoint"), [("openai-chat", "/v1/chat/completions"),
                                                   ("openai", "/v1/completions")])
def test_vllm_benchmark_client_runs_without_failures(live_server: LiveServer, backend: str,
                                                     endpoint: str) -> None:
    from app.engine.model import default_model_dir
    from app.settings import from_env

    out = Path(tempfile.mkdtemp())
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.vllm_bench", "--backend", backend,
         "--base-url", live_server.url, "--endpoint", endpoint, "--model", MODEL,
         "--tokenizer", str(default_model_dir(from_env().cache_dir)),
         "--dataset-name", "random", "--random-input-len", "32", "--random-output-len", "8",
         "--num-prompts", "8", "--max-concurrency", "4", "--ignore-eos", "--disable-tqdm",
         "--save-result", "--result-dir", str(out), "--result-filename", "r.json"],
        cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "r.json").read_text())
    assert summary["completed"] == 8 and summary.get("failed", 0) == 0
    assert summary["total_output_tokens"] == 64  # ignore_eos reached the engine
