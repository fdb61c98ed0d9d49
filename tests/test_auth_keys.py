from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.auth import keys as keys_module
from app.auth.keys import KeyRing, hash_secret, new_key, parse_keys_env, parse_keys_file
from app.errors import ConfigError

ENV = "alice:sk-alice-1:chat, ops:sk-ops-1:chat+admin,"  # spaces and a trailing comma are fine


def ring_from_env(text: str) -> KeyRing:
    return KeyRing(parse_keys_env(text))


def test_environment_entries_verify_with_their_scopes() -> None:
    ring = ring_from_env(ENV)
    alice, ops = ring.verify("sk-alice-1"), ring.verify("sk-ops-1")
    assert alice is not None and (alice.key_id, alice.scopes) == ("alice", {"chat"})
    assert ops is not None and (ops.key_id, ops.scopes) == ("ops", {"chat", "admin"})
    assert len(ring) == 2


@pytest.mark.parametrize("presented", [
    "sk-alice-2", "sk-alice-", "sk-alice", "s", "", "sk-alice-1 ", "sk-alice-10", "SK-ALICE-1",
    hash_secret("sk-alice-1").hex(),  # the stored hash is not a key
])
def test_anything_but_the_exact_secret_is_refused(presented: str) -> None:
    assert ring_from_env(ENV).verify(presented) is None


@pytest.mark.parametrize(("text", "needle", "secret"), [
    ("alice:sk-alice-1:root", "STREAMCHAT_API_KEYS entry 1 (key 'alice'): unknown scope", "sk-alice-1"),
    ("bob:sk-bob-1:chat,alice:sk-alice-1:chat+", "entry 2 (key 'alice'): unknown scope", "sk-alice-1"),
    ("alice:sk-alice-1:", "STREAMCHAT_API_KEYS entry 1 (key 'alice'): no scopes", "sk-alice-1"),
    ("alice:sk-alice-1", "STREAMCHAT_API_KEYS entry 1: expected id:secret:scope+scope", "sk-alice-1"),
    ("alice:sk:alice:chat", "STREAMCHAT_API_KEYS entry 1: expected id:secret", "sk:alice"),
    ("sk-lonely-secret", "STREAMCHAT_API_KEYS entry 1: expected id:secret", "sk-lonely-secret"),
    (":sk-anon-1:chat", "STREAMCHAT_API_KEYS entry 1: empty id", "sk-anon-1"),
    ("alice::chat", "STREAMCHAT_API_KEYS entry 1 (key 'alice'): empty secret", "\0"),
    ("al/ice:sk-alice-1:chat", "entry 1 (key 'al/ice'): an id is 1 to 64 letters", "sk-alice-1"),
    ("alice:sk-a-1:chat,alice:sk-a-2:admin",
     "key id 'alice' is given twice: STREAMCHAT_API_KEYS entry 1 and STREAMCHAT_API_KEYS entry 2",
     "sk-a-"),
    ("alice:sk-same-1:chat,bob:sk-same-1:chat",
     "keys 'alice' and 'bob' have the same secret: STREAMCHAT_API_KEYS entry 1 and", "sk-same-1"),
])
def test_bad_entries_are_one_line_naming_the_entry_without_its_secret(
        text: str, needle: str, secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ring_from_env(text)
    message = caught.value.message
    assert needle in message
    assert "\n" not in message and secret not in message


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "keys"
    path.write_text("\n".join(lines) + "\n")
    return path


def line_for(key_id: str, secret: str, scopes: str = "chat") -> str:
    return f"{key_id}:sha256:{hash_secret(secret).hex()}:{scopes}"


def test_keys_file_with_comments_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "# streamchat keys", "", line_for("alice", "sk-alice-1"),
                 "   # ops, rotated monthly",
                 f"ops:sha256:{hash_secret('sk-ops-1').hex().upper()}:admin")
    ring = KeyRing(parse_keys_file(path))
    assert len(ring) == 2
    alice, ops = ring.verify("sk-alice-1"), ring.verify("sk-ops-1")
    assert alice is not None and alice.key_id == "alice" and alice.scopes == {"chat"}
    assert ops is not None and ops.scopes == {"admin"}  # upper-case hex is read too
    assert ring.verify("sk-bob-1") is None


H = hash_secret("sk-x").hex()


