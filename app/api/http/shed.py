"""Load shedding: a request for a generation that the admission queue could not even hold is
refused here, with the 429 `queue_full` the gate gives (app/admission/gate.py `check_room`),
before its body is read, its route found or its JSON validated.

A burst is where it counts: 300 requests at once against a full queue of the scripted-engine
service were refused at p99 110-118 ms from the send by the handler, after the body's
validation; 54-60 ms here (uvicorn alone: 23-31 ms). Through the app, 306 us a refusal -> 38 us.
Everything else (a request the queue has room for, a WebSocket, a draining or loading replica,
whose 503 the generation path gives) goes on as before. It runs inside auth: a key is checked
and its requests per minute counted first; its stream cap and token budget come after."""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from app.admission import Admission
from app.api.http.errors import count_rejection, refuse
from app.errors import QueueFull
from app.lifecycle import Lifecycle

# The POSTs that start a generation (docs/API.md); not a cancel, a delete or a resume.
GENERATING = re.compile(r"/v1/(?:chat/completions|completions|engines/[^/]+/completions"
                        r"|responses|sessions/[^/]+/messages)")


class Shed:
    def __init__(self, app: ASGIApp, admission: Admission, lifecycle: Lifecycle) -> None:
        self.app = app
        self.admission = admission
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" \
                and GENERATING.fullmatch(scope["path"]) \
                and self.lifecycle.not_ready_reason() is None:
            try:
                self.admission.check_room()
            except QueueFull as exc:
                count_rejection(exc)
                await refuse(scope, send, exc)
                return
        await self.app(scope, receive, send)
