"""The queue's clocks: the system clock and the manual one tests advance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentfleet.core.queue import ManualClock, system_clock


def test_the_system_clock_tells_utc() -> None:
    before = datetime.now(UTC)
    now = system_clock()
    assert now.tzinfo is not None
    assert before <= now <= datetime.now(UTC)


def test_a_manual_clock_moves_only_when_advanced() -> None:
    start = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    clock = ManualClock(start)
    assert clock() == clock() == start
    assert clock.advance(1.5) == start + timedelta(seconds=1.5)
    assert clock() == start + timedelta(seconds=1.5)
    clock.advance(0)
    assert clock() == start + timedelta(seconds=1.5)


def test_a_manual_clock_is_aware_and_never_runs_back() -> None:
    assert ManualClock()().tzinfo is not None
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2031, 1, 1))
    clock = ManualClock()
    with pytest.raises(ValueError, match="backward"):
        clock.advance(-1)
