"""Host names as a browser sends them: `host[:port]` split, loopback told apart, patterns matched.

Pure and shared: the settings check `STREAMCHAT_ALLOWED_HOSTS` and `STREAMCHAT_CORS_ORIGINS`
with it, and `api/http/browser_guard.py` checks every request's `Host` and `Origin` with it."""

from __future__ import annotations

import ipaddress
import re

# A DNS name (letters, digits, '-', '.'), optionally under a `*.` wildcard.
_NAME = re.compile(r"(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
LOOPBACK = "loopback"  # an allowed-hosts entry: localhost, *.localhost, 127.0.0.0/8, [::1]
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def split_host(value: str) -> tuple[str, int | None]:
    """`Host`'s `name`, `name:port`, `[v6]` or `[v6]:port` as (lowercase name, port); a v6
    address keeps its brackets. ValueError when it is none of these."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            raise ValueError(f"{value!r} opens '[' without closing it")
        name, rest = value[:end + 1], value[end + 1:]
        ipaddress.IPv6Address(name[1:-1])  # raises ValueError
        if rest and not rest.startswith(":"):
            raise ValueError(f"{value!r} has text after ']'")
        port = rest[1:] if rest else None
    else:
        name, sep, port_text = value.rpartition(":")
        name, port = (name, port_text) if sep else (value, None)
        name = name.rstrip(".")  # `localhost.` is `localhost`
        if not name or not _NAME.fullmatch(name):
            raise ValueError(f"{value!r} is not a host name or address")
    if port is None:
        return name, None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} has a bad port")
    return name, int(port)


def is_loopback(name: str) -> bool:
    """localhost, *.localhost (RFC 6761: always this machine), 127.0.0.0/8 and ::1."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def matches(pattern: str, name: str, port: int | None) -> bool:
    """Whether one allowed-hosts entry (`*`, `loopback`, `name`, `*.domain`, each with an
    optional `:port`) takes this host; an entry without a port takes any port."""
    if pattern == "*":
        return True
    want_name, want_port = split_host(pattern)
    if want_port is not None and want_port != port:
        return False
    if want_name == LOOPBACK:
        return is_loopback(name)
    if want_name.startswith("*."):
        return name.endswith(want_name[1:])
    return name == want_name


def split_origin(origin: str) -> tuple[str, str, int | None]:
    """`scheme://host[:port]` as (scheme, host, port), the scheme's default port as None, so
    that it compares equal to a `Host` without one. ValueError for anything else (a path,
    `null`)."""
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or not re.fullmatch(r"[a-z][a-z0-9+.-]*", scheme) or not rest or "/" in rest:
        raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path)")
    name, port = split_host(rest)
    if name.startswith("*."):
        raise ValueError(f"{origin!r}: an origin names one host, without '*'")
    return scheme, name, None if port == DEFAULT_PORTS.get(scheme) else port
