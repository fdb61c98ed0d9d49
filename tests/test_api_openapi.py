"""/openapi.json and /docs (app/api/openapi/): every route the app serves is in the document, its
bodies are the models the routes validate with, errors share one component, and the page and
its description are public and under the page's CSP. The document's promises themselves are
fuzzed in tests/test_fuzz_openapi.py; the page in Chromium in tests/test_page_docs.py."""

from __future__ import annotations

import re
from typing import Any

from starlette.testclient import TestClient

from app.api.conversations.schemas import Conversation, ConversationDeleted
from app.api.http.errors import error_body
from app.api.http.page import PAGE_HEADERS, STATIC_DIR
from app.api.openai.models import ModelList
from app.api.openai.schemas import ChatCompletionRequest
from app.api.openapi.document import ErrorBody, operations_of
from app.api.openapi.operations import OPERATIONS
from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine

CSP = dict(PAGE_HEADERS)[b"content-security-policy"].decode()


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return resolve(doc, doc["components"]["schemas"][ref.rsplit("/", 1)[1]]) if ref else schema


def test_every_route_the_app_serves_is_described(client: TestClient) -> None:
    served = operations_of(client.app.routes)  # type: ignore[attr-defined]
    missing = [f"{method} {path}" for method, path in served if (method, path) not in OPERATIONS]
    assert not missing, (
        f"served but not described: {missing}. Add each as `(METHOD, PATH): Operation(summary, "
        "tag, body=<the request model the route parses with>, ...)` to OPERATIONS in "
        "app/api/openapi/operations.py, so that /openapi.json and /docs show it.")
    doc = client.get("/openapi.json").json()
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == set(served)
    assert ("GET", "/v1/sessions/{sid}/ws") in documented and ("POST", "/v1/inference") in documented
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)) and doc["openapi"] == "3.1.0"


def test_bodies_are_the_models_the_routes_validate_with(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    body = doc["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]
    schema = resolve(doc, body["application/json"]["schema"])
    assert schema["required"] == ChatCompletionRequest.model_json_schema()["required"]
    # What the document says is required is what the route refuses without.
    checked = []
    for path, ops in doc["paths"].items():
        post = ops.get("post", {})
        content = post.get("requestBody", {}).get("content", {}).get("application/json")
        if content is None or "{" in path or post["tags"] == ["fine-tuning"]:
            continue
        if not post["requestBody"]["required"]:  # no body at all is taken, as `{}`
            assert client.post(path).status_code < 300, path
            checked.append(path)
        required = resolve(doc, content["schema"]).get("required", [])
        if required:
            answer = client.post(path, json={})
            assert answer.status_code == 400, (path, answer.text)
            assert answer.json()["error"]["param"] in required, (path, answer.text)
            checked.append(path)
    assert {"/v1/chat/completions", "/v1/responses", "/v1/inference", "/v1/sessions",
            "/v1/conversations"} <= set(checked)


def test_every_error_has_the_one_documented_shape(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert doc["components"]["responses"]["Error"]["content"]["application/json"]["schema"] == \
        {"$ref": "#/components/schemas/ErrorBody"}
    assert all(op["responses"]["default"] == {"$ref": "#/components/responses/Error"}
               for ops in doc["paths"].values() for op in ops.values())
    ErrorBody.model_validate(error_body("m", "invalid_request_error", "invalid_request", "p"))
    for answer in (client.get("/v1/nope"), client.post("/v1/inference", json={"prompt": 1}),
                   client.get("/v1/inference/resp_nope")):
        assert ErrorBody.model_validate(answer.json()).error.code


def test_the_description_and_its_page_are_public_when_auth_is_on() -> None:
    app = create_app(Settings(api_keys="k1:sk-secret:chat"), ScriptedEngine())
    with TestClient(app) as client:
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200
        assert client.get("/v1/health").json() == {"status": "ok"}
        assert client.post("/v1/inference", json={"prompt": "Hi"}).status_code == 401
        security = client.get("/openapi.json").json()["components"]["securitySchemes"]
        assert security["bearer"]["scheme"] == "bearer"


def test_docs_runs_only_vendored_files_under_the_pages_csp(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-security-policy"] == CSP
    html = (STATIC_DIR / "docs.html").read_text()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all(body.strip() == "" and 'src="/static/' in attrs
                           for attrs, body in scripts)  # no inline script: none would run
    for url in re.findall(r'(?:src|href)="(/static/[^"]+)"', html):
        answer = client.get(url)
        assert answer.status_code == 200 and answer.headers["content-security-policy"] == CSP
    assert "url: '/openapi.json'" in (STATIC_DIR / "docs.js").read_text()


# The success bodies built through a declared model, documented by it. The others' 200 is a
# bare JSON object until their body has a model (docs/API.md describes them meanwhile).
MODELLED = {("GET", "/health"): "Health", ("GET", "/ready"): "Ready",
            ("GET", "/v1/models"): "ModelList", ("POST", "/v1/inference"): "InferenceTask",
            ("GET", "/v1/inference/{task_id}"): "InferenceStatus",
            ("POST", "/v1/conversations"): "Conversation",
            ("GET", "/v1/conversations/{conversation_id}"): "Conversation",
            ("POST", "/v1/conversations/{conversation_id}"): "Conversation",
            ("DELETE", "/v1/conversations/{conversation_id}"): "ConversationDeleted",
            ("DELETE", "/v1/conversations/{conversation_id}/items/{item_id}"): "Conversation"}


def test_modelled_success_bodies_are_documented_by_their_models(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for (method, path), model in MODELLED.items():
        op = doc["paths"][path][method.lower()]
        status = str(OPERATIONS[(method, path)].status)
        schema = op["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}, (method, path)
        assert resolve(doc, schema)["properties"], (method, path)
    listed = resolve(doc, {"$ref": "#/components/schemas/ModelList"})
    card = resolve(doc, listed["properties"]["data"]["items"])
    assert {"id", "created", "root", "parent", "max_model_len", "permission"} <= \
        set(card["required"])
    # What the route answers is what the document says: the models themselves validate it.
    answer = client.get("/v1/models").json()
    assert ModelList.model_validate(answer).model_dump() == answer
    made = client.post("/v1/conversations", json={"metadata": {"k": "v"}}).json()
    assert Conversation.model_validate(made).model_dump() == made
    gone = client.delete(f"/v1/conversations/{made['id']}").json()
    assert ConversationDeleted.model_validate(gone).model_dump() == gone
