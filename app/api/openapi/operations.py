"""What each route takes and answers, declared once for the OpenAPI document (document.py): the
request model that validates its body (the same class the route parses with), its success
status and media types, and the response model where the route builds its body from one.

A route missing here still appears in /openapi.json, marked `x-undescribed`, and
tests/test_api_openapi.py fails naming it: add its `(method, path)` to OPERATIONS below."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from app.api.conversations.schemas import (
    Conversation,
    ConversationDeleted,
    ConversationPatch,
    NewConversation,
    NewItems,
)
from app.api.inference import InferenceRequest, InferenceStatus, InferenceTask
from app.api.openai.lora import LoadLora, UnloadLora
from app.api.openai.models import DetokenizeRequest, ModelList, TokenizeRequest
from app.api.openai.schemas import ChatCompletionRequest, CompletionRequest
from app.api.ops import Health, Ready
from app.api.responses.schemas import ResponsesRequest
from app.api.sessions.schemas import NewMessage, NewSession, SessionPatch
from app.finetune.job import JobRequest

JSON = "application/json"
SSE = "text/event-stream"
TEXT = "text/plain"
HTML = "text/html"
MULTIPART = "multipart/form-data"
WEBSOCKET = "websocket"  # a tag, and the one answer a handshake gets: 101


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    body_media: str = JSON
    body_required: bool = True  # False: no body is `{}` (the route parses it `optional`)
    status: int = 200
    media: tuple[str, ...] = (JSON,)
    response: type[BaseModel] | None = None  # None: a JSON object the docs/ describe
    public: bool = False  # no credentials needed (app/api/http/auth.py's PUBLIC_PATHS)
    query: tuple[tuple[str, str, str], ...] = ()  # (name, JSON type, description)


STREAMED = (JSON, SSE)  # JSON, or SSE when asked (`stream: true` or `Accept`)
_STREAM_AGAIN = (("stream", "boolean", "true: the response's events again (background ones)"),
                 ("starting_after", "integer", "with stream: the events after this number"))
_PAGE = (("after", "string", "the last id of the previous page"),
         ("limit", "integer", "how many, at most"))

OPERATIONS: dict[tuple[str, str], Operation] = {
    # Operations (app/api/ops.py) and the page
    ("GET", "/health"): Operation("Liveness", "operations", response=Health, public=True),
    ("GET", "/v1/health"): Operation("Liveness (the seed's path for /health)", "operations",
                                     response=Health, public=True),
    ("GET", "/ready"): Operation("Readiness: the engine serves", "operations", response=Ready,
                                 public=True),
    ("GET", "/metrics"): Operation("Prometheus metrics", "operations", media=(TEXT,)),
    ("GET", "/"): Operation("The chat page", "page", media=(HTML,), public=True),
    ("GET", "/docs"): Operation("This document, browsable (Swagger UI)", "page", media=(HTML,),
                                public=True),
    ("GET", "/openapi.json"): Operation("This document", "page", public=True),
    # Sessions (app/api/sessions/)
    ("POST", "/v1/sessions"): Operation("Create a session", "sessions", NewSession, status=201,
                                        body_required=False),
    ("GET", "/v1/sessions"): Operation("List your sessions", "sessions"),
    ("GET", "/v1/sessions/{sid}"): Operation("A session and its messages", "sessions"),
    ("PATCH", "/v1/sessions/{sid}"): Operation("Change a session's title, system prompt or "
                                               "parameters", "sessions", SessionPatch,
                                               body_required=False),
    ("DELETE", "/v1/sessions/{sid}"): Operation("Delete a session", "sessions", status=204,
                                                media=()),
    ("POST", "/v1/sessions/{sid}/messages"): Operation(
        "Send a message: 202 with the reply's links, or its SSE stream (Accept)", "sessions",
        NewMessage, status=202, media=STREAMED),
    ("GET", "/v1/sessions/{sid}/messages/{mid}"): Operation("A message", "sessions"),
    ("GET", "/v1/sessions/{sid}/messages/{mid}/stream"): Operation(
        "A reply's events (SSE), resumable with Last-Event-ID", "sessions", media=(SSE,)),
    ("POST", "/v1/sessions/{sid}/messages/{mid}/cancel"): Operation("Stop a reply", "sessions"),
    ("GET", "/v1/sessions/{sid}/ws"): Operation(
        "The session's WebSocket (Upgrade: websocket; frames in docs/API.md)", WEBSOCKET,
        status=101, media=()),
    # OpenAI's API (app/api/openai/)
    ("POST", "/v1/chat/completions"): Operation("Chat completion", "openai",
                                                ChatCompletionRequest, media=STREAMED),
    ("POST", "/v1/completions"): Operation("Text completion", "openai", CompletionRequest,
                                           media=STREAMED),
    ("POST", "/v1/engines/{model}/completions"): Operation(
        "Text completion (the legacy path)", "openai", CompletionRequest, media=STREAMED),
    ("GET", "/v1/chat/completions/streams/{stream_id}"): Operation(
        "Resume a resumable chat completion stream", "openai", media=(SSE,)),
    ("GET", "/v1/models"): Operation("The served models and adapters", "openai",
                                     response=ModelList),
    ("POST", "/tokenize"): Operation("Tokenize a prompt or messages", "openai",
                                     TokenizeRequest),
    ("POST", "/detokenize"): Operation("Detokenize tokens", "openai", DetokenizeRequest),
    ("POST", "/v1/load_lora_adapter"): Operation("Load a LoRA adapter (admin)", "openai",
                                                 LoadLora, media=(TEXT,)),
    ("POST", "/v1/unload_lora_adapter"): Operation("Unload a LoRA adapter (admin)", "openai",
                                                   UnloadLora, media=(TEXT,)),
    # Responses (app/api/responses/)
    ("POST", "/v1/responses"): Operation("Create a response (whole, streamed or background)",
                                         "responses", ResponsesRequest, media=STREAMED),
    ("GET", "/v1/responses/{response_id}"): Operation(
        "A stored response, or its events again", "responses", media=STREAMED,
        query=_STREAM_AGAIN),
    ("DELETE", "/v1/responses/{response_id}"): Operation("Delete a stored response",
                                                         "responses"),
    ("POST", "/v1/responses/{response_id}/cancel"): Operation("Cancel a background response",
                                                              "responses"),
    ("GET", "/v1/responses"): Operation(
        "Responses over one WebSocket (Upgrade: websocket; `response.create` events)",
        WEBSOCKET, status=101, media=()),
    # Conversations (app/api/conversations/): the sessions, by OpenAI's API
    ("POST", "/v1/conversations"): Operation("Create a conversation (a session)",
                                             "conversations", NewConversation,
                                             body_required=False, response=Conversation),
    ("GET", "/v1/conversations/{conversation_id}"): Operation("A conversation",
                                                             "conversations",
                                                             response=Conversation),
    ("POST", "/v1/conversations/{conversation_id}"): Operation(
        "Update its metadata", "conversations", ConversationPatch, response=Conversation),
    ("DELETE", "/v1/conversations/{conversation_id}"): Operation(
        "Delete a conversation (its session)", "conversations",
        response=ConversationDeleted),
    ("GET", "/v1/conversations/{conversation_id}/items"): Operation("Its items, paged",
                                                                    "conversations"),
    ("POST", "/v1/conversations/{conversation_id}/items"): Operation(
        "Add items", "conversations", NewItems),
    ("GET", "/v1/conversations/{conversation_id}/items/{item_id}"): Operation(
        "An item", "conversations"),
    ("DELETE", "/v1/conversations/{conversation_id}/items/{item_id}"): Operation(
        "Delete an item: the conversation after it", "conversations", response=Conversation),
    # The seed's asynchronous task, on background responses (app/api/inference.py)
    ("POST", "/v1/inference"): Operation("Submit a prompt: a task id and a status link",
                                         "inference", InferenceRequest, status=202,
                                         response=InferenceTask),
    ("GET", "/v1/inference/{task_id}"): Operation("A task's status and result", "inference",
                                                  response=InferenceStatus),
    # Fine-tuning (app/api/fine_tuning/; 404 unless STREAMCHAT_FINE_TUNING=true)
    ("POST", "/v1/files"): Operation("Upload a dataset (fields file and purpose)",
                                     "fine-tuning", body_media=MULTIPART),
    ("GET", "/v1/files"): Operation("Your files", "fine-tuning"),
    ("GET", "/v1/files/{file_id}"): Operation("A file", "fine-tuning"),
    ("DELETE", "/v1/files/{file_id}"): Operation("Delete a file", "fine-tuning"),
    ("POST", "/v1/fine_tuning/jobs"): Operation("Start a fine-tuning job", "fine-tuning",
                                                JobRequest),
    ("POST", "/v1/fine-tune"): Operation("Start a fine-tuning job (the seed's path)",
                                         "fine-tuning", JobRequest),
    ("GET", "/v1/fine_tuning/jobs"): Operation("Your jobs", "fine-tuning", query=_PAGE),
    ("GET", "/v1/fine_tuning/jobs/{job_id}"): Operation("A job", "fine-tuning"),
    ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel"): Operation("Cancel a job", "fine-tuning"),
    ("GET", "/v1/fine_tuning/jobs/{job_id}/events"): Operation(
        "A job's events (JSON pages, or SSE with Accept)", "fine-tuning", media=STREAMED,
        query=_PAGE),
}
