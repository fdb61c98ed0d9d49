"""The subprotocol a WebSocket's handshake answers with (the session socket, the Responses
socket)."""

from __future__ import annotations

from app.api.http.auth import BEARER_PROTOCOL


def subprotocol(offered: list[str]) -> str | None:
    """The protocol to answer with: a browser that offered any (e.g. `bearer.<token>` to carry
    its key) fails the handshake unless one is selected; prefer one that is not the token."""
    plain = [p for p in offered if not p.startswith(BEARER_PROTOCOL)]
    choices = plain or offered
    return choices[0] if choices else None
