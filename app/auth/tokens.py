"""JWT bearer tokens: HS256 with a shared secret or RS256 with a public key, one of them, pinned.

`exp`, `aud` and `sub` are required; the subject becomes the owner. Scopes come from the OAuth
`scope` claim (space-separated) and/or a `scopes` list; a token with neither gets `chat`. Scope
names this service does not know (`openid`, `email`, ...) are ignored: identity providers put
their own in the same claim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.auth.principal import SCOPES, Principal, Rejected
from app.errors import ConfigError
from app.settings import Settings
from app.settings_types import env_name

SECRET_ENV = env_name("jwt_secret")
PUBLIC_KEY_ENV = env_name("jwt_public_key")
# RFC 7518 section 3.2: an HS256 key at least as long as the hash (32 bytes); PyJWT would also
# warn on every shorter one. RSA below 2048 bits is breakable.
MIN_SECRET_BYTES = 32
MIN_RSA_BITS = 2048
Algorithm = Literal["HS256", "RS256"]


class _Claims(BaseModel):
    # Declared, so a token with `sub: 42` or `scope: ["chat"]` is refused, not guessed at.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    sub: str = Field(min_length=1)
    scope: str | None = None
    scopes: list[str] | None = None

    def granted(self) -> frozenset[str]:
        if self.scope is None and self.scopes is None:
            return frozenset({"chat"})
        named = set((self.scope or "").split()) | set(self.scopes or ())
        return frozenset(named.intersection(SCOPES))


class TokenVerifier:
    def __init__(self, key: bytes | RSAPublicKey, algorithm: Algorithm, audience: str) -> None:
        # Exactly one algorithm, chosen by the key type: never `none`, and never HS256 with an
        # RSA public key as the HMAC secret (algorithm confusion: that key is public).
        if (algorithm == "HS256") != isinstance(key, bytes):
            raise ConfigError(f"{algorithm} does not go with a key of type {type(key).__name__}")
        self._key = key
        self.algorithm = algorithm
        self.audience = audience

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier | None:
        audience = settings.jwt_audience or ""  # settings require it along with a key
        if settings.jwt_secret is not None:
            secret = settings.jwt_secret.encode()
            if len(secret) < MIN_SECRET_BYTES:
                raise ConfigError(f"{SECRET_ENV} must be at least {MIN_SECRET_BYTES} bytes "
                                  "(HS256, RFC 7518 3.2); e.g. `openssl rand -base64 48`")
            return cls(secret, "HS256", audience)
        if settings.jwt_public_key is not None:
            return cls(load_public_key(settings.jwt_public_key), "RS256", audience)
        return None

    def verify(self, token: str) -> Principal:
        """The token's principal, or Rejected saying why."""
        try:
            claims = jwt.decode(token, self._key, algorithms=[self.algorithm],
                                audience=self.audience,
                                options={"require": ["exp", "aud", "sub"]})
            parsed = _Claims.model_validate(claims)
        except jwt.PyJWTError as exc:
            raise Rejected(f"jwt: {type(exc).__name__}: {exc}") from None
        except ValidationError as exc:
            fields = ", ".join(str(error["loc"][0]) for error in exc.errors() if error["loc"])
            raise Rejected(f"jwt: bad claims: {fields}") from None
        return Principal(owner=parsed.sub, scopes=parsed.granted(), via="jwt")


def load_public_key(value: str) -> RSAPublicKey:
    """An RSA public key from PEM text, or from the path of a PEM file; ConfigError if not."""
    if "-----BEGIN" in value:
        # A PEM squeezed into one environment line often carries literal "\n".
        pem, source = value.replace("\\n", "\n").encode(), PUBLIC_KEY_ENV
    else:
        path = Path(value).expanduser()
        source = f"{PUBLIC_KEY_ENV} ({path})"
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{PUBLIC_KEY_ENV}: not PEM text, and cannot read it as a file: "
                              f"{exc}") from None
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{source}: not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    if not isinstance(key, RSAPublicKey):
        raise ConfigError(f"{source}: RS256 needs an RSA public key, got {type(key).__name__}")
    if key.key_size < MIN_RSA_BITS:
        raise ConfigError(f"{source}: the RSA key has {key.key_size} bits, at least "
                          f"{MIN_RSA_BITS} are needed")
    return key
