"""Authentication, without HTTP: API keys and JWTs in, a `Principal` (owner, scopes) out.

`Authenticator.from_settings(settings)` builds it (None when auth is off); `authenticate(token)`
returns the Principal or raises `Unauthenticated`. The HTTP side (`app/api/http/auth.py`) finds the
credential in a request and checks the scope a route needs. Nothing here imports Starlette.
"""

from app.auth.authenticator import UNAUTHENTICATED, Authenticator
from app.auth.keys import KeyRing, hash_secret, new_key, parse_keys_env, parse_keys_file
from app.auth.principal import SCOPES, Principal, Scope
from app.auth.tokens import TokenVerifier

__all__ = [
    "SCOPES",
    "UNAUTHENTICATED",
    "Authenticator",
    "KeyRing",
    "Principal",
    "Scope",
    "TokenVerifier",
    "hash_secret",
    "new_key",
    "parse_keys_env",
    "parse_keys_file",
]
