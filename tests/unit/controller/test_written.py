"""`operator.written`: what a status writer last wrote, trusted for a while, per pool and
uid, on a clock the test moves."""

from __future__ import annotations

from agentfleet.operator.written import Written

KEY = ("ns", "pool")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_record_is_recalled_for_its_pool_and_uid_only() -> None:
    written: Written[str] = Written(trust_seconds=60, clock=Clock())
    written.remember(KEY, "uid-1", "status")
    assert written.recall(KEY, "uid-1") == "status"
    # The same name, another object (deleted and created again): not this record.
    assert written.recall(KEY, "uid-2") is None
    assert written.recall(("ns", "other"), "uid-1") is None
    written.forget(KEY)
    assert written.recall(KEY, "uid-1") is None


def test_a_record_is_trusted_for_its_window_then_dropped() -> None:
    clock = Clock()
    written: Written[str] = Written(trust_seconds=60, clock=clock)
    written.remember(KEY, "uid", "first")
    clock.now += 60
    assert written.recall(KEY, "uid") == "first"
    clock.now += 0.5
    assert written.recall(KEY, "uid") is None
    assert len(written) == 0


def test_new_records_sweep_out_the_expired_ones() -> None:
    clock = Clock()
    written: Written[int] = Written(trust_seconds=60, clock=clock)
    for n in range(100):
        written.remember(("ns", f"pool-{n}"), "uid", n)
    clock.now += 61
    written.remember(KEY, "uid", 1)
    assert len(written) == 1
