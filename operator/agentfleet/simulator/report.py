"""The comparison as a terminal table and as a PNG of queue depth and replicas over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from agentfleet.simulator.compare import Comparison
from agentfleet.simulator.forecast import Drain, Replay


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.2f}h"


def results_table(comparison: Comparison) -> Table:
    table = Table(title="Same trace, three policies", box=box.SIMPLE_HEAD, collapse_padding=True)
    table.add_column("policy", no_wrap=True)
    for heading in ("wait p50", "wait p95", "wait max", "served", "pod-h", "scales", "peak"):
        table.add_column(heading, justify="right", no_wrap=True)
    for result in comparison.results:
        table.add_row(
            result.policy,
            _duration(result.p50_wait),
            _duration(result.p95_wait),
            _duration(result.max_wait),
            f"{len(result.waits) - result.unserved}/{len(result.waits)}",
            f"{result.pod_hours:.1f}",
            str(result.scale_events),
            str(result.peak_replicas),
        )
    return table


LEGEND = (
    "wait: time queued until a worker took the item (plus, under a rate limit, time its "
    "worker was held back); pod-h: pod-hours; scales: replica changes; peak: most replicas"
)


def _maybe(seconds: float | None) -> str:
    return "never" if seconds is None else _duration(seconds)


def _error(forecast: float | None, measured: float | None) -> str:
    if forecast is None or measured is None or measured <= 0:
        return ""
    return f"{(forecast - measured) / measured:+.0%}"


def forecast_table(replay: Replay) -> Table:
    """Forecast against what the simulation then did, per Project and capacity."""
    observed = "; ".join(
        f"{item.project or 'all'}: {item.load.queued} waiting, {item.load.in_progress} running,"
        f" {item.load.arrival_rate * 3600:.1f}/h arriving, {_duration(item.load.service_seconds)}"
        " per item"
        for item in replay.forecasts
    )
    table = Table(
        title=f"Forecast at {_duration(replay.at_seconds)} ({replay.replicas} replicas then)",
        caption=f"observed: {observed or 'nothing finished yet, no service rate'}",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("project")
    for heading in ("replicas", "done", "10-90 %", "simulated", "error", "queue empty"):
        table.add_column(heading, justify="right")
    for item in replay.forecasts:
        measured = {
            item.current.replicas: replay.measured_current[item.project],
            item.maximum.replicas: replay.measured_maximum[item.project],
        }
        drains: list[Drain] = [item.current]
        if item.maximum.replicas != item.current.replicas:
            drains.append(item.maximum)
        for drain in drains:
            actual = measured[drain.replicas]
            table.add_row(
                item.project or "all",
                str(drain.replicas),
                _maybe(drain.done_seconds),
                (
                    f"{_duration(drain.done_range[0])}-{_duration(drain.done_range[1])}"
                    if drain.done_range
                    else ""
                ),
                _maybe(actual.done_seconds),
                _error(drain.done_seconds, actual.done_seconds),
                _maybe(drain.drained_seconds),
            )
    return table


def decisions_table(comparison: Comparison) -> Table:
    table = Table(title="agentfleet scale decisions", box=box.SIMPLE_HEAD)
    table.add_column("time", justify="right")
    table.add_column("change")
    table.add_column("reason")
    for seconds, decision in comparison.decisions:
        table.add_row(
            _duration(seconds),
            f"{decision.current_replicas}→{decision.desired_replicas}",
            decision.reason,
        )
    return table


def write_plot(comparison: Comparison, path: Path) -> Path:
    """Queue depth (top) and replicas (bottom) over time, one line per policy."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit
    import matplotlib.pyplot as plt

    figure, (queue_axis, replica_axis) = plt.subplots(
        2, 1, sharex=True, figsize=(11, 6.5), constrained_layout=True
    )
    # Distinct line styles: policies that behave alike draw on top of each other.
    styles: list[dict[str, Any]] = [
        {"linewidth": 2.2},
        {"linestyle": "--"},
        {"linestyle": ":", "linewidth": 1.8},
    ]
    for result, style in zip(comparison.results, styles, strict=False):
        hours = [point.seconds / 3600 for point in result.timeline]
        queue_axis.step(
            hours,
            [p.queue_depth for p in result.timeline],
            where="post",
            label=result.policy,
            **style,
        )
        replica_axis.step(
            hours, [p.replicas for p in result.timeline], where="post", label=result.policy, **style
        )
    queue_axis.set_ylabel("items waiting")
    queue_axis.set_title("Queue depth and replicas per scaling policy")
    queue_axis.legend(loc="upper right")
    queue_axis.grid(alpha=0.3)
    replica_axis.set_ylabel("replicas")
    replica_axis.set_xlabel("hours since the start of the trace")
    replica_axis.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
