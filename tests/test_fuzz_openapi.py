"""Property-based run against the service's own /openapi.json (schemathesis): requests generated
from the document, valid ones and invalid ones, for every operation, sent in process to the app
with the scripted engine. Properties: never a 5xx; the status, the media type and the body are
what the document says (an error's body, under `default`, the contract's error shape).
Bounded: 500 cases, about 10 s (more with FUZZ_SCALE > 1, as tests/test_fuzz.py)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
SCALE = float(os.environ.get("FUZZ_SCALE", "1"))  # as tests/test_fuzz.py's
SENT: Counter[str] = Counter()  # cases per operation
STATUSES: Counter[int] = Counter()
SERVED: set[str] = set()  # operations that answered a 2xx


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = create_app(Settings(default_max_tokens=4, orphan_grace_s=0.2),
                     ScriptedEngine(tokens=["a", "b"]))
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def cases(client: TestClient) -> st.SearchStrategy[Any]:
    document = client.get("/openapi.json").json()
    for path, operations in list(document["paths"].items()):  # test_api_openapi.py fails those
        document["paths"][path] = {m: op for m, op in operations.items()
                                   if not op.get("x-undescribed")}
    schema = schemathesis.openapi.from_dict(document)
    return st.one_of(schema.as_strategy(GenerationMode.POSITIVE),
                     schema.as_strategy(GenerationMode.NEGATIVE))


def send(client: TestClient, case: Any) -> Any:
    """The case as a request, through the test client (the app's lifespan entered once)."""
    kwargs = case.as_transport_kwargs(base_url="http://localhost")
    data = kwargs.pop("data", None)
    if isinstance(data, (bytes, str)):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    cookies = kwargs.pop("cookies", None)  # none in the document; httpx wants them per client
    assert not cookies, cookies
    for unused in ("allow_redirects", "verify", "timeout"):
        kwargs.pop(unused, None)
    if "files" in kwargs:  # requests sends any file content with str(); httpx wants bytes
        kwargs["files"] = [(name, _as_file(value)) for name, value in kwargs["files"] or ()]
    request = client.build_request(**kwargs)
    request.read()  # a multipart body is streamed: read once, for the app and for the checks
    return client.send(request)


def _as_file(value: Any) -> Any:
    if isinstance(value, tuple):
        return (value[0], _as_file(value[1]), *value[2:])
    return value if isinstance(value, bytes) else str(value).encode()


def test_every_operation_answers_as_its_document_says(client: TestClient,
                                                     cases: st.SearchStrategy[Any]) -> None:
    @settings(max_examples=max(500, int(500 * SCALE)), deadline=None, database=None,
              derandomize=True, print_blob=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                     HealthCheck.data_too_large])
    @given(case=cases)
    def run(case: Any) -> None:
        response = send(client, case)
        SENT[f"{case.method} {case.path}"] += 1
        STATUSES[response.status_code] += 1
        if response.status_code < 300:
            SERVED.add(f"{case.method} {case.path}")
        case.validate_response(response, checks=CHECKS)

    run()
    print(f"openapi fuzz: {sum(SENT.values())} cases on {len(SENT)} operations, "
          f"{len(SERVED)} of them served; statuses {dict(sorted(STATUSES.items()))}")
    # It reached most operations, and generated requests were served, not only refused.
    document = client.get("/openapi.json").json()["paths"]
    assert len(SENT) >= 0.8 * sum(len(ops) for ops in document.values()), SENT
    assert len(SERVED) >= 10, SERVED
