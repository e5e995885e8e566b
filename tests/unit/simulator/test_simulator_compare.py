"""Traces, the comparison policies, the three-way comparison and `agentfleet simulate`."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentfleet.cli import app
from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.operator.autoscaler.decision import ScaleState, Signals, decide
from agentfleet.simulator.compare import PoolPolicy, compare
from agentfleet.simulator.policies import AgentfleetPolicy, PoolView, QueueLengthTargetPolicy
from agentfleet.simulator.trace import (
    Arrival,
    TraceError,
    bursty_trace,
    daily_trace,
    load_csv,
    spike_trace,
    steady_trace,
)

pytestmark = pytest.mark.unit

WORKERPOOL = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: agentfleet.dev/v1alpha1
kind: WorkerPool
metadata: {name: dev}
spec:
  stage: development
  minReplicas: 0
  maxReplicas: 8
  autoscaling:
    pollIntervalSeconds: 30
    scaleUp: {queueDepthAbove: 6, step: 3}
"""


def view(waiting: int, in_progress: int = 0) -> PoolView:
    return PoolView(waiting, in_progress, oldest_wait_seconds=0, utilization=0.5)


def test_the_bursty_trace_is_a_function_of_its_seed() -> None:
    assert bursty_trace(seed=3) == bursty_trace(seed=3)
    assert bursty_trace(seed=3) != bursty_trace(seed=4)
    trace = bursty_trace(seed=3, duration_seconds=3600, bursts=2, burst_items=(10, 10))
    assert len(trace) >= 20
    assert trace == sorted(trace)
    assert all(a.service_seconds > 0 for a in trace)


def test_csv_traces_with_and_without_service_times(tmp_path: Path) -> None:
    full = tmp_path / "full.csv"
    full.write_text("arrival_seconds,service_seconds\n30,120\n0,60\n# a comment\n\n")
    assert load_csv(full, service_mean_seconds=600, seed=1) == [
        Arrival(0, 60),
        Arrival(30, 120),
    ]
    arrivals_only = tmp_path / "arrivals.csv"
    arrivals_only.write_text("0\n10\n20\n")
    drawn = load_csv(arrivals_only, service_mean_seconds=600, seed=1)
    assert [a.arrival_seconds for a in drawn] == [0, 10, 20]
    assert drawn == load_csv(arrivals_only, service_mean_seconds=600, seed=1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("0,60\nsoon,60\n", "bad.csv:2: not a number"),
        ("0,60\n-5,60\n", "bad.csv:2: arrival must be >= 0 and service > 0"),
        ("arrival\n", "bad.csv: no arrivals"),
    ],
)
def test_bad_csv_traces_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    with pytest.raises(TraceError, match=message):
        load_csv(bad, service_mean_seconds=600, seed=1)


def test_queue_target_sizes_to_items_over_target_within_bounds() -> None:
    policy = QueueLengthTargetPolicy(target=5, min_replicas=1, max_replicas=20, start_replicas=4)
    assert policy.poll(0, 4, view(waiting=17, in_progress=4)) == math.ceil(21 / 5)
    policy = QueueLengthTargetPolicy(target=5, min_replicas=2, max_replicas=3, start_replicas=2)
    assert policy.poll(0, 2, view(waiting=100)) == 3


def test_queue_target_scales_up_at_most_double_or_four_per_poll() -> None:
    policy = QueueLengthTargetPolicy(target=1, min_replicas=0, max_replicas=100, start_replicas=1)
    assert policy.poll(0, 1, view(waiting=50)) == 5
    assert policy.poll(15, 5, view(waiting=50)) == 10
    assert policy.poll(30, 10, view(waiting=50)) == 20


def test_queue_target_scales_down_to_the_highest_recommendation_of_the_window() -> None:
    policy = QueueLengthTargetPolicy(target=1, min_replicas=0, max_replicas=100, start_replicas=8)
    assert policy.poll(0, 8, view(waiting=0, in_progress=8)) == 8
    assert policy.poll(100, 8, view(waiting=0, in_progress=2)) == 8
    assert policy.poll(301, 8, view(waiting=0, in_progress=2)) == 2
    assert policy.poll(700, 2, view(waiting=0)) == 0


def test_the_simulated_autoscaler_is_the_operators_decision_function() -> None:
    spec = AutoscalingSpec()
    policy = AgentfleetPolicy(spec, min_replicas=1, max_replicas=10, start_replicas=2)
    seen = PoolView(waiting=14, in_progress=2, oldest_wait_seconds=90, utilization=1.0)
    expected = decide(
        spec,
        ScaleState(current_replicas=2, min_replicas=1, max_replicas=10),
        Signals(queue_depth=14, oldest_wait_seconds=90, utilization=1.0),
        1000,
    )
    assert policy.poll(1000, 2, seen) == expected.desired_replicas
    assert policy.decisions == [(1000, expected)]


