"""POST/GET/DELETE /v1/files: fine-tuning datasets uploaded as multipart, every line checked
(a bad one is a 400 naming its line), 413 past STREAMCHAT_MAX_UPLOAD_BYTES, OpenAI's file
object (the `openai` SDK reads it), and 404 everywhere while fine-tuning is off."""

from __future__ import annotations

import json
from pathlib import Path

import openai
from starlette.testclient import TestClient

from app.main import create_app
from app.settings import Settings
from tests.fakes import ScriptedEngine
from tests.finetune_fixtures import DATASET, client, fake_training, settings_for, upload
from tests.sdk_clients import sdk_for

__all__ = ["client", "fake_training"]


def test_upload_list_get_delete(client: TestClient, tmp_path: Path) -> None:
    created = upload(client)
    assert created.status_code == 200, created.text
    file = created.json()
    assert file["id"].startswith("file-") and file["object"] == "file"
    assert file["bytes"] == len(DATASET) and file["filename"] == "data.jsonl"
    assert file["purpose"] == "fine-tune" and file["status"] == "processed"
    assert isinstance(file["created_at"], int)
    assert (tmp_path / "files" / f"{file['id']}.jsonl").read_bytes() == DATASET
    assert client.get(f"/v1/files/{file['id']}").json() == file
    listed = client.get("/v1/files").json()
    assert listed["object"] == "list" and listed["data"] == [file]
    assert client.get("/v1/files?purpose=batch").json()["data"] == []
    deleted = client.delete(f"/v1/files/{file['id']}")
    assert deleted.json() == {"id": file["id"], "object": "file", "deleted": True}
    assert not (tmp_path / "files" / f"{file['id']}.jsonl").exists()
    gone = client.get(f"/v1/files/{file['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "file_not_found"
    assert client.delete(f"/v1/files/{file['id']}").status_code == 404


def test_a_bad_line_is_a_400_naming_it(client: TestClient) -> None:
    bad = DATASET + b"\n" + json.dumps({"messages": [
        {"role": "assistant", "content": "hi"}, {"role": "user", "content": "x"}]}).encode()
    response = upload(client, bad)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["message"].startswith("line 3: roles are in the wrong order")
    assert error["param"] == "file" and error["code"] == "invalid_file"
    malformed = upload(client, b'{"messages": [}\n')
    assert malformed.status_code == 400 and "line 1: is not valid JSON" in malformed.text
    missing = upload(client, DATASET + b'\n{"prompt": "x"}')
    assert missing.status_code == 400 and 'line 3: has no \\"messages\\"' in missing.text
    empty = upload(client, b"")
    assert empty.status_code == 400 and "no examples" in empty.json()["error"]["message"]
    assert client.get("/v1/files").json()["data"] == []  # nothing kept of a refused file


def test_purpose_and_parts_are_checked(client: TestClient) -> None:
    wrong = upload(client, purpose="batch")
    assert wrong.status_code == 400 and wrong.json()["error"]["param"] == "purpose"
    no_file = client.post("/v1/files", data={"purpose": "fine-tune"},
                          files={"other": ("x", b"y")})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    as_json = client.post("/v1/files", json={"purpose": "fine-tune"})
    assert as_json.status_code == 415


def test_a_file_over_the_limit_is_a_413(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, max_upload_bytes=len(DATASET) + 10)
    with TestClient(create_app(settings, ScriptedEngine())) as client:
        assert upload(client).status_code == 200
        big = DATASET + b"\n" + DATASET
        response = upload(client, big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"

        def chunked() -> object:  # no Content-Length: counted as it arrives
            boundary = b"--b\r\n"
            yield boundary + b'Content-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
            yield boundary + (b'Content-Disposition: form-data; name="file"; filename="a"\r\n'
                              b"Content-Type: application/jsonl\r\n\r\n")
            for _ in range(2000):
                yield DATASET + b"\n"
            yield b"\r\n--b--\r\n"

        streamed = client.post("/v1/files", content=chunked(),  # type: ignore[arg-type]
                               headers={"content-type": "multipart/form-data; boundary=b"})
        assert streamed.status_code == 413


def test_off_unless_fine_tuning_is_on(tmp_path: Path) -> None:
    with TestClient(create_app(Settings(cache_dir=tmp_path), ScriptedEngine())) as client:
        for method, path in [("POST", "/v1/files"), ("GET", "/v1/files"),
                             ("GET", "/v1/files/file-x"), ("DELETE", "/v1/files/file-x"),
                             ("POST", "/v1/fine_tuning/jobs"), ("POST", "/v1/fine-tune"),
                             ("GET", "/v1/fine_tuning/jobs"),
                             ("GET", "/v1/fine_tuning/jobs/ftjob-x/events")]:
            response = client.request(method, path)
            assert response.status_code == 404, path
            error = response.json()["error"]
            assert error["code"] == "fine_tuning_disabled"
            assert "STREAMCHAT_FINE_TUNING=true" in error["message"]


def test_the_openai_sdk_uploads_lists_and_deletes(client: TestClient) -> None:
    sdk = sdk_for(client)
    file = sdk.files.create(file=("data.jsonl", DATASET), purpose="fine-tune")
    assert file.id.startswith("file-") and file.bytes == len(DATASET)
    assert file.status == "processed" and file.purpose == "fine-tune"
    assert sdk.files.retrieve(file.id) == file
    assert [f.id for f in sdk.files.list()] == [file.id]
    assert sdk.files.delete(file.id).deleted is True
    try:
        sdk.files.create(file=("bad.jsonl", b"{oops"), purpose="fine-tune")
    except openai.BadRequestError as exc:
        assert "line 1" in str(exc)
    else:
        raise AssertionError("a bad file was taken")
