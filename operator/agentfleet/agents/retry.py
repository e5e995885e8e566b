"""When and how long to wait before retrying a model call (pure; the loop does the I/O)."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
"""Rate limits (429), overload (529) and transient server errors."""


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """The server's requested wait: `retry-after-ms`, `retry-after` seconds or HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(float(millis) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return max(float(email.utils.mktime_tz(parsed)) - now, 0.0)


def backoff_seconds(retry: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff for the `retry`-th retry (0-based); `jitter` in [0, 1) shaves up
    to a quarter off so that many workers hit by the same overload do not return together."""
    return min(base * 2.0**retry, cap) * (1 - 0.25 * jitter)


def retry_delay(
    retry: int,
    headers: Mapping[str, str],
    now: float,
    base: float,
    cap: float,
    jitter: float,
) -> float:
    """The wait before retry number `retry`: the server's retry-after when it sent one (never
    less), otherwise exponential backoff. The caller refuses waits longer than it allows."""
    requested = retry_after_seconds(headers, now)
    if requested is not None:
        return requested
    return backoff_seconds(retry, base, cap, jitter)
