"""Where the queue's time comes from.

Every moment the queue records or compares — when an item became deliverable, a claim's
lease (delivery and heartbeats), a retry's due time, completion times, the ages in the
metrics — is read from one `Clock` given to `WorkQueue` (and `QueueCollector`) and passed
to the Lua scripts as an argument; no script calls Redis' TIME. (The one exception to
the client's time: an entry a worker's blocking read took but never accepted has no lease
and is dated by how long Redis says it has been pending, counted back from `now`.) The
default is the system clock; tests give a `ManualClock` and advance it instead of
sleeping through heartbeat timeouts and backoffs.

Every worker and exporter of a deployment compares leases written by the others, so their
clocks must agree to well within the heartbeat timeout (NTP does).

What the clock does not govern: how long a claim blocks waiting for work (`claim(wait=)`,
`poll_interval`) is real waiting, done by Redis and the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""


def system_clock() -> datetime:
    """The wall clock, in UTC: the default `Clock`."""
    return datetime.now(UTC)


class ManualClock:
    """A `Clock` that stands still until told to move (tests, simulations)."""

    def __init__(self, start: datetime | None = None) -> None:
        start = start or datetime(2030, 1, 1, tzinfo=UTC)
        if start.tzinfo is None:
            raise ValueError("a ManualClock needs a timezone-aware start time")
        self._now = start

    def __call__(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        """Move forward by `seconds` (not backward: the queue's time never runs back);
        returns the new time."""
        if seconds < 0:
            raise ValueError(f"a clock does not run backward (advance by {seconds} s)")
        self._now += timedelta(seconds=seconds)
        return self._now

    def __repr__(self) -> str:
        return f"ManualClock({self._now.isoformat()})"
