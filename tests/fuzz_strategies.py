"""Hypothesis strategies for tests/test_fuzz.py: hostile JSON values, request bodies, header
values, ids, paths, query strings and WebSocket frames.

The ids of the service under test exist only once its fixture runs, so a strategy draws a `Ref`
("the fixture's session", "its finished reply", "its user turn") where a real id belongs, and a
plain string for a made-up one; the test resolves refs (`resolve`) before it sends anything.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

MAX_BODY = 16_384  # max_body_bytes of the fuzzed app (bodies and WebSocket frames)
MODEL = "scripted"  # ScriptedEngine.model_name


@dataclass(frozen=True)
class Ref:
    """A real id of the fuzzed service: `sid`, `reply` (a finished reply) or `user` (a user turn)."""

    name: str


SID, REPLY, USER = Ref("sid"), Ref("reply"), Ref("user")


def resolve(value: Any, ids: dict[str, str]) -> Any:
    """`value` with every Ref replaced by its id."""
    if isinstance(value, Ref):
        return ids[value.name]
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    return value


def path_id(value: Ref | str, ids: dict[str, str]) -> str:
    """An id as a path segment: a made-up one percent-encoded (a `%2F` in it is a `/` once the
    server unquotes the path: that reaches other routes, which is fine)."""
    return ids[value.name] if isinstance(value, Ref) else quote(value, safe="")


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, picked in proportion to its weight (st.one_of does not weigh)."""
    return st.sampled_from([s for weight, s in choices for _ in range(weight)]).flatmap(
        lambda strategy: strategy)


# -- JSON values ------------------------------------------------------------------------------

BIG_INTS = [2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30,
            -(10**30), 10**300, -(10**300)]
ODD_FLOATS = [1e308, -1e308, 5e-324, -0.0, 1e-300, 0.1, 1.5, 2.0000001, -2.0000001,
              float("nan"), float("inf"), float("-inf")]  # the last three: NaN, Infinity literals
ODD_STRINGS = [
    "", " ", "\t\n", "NaN", "nan", "-NaN", "Infinity", "-Infinity", "inf", "1e999", "-0", "0x10",
    "0.5", "1", "-1", "true", "false", "null", "None", "[]", "{}", "\uff10", "\u0661\u0662",
    "\u00b2", "\u202e", "\x00", "\ufeff", "\U0001f4a5", "a\u0301", "\ud800", "\udfff", "%00",
    "../..", "<script>alert(1)</script>", "' OR 1=1 --", "\\", '"', MODEL, "user", "system",
    "assistant", "tool", "text", "message", "ping", "resume", "cancel", "msg_", "ses_",
]
# Keys the service knows somewhere, so that wrong values land on real fields.
KNOWN_KEYS = [
    "type", "content", "params", "message_id", "after", "system", "title", "model", "messages",
    "prompt", "role", "name", "text", "temperature", "top_p", "top_k", "max_tokens", "stop",
    "seed", "presence_penalty", "frequency_penalty", "ignore_eos", "n", "stream",
    "stream_options", "include_usage", "user", "logprobs", "top_logprobs",
    "max_completion_tokens", "repetition_penalty", "logit_bias", "tools", "tool_choice",
    "response_format", "echo", "best_of", "store", "suffix", "metadata", "__proto__",
]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from(BIG_INTS), st.floats(),
    st.sampled_from(ODD_FLOATS), st.text(max_size=16), st.sampled_from(ODD_STRINGS))
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(max_size=10))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=10)
# Values that are nearly right somewhere: reach past the first check to the next one.
PLAUSIBLE = [
    True, False, None, 0, 1, 2, -1, -2, 3, 5, 6, 8, 9, 20, 21, 255, 256, 2**20, 2**20 + 1, 0.0,
    0.5, 1.0, 2.0, 2.5, -2.0, -2.5, "hi", "", " ", [], {}, ["a"], ["a"] * 9, ["x" * 257], [1, 2, 3],
    [-1], [], {"include_usage": True}, {"include_usage": "yes"}, {"type": "text"},
    {"type": "json_object"}, [{"type": "text", "text": "hi"}], [{"type": "image_url"}],
    {"role": "user", "content": "x"}, {"role": "tool", "content": "x"},
    [{"role": "user", "content": "hi"}], [{"role": "system"}], "x" * 300,
]
values = st.one_of(json_values, st.sampled_from(PLAUSIBLE))


