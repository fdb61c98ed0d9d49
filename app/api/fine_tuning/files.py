"""OpenAI's Files API, for fine-tuning datasets: `POST /v1/files` (multipart: `file`,
`purpose=fine-tune`), `GET /v1/files`, `GET /v1/files/{file_id}`, `DELETE /v1/files/{file_id}`.
Served only with STREAMCHAT_FINE_TUNING=true (`enabled`); the checks are the core's
(`app/finetune/files.py`, `dataset.py`)."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive

from app.api.fine_tuning.manager import enabled
from app.api.http.errors import json_response
from app.api.http.state import owner
from app.errors import BodyTooLarge, InvalidRequest, UnsupportedMediaType

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and the other fields, beyond the file itself


def capped(receive: Receive, limit: int) -> Receive:
    """`receive` that refuses a body past `limit` bytes (413) as it arrives: a chunked upload
    says no length up front."""
    received = 0

    async def capped_receive() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > limit:
            raise BodyTooLarge(f"the upload is larger than {limit - FORM_OVERHEAD} bytes "
                               "(STREAMCHAT_MAX_UPLOAD_BYTES)", param="file")
        return message

    return capped_receive


async def upload(request: Request) -> Response:
    files = enabled(request).files
    limit = files.max_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"the upload is larger than {files.max_bytes} bytes "
                           "(STREAMCHAT_MAX_UPLOAD_BYTES)", param="file")
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "multipart/form-data":
        raise UnsupportedMediaType(f"Content-Type must be multipart/form-data (fields file and "
                                   f"purpose), got {media_type!r}", param="Content-Type")
    form_request = Request(request.scope, capped(request.receive, limit))
    async with form_request.form(max_files=1, max_fields=8) as form:
        purpose, part = form.get("purpose"), form.get("file")
        if not isinstance(purpose, str):
            raise InvalidRequest("'purpose' is required (fine-tune)", param="purpose")
        if not isinstance(part, UploadFile):
            raise InvalidRequest("'file' is required: the JSONL dataset, as a file part",
                                 param="file")
        raw = await part.read()
        filename = part.filename or "upload.jsonl"
    return json_response(await files.create(filename, purpose, raw, owner(request)))


async def list_files(request: Request) -> Response:
    files = enabled(request).files
    purpose = request.query_params.get("purpose")
    return json_response({"object": "list", "has_more": False,
                          "data": await files.all(owner(request), purpose)})


async def retrieve(request: Request) -> Response:
    files = enabled(request).files
    return json_response(await files.get(request.path_params["file_id"], owner(request)))


async def delete(request: Request) -> Response:
    files, file_id = enabled(request).files, request.path_params["file_id"]
    await files.delete(file_id, owner(request))
    return json_response({"id": file_id, "object": "file", "deleted": True})


routes = [
    Route("/v1/files", upload, methods=["POST"]),
    Route("/v1/files", list_files, methods=["GET"]),
    Route("/v1/files/{file_id}", retrieve, methods=["GET"]),
    Route("/v1/files/{file_id}", delete, methods=["DELETE"]),
]
