"""Who may use the service: keys, per-key limits, and which sites' pages may reach it.

A base of `Settings` (app/settings.py), declared the same way: each field once, its variable
and flag derived from its name."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.host_names import LOOPBACK, is_loopback, split_host
from app.settings_types import HostPatterns, Origins, UserPath

AUTH_SETTINGS = "STREAMCHAT_API_KEYS, STREAMCHAT_API_KEYS_FILE or STREAMCHAT_JWT_SECRET"


class AccessSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    host: str = Field(default="127.0.0.1", min_length=1, description="interface to listen on")
    port: int = Field(default=8000, ge=0, le=65535,
                      description="TCP port to listen on (0 picks a free one)")
    # -- auth: on when any of api_keys, api_keys_file, jwt_* is set -----------------------
    api_keys: str | None = Field(
        default=None, repr=False, description="API keys, comma-separated id:secret:scope+scope "
        "entries, e.g. alice:sk-alice-1:chat,ops:sk-ops-1:chat+admin (scopes: chat, admin)")
    api_keys_file: UserPath | None = Field(
        default=None, description="API keys file storing only hashes, one `id:sha256:HEX:scopes` "
        "a line (`python -m app keys new` prints one)")
    jwt_secret: str | None = Field(default=None, repr=False,
                                   description="accept JWT bearer tokens signed HS256 with this")
    jwt_public_key: str | None = Field(
        default=None, description="accept JWT bearer tokens signed RS256: a PEM public key, or "
        "the path of a file holding one")
    jwt_audience: str | None = Field(default=None,
                                     description="the `aud` a JWT must carry (required with JWT)")
    metrics_public: bool = Field(default=False,
                                 description="serve /metrics without a key (else: admin scope)")
    # -- per-key limits (with auth on) ---------------------------------------------------
    rate_limit_rpm: int = Field(default=600, ge=0,
                                description="requests per minute per key; 0: no limit")
    rate_limit_tpm: int = Field(default=200_000, ge=0,
                                description="generated tokens per minute per key; 0: no limit")
    max_sessions_per_key: int = Field(default=1000, ge=1, description="sessions a key may hold")
    max_streams_per_key: int = Field(default=8, ge=1,
                                     description="generations a key may run at once")
    # -- browsers: DNS rebinding and other sites' pages (app/api/http/browser_guard.py) ----
    allowed_hosts: HostPatterns | None = Field(
        default=None, description="Host header values served, comma-separated: names, "
        "*.domain, addresses, [v6], each with an optional :port, `loopback` (localhost, "
        "*.localhost, 127.0.0.0/8, [::1]), or * for any (others: 421); "
        "unset: the loopback names and addresses when listening on loopback, else any")
    cors_origins: Origins = Field(
        default=(), description="origins (scheme://host[:port]) whose web pages may call the "
        "API with CORS and open its WebSockets, comma-separated, or *; other sites' pages are "
        "refused (403)")

    @model_validator(mode="after")
    def _jwt_complete(self) -> AccessSettings:
        if self.jwt_secret is not None and self.jwt_public_key is not None:
            raise ValueError("set STREAMCHAT_JWT_SECRET or STREAMCHAT_JWT_PUBLIC_KEY, not both")
        if (self.jwt_secret or self.jwt_public_key) and not self.jwt_audience:
            raise ValueError("JWT needs STREAMCHAT_JWT_AUDIENCE (the `aud` tokens must carry)")
        return self

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys or self.api_keys_file or self.jwt_secret or self.jwt_public_key)

    @property
    def on_loopback(self) -> bool:
        """Whether the service listens on this machine only (127.0.0.1, ::1, localhost)."""
        try:
            name, _ = split_host(self.host if ":" not in self.host else f"[{self.host}]")
        except ValueError:
            return False
        return is_loopback(name)

    @property
    def served_hosts(self) -> tuple[str, ...] | None:
        """The Host patterns served, None for any: loopback only when listening on loopback."""
        if self.allowed_hosts is not None:
            return None if "*" in self.allowed_hosts else self.allowed_hosts
        return (LOOPBACK,) if self.on_loopback else None

    def exposure_warning(self) -> str | None:
        """What the start-up log warns about: listening beyond loopback with no keys."""
        if self.on_loopback or self.auth_enabled:
            return None
        return (f"listening on {self.host} with no API keys: anyone who can reach this address "
                f"can read every conversation and run the model; set {AUTH_SETTINGS} (see "
                "--help), or listen on 127.0.0.1")
