"""Waiting in tests for something to be true, where nothing sets an event when it becomes so.

A test waits on an event where one exists (the scripted engine's `started`, a reply's `ended`,
a task); where none does, `until` polls the condition, bounded, yielding to the event loop
between two looks (timers still fire on time). Never a fixed sleep: it is either too short on
a slow machine or time thrown away on a fast one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Any

from starlette.testclient import TestClient

TIMEOUT_S = 5.0


async def until(condition: Callable[[], object], timeout_s: float = TIMEOUT_S) -> None:
    """Return as soon as `condition()` is true; TimeoutError past `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() >= deadline:
            raise TimeoutError(f"still not true after {timeout_s} s: {condition.__qualname__}")
        await asyncio.sleep(0)  # one loop step: every ready task runs, then we look again


def until_in_app(client: TestClient, condition: Callable[[], object],
                 timeout_s: float = TIMEOUT_S) -> None:
    """`until`, from a TestClient test: the condition is checked in the app's own event loop
    (the thread that changes what it reads), and the test thread waits for it."""
    assert client.portal is not None, "only inside `with TestClient(...)`"
    client.portal.call(until, condition, timeout_s)


def until_sync(condition: Callable[[], object], timeout_s: float = TIMEOUT_S,
               interval_s: float = 0.02) -> None:
    """`until` across processes (a server's readiness, a signal handled): a bounded poll, the
    only way to learn what another process did."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"still not true after {timeout_s} s: {condition.__qualname__}")
        time.sleep(interval_s)


def status_polled(client: TestClient, url: str, statuses: Collection[str],
                  timeout_s: float = 10.0, interval_s: float = 0.02) -> dict[str, Any]:
    """What a client of work run in the background (a response, a seed's inference task, a
    fine-tuning job) does: GET `url` until its `status` is one of `statuses`, and return that
    body. TimeoutError past `timeout_s`, naming the status it still had."""
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = client.get(url).json()
        if body["status"] in statuses:
            return body
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{url} still {body['status']!r} after {timeout_s} s, "
                               f"not one of {sorted(statuses)}")
        time.sleep(interval_s)