def dumps(value: Any, ascii_only: bool = True) -> bytes:
    """JSON as Python writes it: big integers as they are, NaN and Infinity as bare words, text
    escaped to ASCII or raw UTF-8; lone surrogates as \\ud800 escapes either way."""
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "backslashreplace")


# -- request bodies ---------------------------------------------------------------------------

PARAMS = ["temperature", "top_p", "top_k", "max_tokens", "stop", "seed", "presence_penalty",
          "frequency_penalty", "ignore_eos"]
NEUTRAL = ["repetition_penalty", "logit_bias", "parallel_tool_calls", "tool_choice", "tools",
           "store", "suffix", "best_of", "service_tier", "metadata", "echo", "response_format"]
OPENAI = [*PARAMS, "n", "stream", "stream_options", "stream_options.include_usage", "user",
          *NEUTRAL]
# kind -> (a valid body, the paths of its fields, dotted; a number is a list index)
TEMPLATES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "session": ({"system": "Be brief.", "title": "fuzz", "params": {"max_tokens": 2}},
                ["system", "title", "params", *(f"params.{p}" for p in PARAMS)]),
    "message": ({"content": "hi", "params": {"max_tokens": 2}},
                ["content", "params", *(f"params.{p}" for p in PARAMS)]),
    "cancel": ({}, ["message_id", "reason", "content"]),
    "chat": ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
             ["model", "messages", "messages.0", "messages.0.role", "messages.0.content",
              "messages.0.content.0", "messages.0.content.0.text", "messages.0.name",
              "messages.1", "max_completion_tokens", "logprobs", "top_logprobs", *OPENAI]),
    "completion": ({"model": MODEL, "prompt": "hi", "max_tokens": 2},
                   ["model", "prompt", "prompt.0", "logprobs", *OPENAI]),
    "engine": ({"prompt": "hi", "max_tokens": 2}, ["model", "prompt", "prompt.0", "logprobs",
                                                   *OPENAI]),
}
LONG_FIELDS = {"session": ["system", "title"], "message": ["content", "params.stop"],
               "cancel": ["reason"], "chat": ["messages.0.content", "model", "user"],
               "completion": ["prompt", "model", "user"], "engine": ["prompt", "suffix"]}


def set_path(body: Any, path: str, value: Any, *, delete: bool = False) -> Any:
    """`body` with the value at the dotted `path` set (or deleted); missing levels are created,
    and a level that is not a container is replaced by one."""
    head, _, rest = path.partition(".")
    index = int(head) if head.isdigit() else None
    if index is not None:
        items = list(body) if isinstance(body, list) else []
        if delete or rest == "":
            if delete:
                return items[:index] + items[index + 1:]
            return [*items[:index], value, *items[index + 1:]] if index < len(items) \
                else [*items, value]
        inner = items[index] if index < len(items) else {}
        return [*items[:index], set_path(inner, rest, value, delete=delete), *items[index + 1:]] \
            if index < len(items) else [*items, set_path(inner, rest, value, delete=delete)]
    container = dict(body) if isinstance(body, dict) else {}
    if rest == "":
        if delete:
            container.pop(head, None)
        else:
            container[head] = value
        return container
    container[head] = set_path(container.get(head, {}), rest, value, delete=delete)
    return container


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> Any:
    """The valid body of `kind` with one to three fields wrong: a wrong value, deleted, or an
    unknown key beside them."""
    template, fields = TEMPLATES[kind]
    body: Any = copy.deepcopy(template)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["set", "set", "set", "delete", "unknown"]))
        if op == "unknown":
            parent = draw(st.sampled_from(["", *(f for f in fields if "." not in f)]))
            key = draw(keys)
            body = set_path(body, f"{parent}.{key}" if parent else key, draw(values)) \
                if key and "." not in key and not key.isdigit() else body
        else:
            body = set_path(body, draw(st.sampled_from(fields)), draw(values),
                            delete=op == "delete")
    return body


