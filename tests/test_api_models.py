"""The model's endpoints (app/api/openai/models.py): `/v1/models` with vLLM's fields, `/tokenize` and
`/detokenize` in vLLM's shapes; and the vLLM sampling fields of session params."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.test_api_openai import assert_openai_error
from tests.test_api_sessions import SSE, new_session


@pytest.fixture
def client(engine: ScriptedEngine) -> Any:
    settings = Settings(model_aliases=("alias",), default_max_tokens=16)
    with TestClient(create_app(settings, engine)) as test_client:
        yield test_client


def test_models_have_vllms_fields(client: TestClient) -> None:
    data = client.get("/v1/models").json()["data"]
    assert [m["id"] for m in data] == ["scripted", "alias"]
    for model in data:
        assert (model["root"], model["parent"], model["max_model_len"]) == ("scripted", None, 256)
        (permission,) = model["permission"]
        assert permission["object"] == "model_permission"
        assert permission["id"].startswith("modelperm-")
        assert (permission["allow_sampling"], permission["allow_logprobs"],
                permission["allow_fine_tuning"], permission["organization"]) == (
            True, True, False, "*")


def test_tokenize_a_prompt_and_detokenize_it_back(client: TestClient) -> None:
    body = client.post("/tokenize", json={"model": "alias", "prompt": "Hi",
                                          "return_token_strs": True}).json()
    assert body == {"count": 3, "max_model_len": 256, "tokens": [1, 72, 105],
                    "token_strs": ["\x01", "H", "i"]}
    plain = client.post("/tokenize", json={"prompt": "Hi", "add_special_tokens": False}).json()
    assert plain["tokens"] == [72, 105] and plain["token_strs"] is None
    assert client.post("/detokenize", json={"tokens": body["tokens"]}).json() == {"prompt": "Hi"}


def test_tokenize_a_chat(client: TestClient, engine: ScriptedEngine) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    body = client.post("/tokenize", json={"messages": messages}).json()
    assert body["tokens"] == [1, 2, 72, 105, 3, 1, 2] and body["count"] == 7
    assert engine.renders[-1] == (True, False)
    open_ended = client.post("/tokenize", json={
        "messages": [*messages, {"role": "assistant", "content": "Yo"}],
        "add_generation_prompt": False, "continue_final_message": True}).json()
    assert engine.renders[-1] == (False, True) and open_ended["tokens"][-1] == ord("o")


@pytest.mark.parametrize(("path", "body", "status", "param"), [
    ("/tokenize", {}, 400, None),
    ("/tokenize", {"prompt": "x", "messages": [{"role": "user", "content": "x"}]}, 400, None),
    ("/tokenize", {"prompt": 5}, 400, "prompt"),
    ("/tokenize", {"prompt": "x", "model": "gpt-9"}, 404, "model"),
    ("/tokenize", {"prompt": "x", "bogus": 1}, 400, "bogus"),
    ("/tokenize", {"messages": [{"role": "user", "content": "x"}],
                   "continue_final_message": True}, 400, None),
    ("/detokenize", {"tokens": [-1]}, 400, "tokens[0]"),
    ("/detokenize", {"tokens": "1 2"}, 400, "tokens"),
    ("/detokenize", {"tokens": [2**40]}, 400, "tokens"),
    ("/detokenize", {}, 400, "tokens"),
])
def test_bad_tokenizer_requests(client: TestClient, path: str, body: dict[str, Any],
                                status: int, param: str | None) -> None:
    assert_openai_error(client.post(path, json=body), status, param)


def test_session_replies_take_vllms_sampling_params(client: TestClient,
                                                    engine: ScriptedEngine) -> None:
    sid = new_session(client, params={"min_p": 0.2, "bad_words": ["x"]})
    response = client.post(f"/v1/sessions/{sid}/messages", headers=SSE, json={
        "content": "x", "params": {"repetition_penalty": 1.2, "logit_bias": {"9": 5}}})
    assert response.status_code == 200
    params = engine.params[-1]
    assert (params.min_p, params.bad_words, params.repetition_penalty, params.logit_bias) == (
        0.2, ("x",), 1.2, ((9, 5.0),))
    # The engine's own check (a token id outside the vocabulary) names the params key.
    error = client.post(f"/v1/sessions/{sid}/messages", json={
        "content": "x", "params": {"stop_token_ids": [2**30]}}).json()["error"]
    assert error["param"] == "params.stop_token_ids"
