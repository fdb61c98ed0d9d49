"""API keys: parsed from STREAMCHAT_API_KEYS (`id:secret:scope+scope`, comma-separated) and the
keys file (`id:sha256:HEX:scope+scope` a line), kept only as hashes, verified in constant time.

Errors are one line naming the entry (by id, or by line number in the file) and never print a
secret: a ConfigError at start beats a service that silently refuses some of its clients.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.auth.principal import Scope, format_scopes, parse_scopes
from app.errors import ConfigError
from app.settings_types import env_name

KEYS_ENV = env_name("api_keys")
KEYS_FILE_ENV = env_name("api_keys_file")
# Ids travel in secrets (`sk-<id>-...`), logs and session ownership: keep them plain.
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
FILE_LINE_FORMAT = "id:sha256:HEX:scope+scope"


def hash_secret(secret: str) -> bytes:
    # SHA-256, not a slow password hash (bcrypt, scrypt): keys from `new_key` carry 256 random
    # bits, which no offline guessing can reach, so slowness would only cost every request.
    return hashlib.sha256(secret.encode()).digest()


@dataclass(frozen=True, slots=True)
class StoredKey:
    key_id: str
    digest: bytes  # SHA-256 of the secret; the secret itself is never kept
    scopes: frozenset[Scope]
    where: str  # where it was configured, for error messages


class KeyRing:
    """The configured keys. Refuses a duplicate id or secret: either is a copy-paste slip, and a
    shared secret would make the owner of a request ambiguous."""

    def __init__(self, keys: Iterable[StoredKey]) -> None:
        kept: list[StoredKey] = []
        by_id: dict[str, StoredKey] = {}
        by_digest: dict[bytes, StoredKey] = {}
        for key in keys:
            if (first := by_id.get(key.key_id)) is not None:
                raise ConfigError(f"key id {key.key_id!r} is given twice: {first.where} and "
                                  f"{key.where}")
            if (first := by_digest.get(key.digest)) is not None:
                raise ConfigError(f"keys {first.key_id!r} and {key.key_id!r} have the same "
                                  f"secret: {first.where} and {key.where}")
            by_id[key.key_id] = by_digest[key.digest] = key
            kept.append(key)
        self._keys = tuple(kept)

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, secret: str) -> StoredKey | None:
        """The key whose secret this is, or None."""
        digest = hash_secret(secret)
        found: StoredKey | None = None
        # Compare with every key, not stopping at a match, so the time taken tells nothing
        # about whether or where a key matched.
        for key in self._keys:
            if hmac.compare_digest(digest, key.digest):
                found = key
        return found


def check_key_id(key_id: str) -> str:
    if not key_id:
        raise ValueError("empty id")
    if not _KEY_ID.fullmatch(key_id):
        raise ValueError("an id is 1 to 64 letters, digits, '.', '_', '@' or '-', "
                         "starting with a letter or digit")
    return key_id


def _stored(key_id: str, digest: bytes, scopes: str, where: str) -> StoredKey:
    try:
        return StoredKey(check_key_id(key_id), digest, parse_scopes(scopes), where)
    except ValueError as exc:
        raise ConfigError(f"{where}{_named(key_id)}: {exc}") from None


def _named(key_id: str) -> str:
    return f" (key {key_id!r})" if key_id else ""


def parse_keys_env(text: str) -> list[StoredKey]:
    """STREAMCHAT_API_KEYS: `id:secret:scope+scope` entries, comma-separated."""
    keys = []
    for number, entry in enumerate(text.split(","), 1):
        if not entry.strip():
            continue  # a trailing comma is harmless
        where = f"{KEYS_ENV} entry {number}"
        parts = [part.strip() for part in entry.split(":")]
        if len(parts) != 3:
            # Named by position only: with the separators wrong, any part may be the secret.
            raise ConfigError(f"{where}: expected id:secret:scope+scope")
        key_id, secret, scopes = parts
        if not secret:
            raise ConfigError(f"{where}{_named(key_id)}: empty secret")
        keys.append(_stored(key_id, hash_secret(secret), scopes, where))
    return keys


def parse_keys_file(path: Path) -> list[StoredKey]:
    """The keys file: `id:sha256:HEX:scope+scope` a line; blank lines and `#` comments."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{KEYS_FILE_ENV}: cannot read {path}: {exc}") from None
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{KEYS_FILE_ENV} {path} line {number}"
        parts = [part.strip() for part in line.split(":")]
        if len(parts) != 4:
            raise ConfigError(f"{where}: expected {FILE_LINE_FORMAT} (the file holds hashes, "
                              "not secrets: `python -m app keys new` prints a line)")
        key_id, algorithm, hex_digest, scopes = parts
        if algorithm != "sha256":
            raise ConfigError(f"{where}{_named(key_id)}: the second field must be sha256")
        if not _SHA256_HEX.fullmatch(hex_digest):
            raise ConfigError(f"{where}{_named(key_id)}: the hash must be 64 hex digits")
        keys.append(_stored(key_id, bytes.fromhex(hex_digest), scopes, where))
    return keys


def new_key(key_id: str, scopes: str | Iterable[str] = "chat") -> tuple[str, str]:
    """A fresh secret for `key_id` and its keys-file line; ValueError for a bad id or scope.
    `scopes`: names, or one text joined with '+' or ','."""
    granted = parse_scopes(scopes if isinstance(scopes, str) else "+".join(scopes), "+,")
    # 32 random bytes: 43 url-safe characters; the id in front tells a leaked key's owner.
    secret = f"sk-{check_key_id(key_id)}-{secrets.token_urlsafe(32)}"
    line = f"{key_id}:sha256:{hash_secret(secret).hex()}:{format_scopes(granted)}"
    return secret, line
