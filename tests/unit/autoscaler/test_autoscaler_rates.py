"""The regular arrival rate behind the forecast: bursts damped, trickles kept."""

from __future__ import annotations

import pytest

from agentfleet.operator.autoscaler.rates import buckets, regular_rate

pytestmark = pytest.mark.unit


def test_steady_traffic_is_its_mean() -> None:
    assert regular_rate([2, 3, 2, 1], bucket_seconds=900) == pytest.approx(8 / 3600)


def test_a_burst_counts_as_twice_a_usual_quarter() -> None:
    # 45 items in one quarter among quarters of 2: it counts as 4.
    assert regular_rate([2, 2, 45, 2, 2, 2, 2, 2], 900) == pytest.approx((7 * 2 + 4) / 7200)


def test_a_trickles_occasional_pair_is_not_cut() -> None:
    # Median 0: the cap is its floor of two items.
    assert regular_rate([0, 2, 0, 1, 0, 0, 0, 1], 900) == pytest.approx(4 / 7200)


def test_buckets_per_window() -> None:
    assert buckets(7200) == 8
    assert buckets(60) == 1
    with pytest.raises(ValueError):
        regular_rate([])
