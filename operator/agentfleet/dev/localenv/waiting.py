"""Polling with a deadline: the only way tests and scripts wait for something to happen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeAlias, TypeVar

T = TypeVar("T")

# What a check may return while the awaited thing has not happened yet. False is listed so
# that the idiom `(found := read()) and condition(found) and found` types as T, not object.
NotYet: TypeAlias = Literal[False] | None


class DeadlineExceededError(AssertionError):
    """What was awaited did not happen in time (an AssertionError, so pytest reports it)."""


def wait_for(
    check: Callable[[], T | NotYet],
    timeout: float,
    description: str,
    interval: float = 0.1,
) -> T:
    """Call `check` until it returns something truthy; return that value.

    Exceptions from `check` count as "not yet", and the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise DeadlineExceededError(
                f"timed out after {timeout:.1f}s waiting for {description}; last: {last!r}"
            )
        time.sleep(interval)


async def async_wait_for(
    check: Callable[[], Awaitable[T | NotYet]],
    timeout: float,
    description: str,
    interval: float = 0.1,
) -> T:
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = await check()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise DeadlineExceededError(
                f"timed out after {timeout:.1f}s waiting for {description}; last: {last!r}"
            )
        await asyncio.sleep(interval)