@pytest.mark.parametrize(("bad", "needle"), [
    ("alice:sk-alice-1:chat", "line 3: expected id:sha256:HEX:scope+scope"),
    (f"alice:md5:{H}:chat", "line 3 (key 'alice'): the second field must be sha256"),
    ("alice:sha256:abc123:chat", "line 3 (key 'alice'): the hash must be 64 hex digits"),
    (f"alice:sha256:{H[:-1]}g:chat", "line 3 (key 'alice'): the hash must be 64 hex digits"),
    (f"alice:sha256:{H}:chat+root", "line 3 (key 'alice'): unknown scope"),
    (f"alice:sha256:{H}:", "line 3 (key 'alice'): no scopes"),
    (f":sha256:{H}:chat", "line 3: empty id"),
    (line_for("bob", "sk-bob-2"), "key id 'bob' is given twice"),
    (line_for("carol", "sk-bob-1"), "keys 'bob' and 'carol' have the same secret"),
])
def test_bad_keys_file_lines_are_named_by_number(tmp_path: Path, bad: str, needle: str) -> None:
    path = write(tmp_path, "# keys", line_for("bob", "sk-bob-1"), bad)
    with pytest.raises(ConfigError) as caught:
        KeyRing(parse_keys_file(path))
    message = caught.value.message
    assert needle in message and "\n" not in message
    assert f"STREAMCHAT_API_KEYS_FILE {path} line" in message
    assert "sk-alice-1" not in message
    if "given twice" in needle or "same secret" in needle:
        assert "line 2 and" in message and message.endswith("line 3")


def test_missing_keys_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="STREAMCHAT_API_KEYS_FILE: cannot read"):
        parse_keys_file(tmp_path / "absent")


def reachable(obj: Any, seen: set[int] | None = None) -> Iterator[Any]:
    """Every value reachable from obj through attributes and containers."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    yield obj
    children: list[Any] = []
    if isinstance(obj, dict):
        children = [*obj.keys(), *obj.values()]
    elif isinstance(obj, list | tuple | set | frozenset):
        children = list(obj)
    elif not isinstance(obj, str | bytes | int | float | bool | type(None)):
        children = list(getattr(obj, "__dict__", {}).values())
        for klass in type(obj).__mro__:
            children += [getattr(obj, slot) for slot in getattr(klass, "__slots__", ())
                         if hasattr(obj, slot)]
    for child in children:
        yield from reachable(child, seen)


def test_only_hashes_are_kept() -> None:
    ring = ring_from_env("alice:sk-alice-secret-1:chat,ops:sk-ops-secret-1:admin")
    values = list(reachable(ring))
    assert any(value == hash_secret("sk-alice-secret-1") for value in values)  # the walk works
    for value in values:
        if isinstance(value, str | bytes):
            text = value if isinstance(value, str) else value.decode("latin-1")
            assert "secret" not in text, f"the ring holds a secret: {value!r}"


def test_verify_compares_with_every_key_even_after_a_match(monkeypatch: pytest.MonkeyPatch) -> None:
    ring = ring_from_env("a:sk-a:chat,b:sk-b:chat,c:sk-c:chat")
    calls: list[bytes] = []
    real = keys_module.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", counting)
    key = ring.verify("sk-a")  # the first key
    assert key is not None and key.key_id == "a"
    assert len(calls) == 3


def test_new_key_parses_back_and_verifies(tmp_path: Path) -> None:
    secret, line = new_key("alice", ["chat", "admin"])
    assert re.fullmatch(r"sk-alice-[A-Za-z0-9_-]{43}", secret)
    assert re.fullmatch(r"alice:sha256:[0-9a-f]{64}:chat\+admin", line)
    assert secret not in line
    ring = KeyRing(parse_keys_file(write(tmp_path, line)))
    key = ring.verify(secret)
    assert key is not None and key.key_id == "alice" and key.scopes == {"chat", "admin"}
    assert ring.verify(secret[:-1]) is None


def test_new_keys_differ_and_take_scopes_as_text() -> None:
    first, _ = new_key("bob")
    second, line = new_key("bob", "admin,chat")
    assert first != second
    assert line.endswith(":chat+admin") and new_key("bob")[1].endswith(":chat")


@pytest.mark.parametrize(("key_id", "scopes"), [
    ("", "chat"), ("a:b", "chat"), ("a b", "chat"), ("alice", "root"), ("alice", ""), ("alice", []),
])
def test_new_key_refuses_a_bad_id_or_scope(key_id: str, scopes: str | list[str]) -> None:
    with pytest.raises(ValueError):
        new_key(key_id, scopes)
