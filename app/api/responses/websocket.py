"""OpenAI's Responses WebSocket mode: `GET /v1/responses` upgraded to a WebSocket (docs/API.md).

Each `response.create` starts a response by the POST's own path (start.py: admission, limits,
tools, structured output, the chain) and its typed events come back as text frames, each the
JSON the SSE stream's `data:` carries, with its `sequence_number`. As the SDK's `stream_id`
says, creates in one lane run one after another in order (the next starts once the last one's
terminal event went out); lanes run side by side. A bad event gets an `error` event with
the HTTP status and error of the same request, and the socket stays open.

Beyond OpenAI: every response started here runs detached, stored and logged as a background one
is, so that a dropped socket drops only the following: the response goes on, and
`GET /v1/responses/{id}?stream=true&starting_after=N` on any replica gets the rest. Auth and the
Origin rule are the middlewares' (app/api/http/), at the handshake, as for the session socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from app.api.http.body import validation_context
from app.api.http.errors import count_rejection
from app.api.http.state import fair_user, owner, services
from app.api.http.subprotocol import subprotocol
from app.api.http.ws_frames import FrameSender, receive_frame
from app.api.responses.events import TERMINAL
from app.api.responses.start import detach, start
from app.api.responses.ws_events import ResponseCreate, error_event, parse_event
from app.errors import Conflict, StreamchatError
from app.replies.detached import LOG_OWN

log = logging.getLogger("streamchat.responses_ws")

CLOSE_INTERNAL = 1011
# Creates waiting or running on one socket, all lanes together (a lane runs one at a time):
# a client that sends more is told to wait for some to end.
MAX_PENDING = 16
Lane = asyncio.Queue[ResponseCreate]


class ResponsesSocket:
    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.svc = services(websocket)
        self.owner = owner(websocket)
        self.limits = self.svc.limits if self.owner is not None else None
        self.context = validation_context(self.svc.settings)
        self._lanes: dict[str | None, Lane] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._pending = 0  # creates waiting or running
        self._send = FrameSender(websocket).send

    async def run(self) -> None:
        try:
            limit = self.svc.settings.max_body_bytes
            while (raw := await receive_frame(self.websocket, limit, "event")) is not None:
                try:
                    self._queue(await self._admitted(raw))
                except StreamchatError as exc:
                    count_rejection(exc)
                    await self._send(error_event(exc))
        except WebSocketDisconnect:
            return
        finally:
            # Only the following stops: a started response goes on, stored (GET it, or its
            # events); one still waiting in a lane is never started.
            for worker in self._workers:
                worker.cancel()
            await asyncio.gather(*self._workers, return_exceptions=True)

    async def _admitted(self, raw: bytes) -> ResponseCreate:
        create = parse_event(raw, self.context)
        if self._pending >= MAX_PENDING:
            raise Conflict(f"{MAX_PENDING} responses already wait or run on this socket; send "
                           "more once some have ended", code="too_many_pending")
        if self.limits is not None and self.owner is not None:
            await self.limits.admit_request(self.owner)  # a create is a request, as a POST
        return create

    def _queue(self, create: ResponseCreate) -> None:
        lane = self._lanes.get(create.stream_id)
        if lane is None:
            lane = self._lanes[create.stream_id] = asyncio.Queue()
            self._workers.append(asyncio.create_task(self._serve(lane)))
        lane.put_nowait(create)
        self._pending += 1

    async def _serve(self, lane: Lane) -> None:
        with contextlib.suppress(WebSocketDisconnect, OSError, RuntimeError):  # the client left
            while True:
                create = await lane.get()
                try:
                    await self._answer(create)
                finally:
                    self._pending -= 1

    async def _answer(self, create: ResponseCreate) -> None:
        """The response's events, or the error event that refused it."""
        try:
            await self._respond(create)
        except StreamchatError as exc:
            count_rejection(exc)
            await self._send(error_event(exc, create.stream_id))
        except (WebSocketDisconnect, OSError, RuntimeError):
            raise  # the client left
        except Exception:  # a bug: this response fails, the lane goes on
            log.exception("a response over the WebSocket failed")
            await self._send(error_event(StreamchatError("internal error"), create.stream_id))

    async def _respond(self, create: ResponseCreate) -> None:
        """One response: started, run detached, and its log followed to its terminal event;
        each event's JSON sent as the log keeps it, encoded once (with the lane spliced in)."""
        started = await start(self.svc, create, self.context, owner=self.owner,
                              user=fair_user(self.websocket, create.user),
                              accepted_at=time.monotonic(), detached=True)
        events = (await detach(self.svc, started, self.owner)).follow(0)
        lane = b'"stream_id":%s,' % orjson.dumps(create.stream_id) if create.stream_id else b""
        async with contextlib.aclosing(events):  # type: ignore[type-var]
            async for event in events:
                if event is None or event.type in LOG_OWN:
                    continue
                await self._send(event.payload[:1] + lane + event.payload[1:])
                if event.type in TERMINAL:
                    return


async def responses_socket(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol(websocket.scope.get("subprotocols", [])))
    try:
        await ResponsesSocket(websocket).run()
    except Exception:
        log.exception("responses socket failed")
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_INTERNAL, "internal error")


routes = [WebSocketRoute("/v1/responses", responses_socket)]
