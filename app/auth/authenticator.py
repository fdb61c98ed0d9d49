"""One question for every transport: whose credential is this? API key or JWT, one answer."""

from __future__ import annotations

import logging

from app.auth.keys import KeyRing, parse_keys_env, parse_keys_file
from app.auth.principal import Principal, Rejected
from app.auth.tokens import TokenVerifier
from app.errors import Unauthenticated
from app.settings import Settings

log = logging.getLogger("streamchat.auth")

# One message for every refusal: saying which check failed (unknown key, expired, wrong
# audience...) would help someone probing for keys more than it helps a legitimate client.
UNAUTHENTICATED = "a valid API key or token is required"
# Far above any real key or JWT (a few hundred characters); spares hashing or parsing megabytes.
MAX_CREDENTIAL_CHARS = 8192


class Authenticator:
    def __init__(self, keys: KeyRing | None = None, tokens: TokenVerifier | None = None) -> None:
        self.keys = keys
        self.tokens = tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator | None:
        """None when auth is off; ConfigError for a bad key entry, keys file or JWT key."""
        if not settings.auth_enabled:
            return None
        keys = None
        if settings.api_keys or settings.api_keys_file:
            entries = parse_keys_env(settings.api_keys) if settings.api_keys else []
            if settings.api_keys_file:
                entries += parse_keys_file(settings.api_keys_file)
            keys = KeyRing(entries)  # one ring: an id or secret repeated across both is refused
        return cls(keys, TokenVerifier.from_settings(settings))

    def describe(self) -> str:
        """For the start-up log: what is accepted, without any secret."""
        parts = [f"{len(self.keys)} API keys"] if self.keys is not None else []
        if self.tokens is not None:
            parts.append(f"JWT {self.tokens.algorithm} for audience {self.tokens.audience!r}")
        return ", ".join(parts) or "nothing"

    def authenticate(self, token: str | None) -> Principal:
        """The principal behind `token` (the bare credential, without `Bearer `), or
        Unauthenticated with the same message whatever failed."""
        try:
            return self._verify(token)
        except Rejected as exc:
            log.debug("credential refused: %s", exc)
            raise Unauthenticated(UNAUTHENTICATED) from None

    def _verify(self, token: str | None) -> Principal:
        if not token:
            raise Rejected("no credential")
        if len(token) > MAX_CREDENTIAL_CHARS:
            raise Rejected(f"credential of {len(token)} characters")
        if self.tokens is not None and looks_like_jwt(token):
            return self.tokens.verify(token)
        key = self.keys.verify(token) if self.keys is not None else None
        if key is None:
            raise Rejected("no API key matches")
        return Principal(owner=key.key_id, scopes=key.scopes, via="key")


def looks_like_jwt(token: str) -> bool:
    # header.payload.signature; secrets from `new_key` never hold a dot.
    return token.count(".") == 2
