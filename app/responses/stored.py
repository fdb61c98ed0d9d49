"""Stored responses: records (app/records/) of kind `response`, each the response object, the key
that created it and the conversation so far (the chain's history, its input, its output) as chat
messages. A response chained to another (`previous_response_id`) renders that conversation
again: each turn's prompt starts with the last turn's prompt and reply, so vLLM's prefix cache
serves it (`cached_tokens`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.errors import Conflict, InvalidRequest, NotFound
from app.ownership import visible
from app.records import Record, Records

KIND = "response"
FINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})
Messages = list[dict[str, Any]]  # chat messages, as a chat completion takes them


async def stored(records: Records, response_id: str, owner: str | None,
                 param: str = "response_id") -> Record:
    """The stored response; another key's is as if it did not exist."""
    record = await records.get(KIND, response_id)
    if record is None or not visible(record.get("owner"), owner):
        if param == "previous_response_id":
            raise InvalidRequest(f"previous response {response_id} not found (unknown, "
                                 "expired, stored with store: false, or not yours)",
                                 param=param, code="previous_response_not_found")
        raise NotFound(f"response {response_id} not found (unknown, expired, or not yours)",
                       param=param, code="response_not_found")
    return record


def resumable(record: Record) -> bool:
    """Whether its events are in a reply log (run detached: background, or over the WebSocket),
    to stream again or cancel."""
    return bool(record.get("resumable") or record["response"].get("background"))


async def history(records: Records, previous_response_id: str | None,
                  owner: str | None) -> Messages:
    """The conversation a chained response goes on from: none without a previous response;
    409 while the previous one is still in progress."""
    if previous_response_id is None:
        return []
    previous = await stored(records, previous_response_id, owner, param="previous_response_id")
    if previous["response"]["status"] not in FINAL:
        raise Conflict(f"response {previous_response_id} is still in progress",
                       param="previous_response_id", code="response_in_progress")
    messages: Messages = previous["messages"]
    return messages


async def repaired(records: Records, record: Record, running: Callable[[str], Awaitable[bool]],
                   error: dict[str, str]) -> Record:
    """The record, as it stands: one that says in progress while no replica runs it any more
    (`running`: its lease, app/leases/; its replica died) is read again, then stored failed
    with `error`, unless it ended meanwhile."""
    response = record["response"]
    if response["status"] in FINAL or await running(response["id"]):
        return record
    current = await records.get(KIND, response["id"])  # it may have ended just now
    if current is None or current["response"]["status"] in FINAL:
        return current or record
    current["response"].update(status="failed", error=error)
    await records.put(KIND, response["id"], current)
    return current
