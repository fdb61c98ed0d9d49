"""Host names as browsers send them (app/host_names.py): split, loopback, patterns, origins."""

from __future__ import annotations

import pytest

from app.host_names import is_loopback, matches, split_host, split_origin


@pytest.mark.parametrize(("value", "expected"), [
    ("localhost", ("localhost", None)),
    ("LocalHost:8000", ("localhost", 8000)),
    ("localhost.:8000", ("localhost", 8000)),
    ("127.0.0.1:8000", ("127.0.0.1", 8000)),
    ("[::1]", ("[::1]", None)),
    ("[::1]:8000", ("[::1]", 8000)),
    ("chat.example.com", ("chat.example.com", None)),
    ("*.example.com:443", ("*.example.com", 443)),
])
def test_split_host(value: str, expected: tuple[str, int | None]) -> None:
    assert split_host(value) == expected


@pytest.mark.parametrize("value", ["", ":8000", "a b", "[::1", "[::1]x", "[nope]", "host:0",
                                   "host:65536", "host:http", "ex ample.com", "a/b"])
def test_split_host_refuses_what_names_no_host(value: str) -> None:
    with pytest.raises(ValueError):
        split_host(value)


@pytest.mark.parametrize(("name", "loopback"), [
    ("localhost", True), ("app.localhost", True), ("127.0.0.1", True), ("127.9.9.9", True),
    ("[::1]", True), ("::1", True), ("0.0.0.0", False), ("10.0.0.1", False),
    ("localhost.attacker.example", False), ("127.0.0.1.nip.io", False), ("example.com", False),
])
def test_is_loopback(name: str, loopback: bool) -> None:
    assert is_loopback(name) is loopback


@pytest.mark.parametrize(("pattern", "host", "allowed"), [
    ("*", "anything.example:1", True),
    ("loopback", "localhost:8000", True),
    ("loopback", "[::1]:1234", True),
    ("loopback", "attacker.example", False),
    ("loopback:8000", "127.0.0.1:8000", True),
    ("loopback:8000", "127.0.0.1:8001", False),
    ("chat.example.com", "chat.example.com:443", True),
    ("chat.example.com", "evil-chat.example.com", False),
    ("chat.example.com:8443", "chat.example.com", False),
    ("*.example.com", "a.b.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "badexample.com", False),
])
def test_matches(pattern: str, host: str, allowed: bool) -> None:
    assert matches(pattern, *split_host(host)) is allowed


@pytest.mark.parametrize(("origin", "expected"), [
    ("http://localhost:8000", ("http", "localhost", 8000)),
    ("https://Chat.Example.com", ("https", "chat.example.com", None)),
    ("https://chat.example.com:443", ("https", "chat.example.com", None)),  # the default port
    ("http://[::1]:3000", ("http", "[::1]", 3000)),
    ("chrome-extension://abcdefghijklmnop", ("chrome-extension", "abcdefghijklmnop", None)),
])
def test_split_origin(origin: str, expected: tuple[str, str, int | None]) -> None:
    assert split_origin(origin) == expected


@pytest.mark.parametrize("origin", ["null", "", "localhost:8000", "http://", "http://a/b",
                                    "http://*.example.com", "1http://a"])
def test_split_origin_refuses_what_is_no_origin(origin: str) -> None:
    with pytest.raises(ValueError):
        split_origin(origin)
