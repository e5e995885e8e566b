"""When and how long to wait before retrying a model call (pure; the loop does the I/O)."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import datetime

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


RATE_LIMIT_BUDGETS = ("requests", "tokens", "input-tokens", "output-tokens")
"""The budgets the API reports in `anthropic-ratelimit-<budget>-{limit,remaining,reset}`."""


def rate_limit_headroom(headers: Mapping[str, str]) -> tuple[float, float | None] | None:
    """The smallest remaining share of the API's rate-limit budgets, and when that budget
    resets (epoch seconds; None if not said). None when the response carries no such
    headers (an API or a proxy that does not send them)."""
    lowest: tuple[float, float | None] | None = None
    for budget in RATE_LIMIT_BUDGETS:
        prefix = f"anthropic-ratelimit-{budget}"
        try:
            limit = float(headers[f"{prefix}-limit"])
            remaining = float(headers[f"{prefix}-remaining"])
        except (KeyError, ValueError):
            continue
        if limit <= 0:
            continue
        share = min(1.0, max(0.0, remaining / limit))
        reset: float | None = None
        raw_reset = headers.get(f"{prefix}-reset")
        if raw_reset:
            try:
                reset = datetime.fromisoformat(raw_reset).timestamp()
            except ValueError:
                reset = None
        if lowest is None or share < lowest[0]:
            lowest = (share, reset)
    return lowest


def response_status(status: int | None) -> str:
    """The `status` label of a model API response: ok, rate_limited (429), overloaded
    (529), server_error (other 5xx, 408, 409), client_error (other 4xx) or connection."""
    if status is None:
        return "connection"
    if status < 400:
        return "ok"
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    if status >= 500 or status in (408, 409):
        return "server_error"
    return "client_error"
