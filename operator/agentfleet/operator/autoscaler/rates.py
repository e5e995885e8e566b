"""The arrival rate the forecast uses: regular traffic, with bursts damped.

Arrivals are counted per quarter hour over the window. A burst (a milestone's worth of
issues filed at once) is already in the queue, where the backlog-sized scale-up serves
it; counted in full it would also inflate the forecast for hours after, keeping Pods for
traffic that is not coming. So each quarter counts at most twice the median quarter (and
at least two items, so a trickle's occasional pair is not cut): the mean of the capped
counts is the rate. The Prometheus source and the simulator both use this function.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

BUCKET_SECONDS = 900
"""Arrivals are counted per quarter hour."""
CAP_FACTOR = 2.0
"""A quarter counts at most this many times the median quarter..."""
CAP_FLOOR = 2.0
"""...and at least this many items."""


def regular_rate(counts: Sequence[float], bucket_seconds: float = BUCKET_SECONDS) -> float:
    """Items per second from per-bucket arrival counts, each capped at twice the median."""
    if not counts:
        raise ValueError("no buckets to take a rate from")
    cap = max(CAP_FLOOR, CAP_FACTOR * statistics.median(counts))
    return sum(min(count, cap) for count in counts) / (len(counts) * bucket_seconds)


def buckets(window_seconds: float, bucket_seconds: float = BUCKET_SECONDS) -> int:
    """How many whole buckets a window holds (at least one)."""
    return max(1, round(window_seconds / bucket_seconds))