def test_a_workerpool_manifest_supplies_bounds_and_policy(tmp_path: Path) -> None:
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(WORKERPOOL)
    pool = PoolPolicy.from_yaml(manifest)
    assert (pool.min_replicas, pool.max_replicas, pool.start_replicas) == (0, 8, 0)
    assert pool.autoscaling.scale_up.step == 3
    assert pool.autoscaling.poll_interval_seconds == 30
    assert pool.with_bounds(2, None).start_replicas == 2
    # Without spec.replicas a pool starts at its (possibly overridden) minimum.
    assert PoolPolicy.defaults().with_bounds(0, None).start_replicas == 0
    assert PoolPolicy.defaults().with_bounds(3, None).start_replicas == 3
    with pytest.raises(ValueError, match="exceeds"):
        pool.with_bounds(9, None)
    only_configmap = tmp_path / "other.yaml"
    only_configmap.write_text(WORKERPOOL.split("---", maxsplit=1)[0])
    with pytest.raises(ValueError, match="no WorkerPool document"):
        PoolPolicy.from_yaml(only_configmap)


def test_three_policies_replay_the_same_trace() -> None:
    trace = bursty_trace(seed=11, duration_seconds=4 * 3600, bursts=3)
    pool = PoolPolicy.defaults().with_bounds(1, 10)
    comparison = compare(
        trace, pool, static_replicas=10, queue_target=5, startup_seconds=60, tail_seconds=3600
    )
    agentfleet, static, queue_target = comparison.results

    assert [r.policy for r in comparison.results] == ["agentfleet", "static", "queue-target"]
    assert {len(r.waits) for r in comparison.results} == {len(trace)}
    assert static.scale_events == 0
    assert static.pod_seconds == 10 * comparison.horizon_seconds
    for result in (agentfleet, queue_target):
        assert all(1 <= p.replicas <= 10 for p in result.timeline)
    # A pool that idles between bursts costs less than one provisioned for the peak.
    assert agentfleet.pod_hours < static.pod_hours
    assert agentfleet.scale_events == len(comparison.decisions)
    assert all(d.reason for _, d in comparison.decisions)
    again = compare(
        trace, pool, static_replicas=10, queue_target=5, startup_seconds=60, tail_seconds=3600
    )
    assert [r.waits for r in again.results] == [r.waits for r in comparison.results]


def test_agentfleet_simulate_prints_the_comparison_and_writes_the_plot(tmp_path: Path) -> None:
    manifest = tmp_path / "pool.yaml"
    manifest.write_text(WORKERPOOL)
    plot = tmp_path / "out" / "sim.png"
    result = CliRunner().invoke(
        app,
        ["simulate", "--pool", str(manifest), "--hours", "2", "--plot", str(plot), "--explain"],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert "pool: replicas 0..8, poll 30s, up sized to drain in 1800s (step 3" in result.output
    for policy in ("agentfleet", "static", "queue-target"):
        assert policy in result.output
    assert "agentfleet scale decisions" in result.output
    assert "queue_depth=1 > 0 with no replicas" in result.output
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_agentfleet_simulate_reports_a_bad_trace(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("0,60\nlater,60\n")
    result = CliRunner().invoke(app, ["simulate", "--trace", str(bad)])
    assert result.exit_code == 2
    assert "bad.csv:2: not a number" in result.output


@pytest.mark.parametrize(
    ("shape", "described"),
    [
        ("daily", "daily cycle (seed 11, 30h"),
        ("spike", "one spike (seed 13, 3h"),
        ("steady", "steady trickle (seed 17, 3h"),
    ],
)
def test_agentfleet_simulate_generates_other_shapes(
    tmp_path: Path, shape: str, described: str
) -> None:
    hours = "30" if shape == "daily" else "3"
    result = CliRunner().invoke(
        app,
        ["simulate", "--shape", shape, "--hours", hours, "--plot", str(tmp_path / "s.png")],
        env={"COLUMNS": "120"},
    )
    assert result.exit_code == 0, result.output
    assert f"trace: {described}" in result.output


def test_agentfleet_simulate_under_a_rate_limit_with_a_forecast(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--hours",
            "3",
            "--rate-limit-sessions",
            "2",
            "--forecast-at",
            "3600",
            "--explain",
            "--plot",
            str(tmp_path / "s.png"),
        ],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "model API serves 2 sessions" in result.output
    assert "Forecast at 1.00h" in result.output
    assert "observed: all:" in result.output
    assert "held back" in result.output  # the legend says what a wait is under a limit


def test_generated_shapes_are_functions_of_their_seed() -> None:
    for make in (daily_trace, spike_trace, steady_trace):
        assert make(seed=3) == make(seed=3)
        assert make(seed=3) != make(seed=4)
    spike = spike_trace(seed=1)
    assert sum(1 for a in spike if 3600 <= a.arrival_seconds <= 3900) >= 80
    day = daily_trace(seed=1, days=1)
    night = [a for a in day if a.arrival_seconds < 8 * 3600]
    noon = [a for a in day if 12 * 3600 <= a.arrival_seconds < 16 * 3600]
    assert len(noon) > 3 * len(night)


def test_csv_rows_may_name_their_project(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_seconds,service_seconds,project\n0,60,web\n5,60\n")
    assert load_csv(trace, 600, seed=1) == [Arrival(0, 60, "web"), Arrival(5, 60, "")]
