"""The ids the service mints, in one shape: a prefix and random hex (96 bits by default), as
OpenAI's own ids look (`chatcmpl-...`, `resp_...`, `ftjob-...`). Unguessable: an id is all a
client needs to follow a stream or read a session when auth is off."""

from __future__ import annotations

import secrets


def new_id(prefix: str, hex_chars: int = 24) -> str:
    """`prefix` (with its own separator: `msg_`, `chatcmpl-`) and `hex_chars` random hex."""
    return prefix + secrets.token_hex(hex_chars // 2)
