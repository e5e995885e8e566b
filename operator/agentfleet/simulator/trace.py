"""Arrival traces: when work items arrive and how long a worker needs for each.

A trace comes from a CSV file (`arrival_seconds[,service_seconds[,project]]`, seconds from
the start of the trace, optional header row) or from the built-in bursty generator, which is seeded
so the same seed always produces the same trace.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Arrival:
    arrival_seconds: float
    service_seconds: float
    """Seconds of work at full speed."""
    project: str = ""
    """The Project the item belongs to; the queue takes projects in turn."""


class TraceError(ValueError):
    """The trace file cannot be read; the message names the line."""


def service_time(rng: random.Random, mean_seconds: float, spread: float = 0.6) -> float:
    """A lognormal service time with the given mean: most items are quick, a few long.

    `spread` is the sigma of the underlying normal; mu is chosen so the mean is exact.
    """
    mu = math.log(mean_seconds) - spread**2 / 2
    return rng.lognormvariate(mu, spread)


def load_csv(path: Path, service_mean_seconds: float, seed: int) -> list[Arrival]:
    """Read a trace; rows without a service time draw one (seeded) around the mean, rows
    without a project belong to the unnamed one."""
    rng = random.Random(seed)
    arrivals = []
    with path.open(newline="") as handle:
        for line_number, row in enumerate(csv.reader(handle), start=1):
            cells = [cell.strip() for cell in row if cell.strip()]
            if not cells or cells[0].startswith("#"):
                continue
            project = cells[2] if len(cells) > 2 else ""
            try:
                arrival = float(cells[0])
                service = (
                    float(cells[1]) if len(cells) > 1 else service_time(rng, service_mean_seconds)
                )
            except ValueError as exc:
                if line_number == 1:  # a header row
                    continue
                raise TraceError(f"{path}:{line_number}: not a number: {row}") from exc
            if arrival < 0 or service <= 0:
                raise TraceError(
                    f"{path}:{line_number}: arrival must be >= 0 and service > 0: {row}"
                )
            arrivals.append(Arrival(arrival, service, project))
    if not arrivals:
        raise TraceError(f"{path}: no arrivals")
    return sorted(arrivals)


def bursty_trace(
    seed: int = 7,
    duration_seconds: float = 6 * 3600,
    background_per_hour: float = 4.0,
    bursts: int = 4,
    burst_items: tuple[int, int] = (20, 40),
    burst_spread_seconds: float = 300.0,
    service_mean_seconds: float = 600.0,
) -> list[Arrival]:
    """A steady trickle of items plus a few bursts (a milestone's worth of issues filed at
    once), the load pattern that makes static provisioning expensive.

    Background arrivals are Poisson; each burst lands `burst_items` items within
    `burst_spread_seconds` at a uniformly drawn moment of the first 80 % of the trace.
    """
    rng = random.Random(seed)
    times: list[float] = []
    t = rng.expovariate(background_per_hour / 3600)
    while t < duration_seconds:
        times.append(t)
        t += rng.expovariate(background_per_hour / 3600)
    for _ in range(bursts):
        start = rng.uniform(0, duration_seconds * 0.8)
        count = rng.randint(*burst_items)
        times.extend(start + rng.uniform(0, burst_spread_seconds) for _ in range(count))
    return sorted(Arrival(t, service_time(rng, service_mean_seconds)) for t in times)


def _poisson_times(
    rng: random.Random, rate_per_hour: Callable[[float], float], peak: float, duration: float
) -> list[float]:
    """Arrival times of a Poisson process with a time-varying rate (thinning)."""
    times = []
    t = 0.0
    while peak > 0:
        t += rng.expovariate(peak / 3600)
        if t >= duration:
            break
        if rng.random() * peak < rate_per_hour(t):
            times.append(t)
    return times


def daily_trace(
    seed: int = 11,
    days: float = 3,
    night_per_hour: float = 0.5,
    peak_per_hour: float = 8.0,
    day_hours: tuple[float, float] = (8.0, 20.0),
    service_mean_seconds: float = 600.0,
) -> list[Arrival]:
    """A working-day cycle: a trickle at night, rising to a peak mid-day and falling again
    (rate night + (peak - night) x sin^2 over the day hours), repeated for `days`."""
    rng = random.Random(seed)
    first, last = day_hours

    def rate(t: float) -> float:
        hour = (t / 3600) % 24
        if not first <= hour <= last:
            return night_per_hour
        phase = math.pi * (hour - first) / (last - first)
        return night_per_hour + (peak_per_hour - night_per_hour) * math.sin(phase) ** 2

    times = _poisson_times(rng, rate, max(peak_per_hour, night_per_hour), days * 86400)
    return [Arrival(t, service_time(rng, service_mean_seconds)) for t in times]


def spike_trace(
    seed: int = 13,
    duration_seconds: float = 6 * 3600,
    background_per_hour: float = 2.0,
    spike_items: int = 80,
    spike_at_seconds: float = 3600.0,
    spike_spread_seconds: float = 300.0,
    service_mean_seconds: float = 600.0,
) -> list[Arrival]:
    """One large spike (a release's worth of issues filed at once) on a light trickle."""
    rng = random.Random(seed)
    times = _poisson_times(
        rng, lambda _: background_per_hour, background_per_hour, duration_seconds
    )
    times += [spike_at_seconds + rng.uniform(0, spike_spread_seconds) for _ in range(spike_items)]
    return sorted(Arrival(t, service_time(rng, service_mean_seconds)) for t in sorted(times))


def steady_trace(
    seed: int = 17,
    duration_seconds: float = 24 * 3600,
    per_hour: float = 2.0,
    service_mean_seconds: float = 600.0,
) -> list[Arrival]:
    """A steady trickle: Poisson arrivals at a constant rate."""
    rng = random.Random(seed)
    times = _poisson_times(rng, lambda _: per_hour, per_hour, duration_seconds)
    return [Arrival(t, service_time(rng, service_mean_seconds)) for t in times]
