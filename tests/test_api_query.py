"""Query parameters (app/api/http/query.py): the one reading of flags, integers, cursor pages
and `Last-Event-ID`, each bad value a 400 naming its parameter."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from app.api.http.query import Page, flag, integer, last_event_id
from app.errors import InvalidRequest


def request(query: str = "", headers: dict[str, str] | None = None) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(),
                    "headers": [(k.lower().encode(), v.encode()) for k, v in
                                (headers or {}).items()]})


@pytest.mark.parametrize(("query", "expected"), [
    ("", False), ("stream=true", True), ("stream=TRUE", True), ("stream=false", False)])
def test_a_flag_is_true_or_false(query: str, expected: bool) -> None:
    assert flag(request(query), "stream") is expected


@pytest.mark.parametrize("query", ["stream=1", "stream=", "stream=yes"])
def test_any_other_flag_is_a_400_naming_it(query: str) -> None:
    with pytest.raises(InvalidRequest, match="'stream' must be true or false") as caught:
        flag(request(query), "stream")
    assert caught.value.param == "stream"


def test_an_integer_within_its_bounds() -> None:
    assert integer(request("n=-1"), "n", low=-1, what="a number") == -1
    assert integer(request("n=05"), "n", low=1, high=5, what="a number") == 5
    assert integer(request(), "n", low=0, what="a number") is None


# "--1" passed the old `lstrip("-").isdigit()` and "²" passed `isdigit()`; int() then raised (500).
@pytest.mark.parametrize("value", ["", "x", "--1", "%C2%B2", "1.5", "-2", "6", "9" * 30])
def test_a_bad_integer_is_a_400_saying_what_it_must_be(value: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        integer(request(f"n={value}"), "n", low=-1, high=5, what="an integer from -1 to 5")
    assert caught.value.param == "n"
    assert caught.value.message.startswith("'n' must be an integer from -1 to 5, got ")


def test_a_page_defaults_to_twenty_after_nothing() -> None:
    assert Page.of(request("order=desc")) == Page(None, 20)
    assert Page.of(request("limit=100&after=job_1")) == Page("job_1", 100)
    with pytest.raises(InvalidRequest, match="'limit' must be an integer from 1 to 100") as caught:
        Page.of(request("limit=101"))
    assert caught.value.param == "limit"


def test_last_event_id_prefers_the_header_then_the_query() -> None:
    assert last_event_id(request("last_event_id=4", {"Last-Event-ID": "7"})) == 7
    assert last_event_id(request("last_event_id=4")) == 4
    assert last_event_id(request("last_event_id=4"), query=None) == -1
    assert last_event_id(request("last_event_id=x")) == -1
