"""The comparison as a terminal table and as a PNG of queue depth and replicas over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.table import Table

from agentfleet.simulator.compare import Comparison


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
    "wait: time queued until a worker took the item; pod-h: pod-hours; "
    "scales: replica changes; peak: most replicas"
)


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