BODY_SHAPES = ["mutated"] * 6 + ["valid", "any_json", "any_json", "bytes", "truncated", "long",
                                 "long", "empty", "framed"]


@st.composite
def bodies(draw: st.DrawFn, kind: str) -> bytes:
    """A request body for an endpoint of `kind`: mostly near-valid JSON with something wrong,
    and any JSON value, random bytes, truncated JSON, long strings (about a tenth over
    MAX_BODY), an empty body, or JSON framed in garbage."""
    shape = draw(st.sampled_from(BODY_SHAPES))
    template = TEMPLATES[kind][0]
    if shape == "valid":
        return dumps(template)
    if shape == "mutated":
        return dumps(draw(mutated(kind)), draw(st.booleans()))
    if shape == "any_json":
        return dumps(draw(json_values), draw(st.booleans()))
    if shape == "bytes":
        return draw(st.binary(max_size=200))
    if shape == "truncated":
        whole = dumps(draw(st.one_of(st.just(template), mutated(kind))))
        return whole[: draw(st.integers(0, len(whole) - 1))]
    if shape == "empty":
        return b""
    if shape == "long":
        if draw(st.booleans()):  # exactly at the limit, or one byte over: pad with whitespace
            whole = dumps(template)
            return whole + b" " * (MAX_BODY - len(whole) + draw(st.integers(0, 1)))
        size = draw(st.one_of(st.integers(1000, MAX_BODY - 200), st.integers(MAX_BODY - 200,
                                                                             MAX_BODY + 4000)))
        char = draw(st.sampled_from(["x", " ", "\u00e9", "\U0001f4a5", "\\", "\n"]))
        text = char * max(1, size // len(char.encode()))
        return dumps(set_path(template, draw(st.sampled_from(LONG_FIELDS[kind])), text), False)
    whole = dumps(draw(st.one_of(st.just(template), mutated(kind))))
    return draw(st.sampled_from([
        b"\xef\xbb\xbf" + whole, whole + b"garbage", b"\x00" + whole, whole + b"\x00",
        whole[:-1] + b",}", whole.decode().encode("utf-16"), whole + whole,
        whole.replace(b'"hi"', b'"h\xe9"'), whole.replace(b'"hi"', b"'hi'"),
        b"[" * 5000 + b"]" * 5000, b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b'{"content": ' + b"[" * 2000 + b"]" * 2000 + b"}", b"content=hi&params=1",
    ]))


CONTENT_TYPES = [
    "application/json", "application/json", "application/json; charset=utf-8",
    "APPLICATION/JSON", "application/vnd.api+json", "application/x-www-form-urlencoded",
    "text/plain", "text/html", "multipart/form-data; boundary=x", "application/xml", "*/*", "",
    ";", "application/json; charset=latin-1", "application/jsonx", "json", " application/json ",
]


# -- headers ----------------------------------------------------------------------------------

# What a header value may carry over HTTP/1.1: no control characters; sent as UTF-8 bytes.
header_chars = st.characters(codec="utf-8", exclude_categories=("Cc", "Cs"))
header_text = st.text(header_chars, max_size=40)


def long_text(low: int, high: int) -> st.SearchStrategy[str]:
    return st.builds(lambda c, n: c * n, st.sampled_from(["a", "9", "-", " ", "\u00e9"]),
                     st.integers(low, high))


content_types = weighted((4, st.just("application/json")), (2, st.none()),
                         (1, st.sampled_from(CONTENT_TYPES)), (1, header_text))
accepts = st.one_of(st.sampled_from([
    "text/event-stream", "application/json", "*/*", "text/event-stream;q=0", "text/html", "",
    "text/event-stream, application/json", "TEXT/EVENT-STREAM", "application/x-ndjson",
    "text/*"]), header_text, long_text(1000, 8000))
last_event_ids = weighted(
    (1, st.integers().map(str)), (1, st.sampled_from(BIG_INTS).map(str)),
    (3, st.sampled_from(["-1", "-2", "0", "3", "4", "5", "--1", "-0", "+1", " 2 ", "1.0", "1e3",
                         "0x1", "\u00b2", "\u0661\u0662", "-\u00b2", "9" * 5000, "-" + "9" * 5000,
                         "9" * 4300, "NaN", "", " ", "-", "\u2212" + "1"])),
    (1, header_text))
request_ids = st.one_of(header_text, st.sampled_from(
    ["", "-", "../../etc/passwd", "%00", "\u202e", "req-1", "a" * 128, "a" * 129]),
    long_text(1000, 10_000))


def garbage_credentials(secret: str) -> st.SearchStrategy[str]:
    """Authorization values that are not `Bearer <secret>` in any spelling the server may
    accept (scheme case, spaces around the token)."""

    def not_the_key(value: str) -> bool:
        scheme, _, token = value.partition(" ")
        return not (scheme.lower() == "bearer" and token.strip() == secret)

    return st.one_of(
        st.sampled_from(["", " ", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", f"Token {secret}",
                         f"Bearer{secret}", f"Bearer {secret}x", f"Bearer {secret[:-1]}",
                         f"Bearer {secret.upper()}", "Bearer null", "Bearer undefined",
                         f"Bearer {secret}\u00e9", f"Bearer bearer.{secret}"]),
        header_text.map(lambda t: "Bearer " + t), header_text,
        long_text(1000, 9000).map(lambda t: "Bearer " + t),
    ).filter(not_the_key)


# -- ids, paths, query strings ----------------------------------------------------------------

random_ids = st.one_of(
    st.text(max_size=30).filter(lambda t: t not in ("", ".", "..")),
    st.sampled_from(["ses_nope", "msg_nope", "ses_" + "0" * 24, "msg_" + "f" * 24, "0", "-1",
                     "null", "%", "%2F", "a/b", "\u00e9", "\U0001f4a5", "x" * 3000]))
sids = weighted((3, st.just(SID)), (1, random_ids))
mids = weighted((2, st.just(REPLY)), (1, st.just(USER)), (1, random_ids))


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    """`?...`: last_event_id and random keys, percent-encoded, or raw garbage; or nothing."""
    shape = draw(st.sampled_from(["none", "pairs", "pairs", "raw"]))
    if shape == "none":
        return ""
    if shape == "raw":
        raw = draw(st.text(st.sampled_from("ab=&%;+?#/09ZzX \u00e9-_.~[]"), max_size=40))
        return "?" + quote(raw, safe="=&%;+/?[]")
    pairs = draw(st.lists(st.tuples(
        st.one_of(st.just("last_event_id"), st.just("last_event_id"), st.text(max_size=10)),
        st.one_of(last_event_ids, st.text(max_size=20))), min_size=1, max_size=4))
    return "?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


GET_PATHS = ["/v1/sessions", "/v1/sessions/{sid}", "/v1/sessions/{sid}/messages/{mid}",
             "/v1/sessions/{sid}/messages/{mid}/stream", "/v1/sessions/{sid}/messages/{mid}/stream",
             "/v1/models", "/health", "/ready", "/metrics", "/", "/static/{any}"]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO", "get"]
ROUTE_PATHS = [
    *GET_PATHS, "/v1/sessions/{sid}/messages", "/v1/sessions/{sid}/messages/{mid}/cancel",
    "/v1/chat/completions", "/v1/completions", "/v1/engines/{any}/completions",
    "/v1/engines/scripted/completions", "/v1/sessions/{sid}/ws",
    # unknown routes
    "/v2/sessions", "/v1", "/v1/", "/v1/sessions/", "/v1/sessions//messages", "/v1/chat",
    "/v1/sessions/{sid}/messages/{mid}/{any}", "/v1/sessions/{sid}/{any}", "/.env", "/admin",
    "/static/", "/static/../app/main.py", "/static/%2e%2e/%2e%2e/etc/passwd", "//", "/%00",
    "/{any}", "/v1/{any}", "/health/{any}", "/metrics/{any}",
]
paths = st.tuples(st.sampled_from(ROUTE_PATHS), sids, mids, random_ids)


def fill(template: str, sid: Ref | str, mid: Ref | str, any_id: str, ids: dict[str, str]) -> str:
    return template.replace("{sid}", path_id(sid, ids)).replace("{mid}", path_id(mid, ids)) \
        .replace("{any}", quote(any_id, safe=""))


# -- WebSocket frames -------------------------------------------------------------------------

FRAME_TYPES = ["message", "cancel", "resume", "ping"]
FRAME_FIELDS = ["content", "params", "message_id", "after", "params.temperature",
                "params.max_tokens", "params.stop", "params.bogus", "extra"]


@dataclass(frozen=True)
class Frame:
    """A client frame: `value` is JSON to write (refs resolved), else `raw` as it is."""

    raw: str | bytes | None = None
    value: Any = None
    binary: bool = False  # send as a bytes frame


@st.composite
def typed_frame(draw: st.DrawFn) -> Any:
    """A frame of a known type with one to three fields wrong (or right)."""
    frame: Any = {"type": draw(st.sampled_from(FRAME_TYPES))}
    for _ in range(draw(st.integers(1, 3))):
        field = draw(st.sampled_from(FRAME_FIELDS))
        value = draw(st.one_of(values, st.sampled_from([REPLY, USER]), random_ids))
        frame = set_path(frame, field, value, delete=draw(st.integers(0, 5)) == 0)
    return frame


frame_values = st.one_of(
    typed_frame(), typed_frame(), typed_frame(),
    json_values,  # valid JSON of the wrong shape
    st.builds(lambda t, rest: {**rest, "type": t}, json_values.filter(
        lambda v: not isinstance(v, str)), st.dictionaries(keys, values, max_size=2)),
    st.builds(lambda mid, after: {"type": "resume", "message_id": mid, "after": after},
              st.sampled_from([REPLY, USER, "msg_nope"]),
              st.one_of(st.sampled_from(BIG_INTS), st.integers(-3, 10), st.integers())),
    st.sampled_from([{"type": "ping"}, {"type": "message", "content": "hi"},
                     {"type": "message", "content": "hi", "params": {"max_tokens": 1}},
                     {"type": "cancel"}, {"type": "cancel", "message_id": REPLY},
                     {"type": "resume", "message_id": REPLY, "after": -1},
                     {"type": "resume", "message_id": REPLY, "after": 2}]),
)
frames = st.one_of(
    st.builds(Frame, value=frame_values, binary=st.booleans()),
    st.builds(Frame, value=frame_values, binary=st.booleans()),
    st.builds(Frame, raw=st.one_of(st.text(max_size=64), st.sampled_from(
        ["", " ", "{", "}", "[", "null", '{"type":', "{'type': 'ping'}", "ping", '{"type":"ping"',
         '\ufeff{"type":"ping"}', '{"type":"ping"}{"type":"ping"}', '{"type":"ping","type":1}']))),
    st.builds(Frame, raw=st.one_of(st.binary(max_size=64), st.sampled_from(
        [b"\xff\xfe", b'{"type":"ping"}\x00', b'{"type":"\xff"}', b"\x00" * 10])), binary=st.just(True)),
)
# A frame over the limit (closes 1009), as text or bytes, JSON or not.
oversize_frames = st.builds(
    lambda n, json_like, binary: Frame(
        raw=(('{"type":"message","content":"' + "x" * n + '"}') if json_like else "y" * n)
        if not binary else (b"\xff" * n), binary=binary),
    st.integers(MAX_BODY + 1, MAX_BODY + 3000), st.booleans(), st.booleans())
# A frame exactly at the limit: refused with an error frame at most, never closed.
at_limit_frame = Frame(raw='{"type":"message","content":"' + "x" * (MAX_BODY - 31) + '"}')
