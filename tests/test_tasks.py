"""Stopping a task and waiting for its end (app/tasks.py), the way every closer does it."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app.tasks import cancel_and_wait, wait_ended


def slow_to_stop(stopping: asyncio.Event, release: asyncio.Event) -> asyncio.Task[None]:
    """A task whose cleanup, once cancelled, waits for `release`."""

    async def run() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopping.set()
            await release.wait()

    return asyncio.create_task(run(), name="slow-to-stop")


async def test_the_task_is_cancelled_and_has_ended_when_it_returns() -> None:
    cleaned = asyncio.Event()

    async def run() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # a cleanup that awaits
            cleaned.set()

    task = asyncio.create_task(run())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled() and cleaned.is_set()


async def test_a_closer_cancelled_while_it_waits_is_cancelled_at_once() -> None:
    stopping, release = asyncio.Event(), asyncio.Event()
    task = slow_to_stop(stopping, release)
    await asyncio.sleep(0)
    closer = asyncio.create_task(cancel_and_wait(task))
    await stopping.wait()
    closer.cancel()  # a shutdown cancels whoever closes
    with pytest.raises(asyncio.CancelledError):
        await closer
    # It did not wait for the task, nor swallow its own cancellation once the task ended.
    assert not task.done()
    release.set()
    await wait_ended(task)
    assert task.cancelled()


async def test_a_closer_called_from_its_cancelled_callers_cleanup_runs_to_its_end() -> None:
    # The caller's cancellation already delivered (it is in its `finally`) is not raised again:
    # the rest of its cleanup still runs.
    child_ended, rest_ran, inside = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def child() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)
            child_ended.set()

    async def caller() -> None:
        task = asyncio.create_task(child())
        try:
            inside.set()
            await asyncio.Event().wait()
        finally:
            await cancel_and_wait(task)
            rest_ran.set()

    outer = asyncio.create_task(caller())
    await inside.wait()
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert child_ended.is_set() and rest_ran.is_set()


async def test_a_task_that_ignores_its_cancellation_is_left_after_the_bound(
        caplog: pytest.LogCaptureFixture) -> None:
    stopping, release = asyncio.Event(), asyncio.Event()
    task = slow_to_stop(stopping, release)
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR, logger="streamchat.tasks"):
        await cancel_and_wait(task, bound_s=0.05)
    assert not task.done()
    assert "slow-to-stop still runs 0.1 s after it was told to stop" in caplog.text
    release.set()
    assert await wait_ended(task)


async def test_the_tasks_failure_is_raised_its_cancellation_is_not() -> None:
    async def fails() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("cleanup failed")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await cancel_and_wait(task)
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait(done)  # already ended: nothing to raise
