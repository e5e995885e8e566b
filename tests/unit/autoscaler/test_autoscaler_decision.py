"""The decision core: each rule by example, with the explanation a user will read."""

from __future__ import annotations

import pytest

from agentfleet.api.autoscaling import (
    AutoscalingSpec,
    FallbackPolicy,
    ScaleDownRule,
    ScaleUpRule,
)
from agentfleet.autoscaler.decision import (
    Decision,
    Direction,
    ScaleState,
    Signals,
    Trigger,
    decide,
)

pytestmark = pytest.mark.unit

NOW = 10_000.0
DEFAULTS = AutoscalingSpec()
QUIET = Signals(queue_depth=0, oldest_wait_seconds=0, utilization=0.0)
MIDDLE = Signals(queue_depth=5, oldest_wait_seconds=60, utilization=0.5)


def state(current: int, lo: int = 1, hi: int = 10, **kwargs: float | int | None) -> ScaleState:
    return ScaleState(current_replicas=current, min_replicas=lo, max_replicas=hi, **kwargs)


def run(
    signals: Signals,
    scale_state: ScaleState,
    policy: AutoscalingSpec = DEFAULTS,
    now: float = NOW,
) -> Decision:
    return decide(policy, scale_state, signals, now)


@pytest.mark.parametrize(
    ("signals", "trigger", "reason"),
    [
        (
            Signals(queue_depth=14, oldest_wait_seconds=60, utilization=0.5),
            Trigger.QUEUE_DEPTH,
            "queue_depth=14 > 10",
        ),
        (
            Signals(queue_depth=5, oldest_wait_seconds=1801, utilization=0.5),
            Trigger.OLDEST_WAIT,
            "oldest_wait=1801s > 1800s",
        ),
        (
            Signals(queue_depth=5, oldest_wait_seconds=60, utilization=0.85),
            Trigger.UTILIZATION,
            "utilization=0.85 > 0.80",
        ),
        (
            Signals(queue_depth=30, oldest_wait_seconds=2000, utilization=0.9),
            Trigger.QUEUE_DEPTH,
            "queue_depth=30 > 10, oldest_wait=2000s > 1800s, utilization=0.90 > 0.80",
        ),
    ],
)
def test_any_signal_above_its_threshold_scales_up_by_the_step(
    signals: Signals, trigger: Trigger, reason: str
) -> None:
    decision = run(signals, state(2))
    assert decision.direction is Direction.UP
    assert decision.desired_replicas == 4
    assert decision.trigger is trigger
    assert decision.reason == reason
    assert decision.summary == f"ScaledUp 2→4: {reason}"


@pytest.mark.parametrize(
    "signals",
    [
        Signals(queue_depth=10, oldest_wait_seconds=1800, utilization=0.8),
        Signals(queue_depth=3, oldest_wait_seconds=60, utilization=0.1),
        Signals(queue_depth=0, oldest_wait_seconds=300, utilization=0.1),
        Signals(queue_depth=0, oldest_wait_seconds=60, utilization=0.3),
    ],
)
def test_thresholds_are_strict_and_one_signal_not_low_holds(signals: Signals) -> None:
    decision = run(signals, state(4))
    assert decision.direction is Direction.NONE
    assert decision.desired_replicas == 4
    assert decision.trigger is Trigger.WITHIN_THRESHOLDS
    assert decision.reason.startswith("within thresholds: ")


def test_all_signals_low_scales_down_one_and_explains_each_comparison() -> None:
    decision = run(Signals(queue_depth=2, oldest_wait_seconds=299, utilization=0.29), state(4))
    assert (decision.direction, decision.desired_replicas) == (Direction.DOWN, 3)
    assert decision.trigger is Trigger.IDLE
    assert decision.summary == (
        "ScaledDown 4→3: queue_depth=2 < 3, oldest_wait=299s < 300s, utilization=0.29 < 0.30"
    )


def test_scale_up_is_capped_at_max_replicas() -> None:
    busy = Signals(queue_depth=50, oldest_wait_seconds=0, utilization=1.0)
    assert run(busy, state(9)).desired_replicas == 10
    at_max = run(busy, state(10))
    assert at_max.desired_replicas == 10
    assert at_max.trigger is Trigger.AT_MAX_REPLICAS
    assert "already at maxReplicas=10" in at_max.reason


def test_scale_down_stops_at_min_replicas() -> None:
    policy = AutoscalingSpec(scale_down=ScaleDownRule(step=5))
    assert run(QUIET, state(4, lo=2), policy).desired_replicas == 2
    at_min = run(QUIET, state(2, lo=2), policy)
    assert at_min.desired_replicas == 2
    assert at_min.trigger is Trigger.AT_MIN_REPLICAS


@pytest.mark.parametrize(("step", "expected"), [(1, 3), (3, 5), (8, 10), (20, 10)])
def test_scale_up_step_is_configurable(step: int, expected: int) -> None:
    policy = AutoscalingSpec(scale_up=ScaleUpRule(step=step))
    decision = run(Signals(queue_depth=11, oldest_wait_seconds=0, utilization=1), state(2), policy)
    assert decision.desired_replicas == expected


@pytest.mark.parametrize(("step", "expected"), [(1, 7), (3, 5), (7, 1), (20, 1)])
def test_scale_down_step_is_configurable(step: int, expected: int) -> None:
    policy = AutoscalingSpec(scale_down=ScaleDownRule(step=step))
    assert run(QUIET, state(8), policy).desired_replicas == expected


def test_scale_to_zero_when_min_is_zero_and_nothing_waits() -> None:
    decision = run(QUIET, state(1, lo=0))
    assert (decision.direction, decision.desired_replicas) == (Direction.DOWN, 0)


def test_no_scale_to_zero_while_an_item_waits() -> None:
    one_waiting = Signals(queue_depth=1, oldest_wait_seconds=10, utilization=0.0)
    decision = run(one_waiting, state(1, lo=0))
    assert decision.desired_replicas == 1
    assert decision.trigger is Trigger.ITEMS_WAITING
    assert run(one_waiting, state(3, lo=0)).desired_replicas == 2


def test_first_queued_item_brings_a_pool_back_from_zero_to_one() -> None:
    first = Signals(queue_depth=1, oldest_wait_seconds=0, utilization=None)
    decision = run(first, state(0, lo=0))
    assert (decision.direction, decision.desired_replicas) == (Direction.UP, 1)
    assert decision.trigger is Trigger.ACTIVATION
    assert decision.reason == "queue_depth=1 > 0 with no replicas"
    # No workers means no utilization series; at zero replicas that is not missing data.
    assert decision.metrics_available


def test_a_burst_at_zero_replicas_uses_the_normal_step() -> None:
    burst = Signals(queue_depth=40, oldest_wait_seconds=0, utilization=None)
    assert run(burst, state(0, lo=0)).desired_replicas == 2


def test_idle_pool_at_zero_stays_at_zero() -> None:
    decision = run(Signals(queue_depth=0, oldest_wait_seconds=0), state(0, lo=0))
    assert decision.desired_replicas == 0
    assert decision.trigger is Trigger.AT_MIN_REPLICAS


def test_scale_up_within_stabilization_is_held_and_says_what_it_wanted() -> None:
    busy = Signals(queue_depth=20, oldest_wait_seconds=0, utilization=1.0)
    held = run(busy, state(2, last_scale_up_time=NOW - 5))
    assert held.desired_replicas == 2
    assert held.blocked_by == "stabilization"
    assert held.wanted_replicas == 4
    assert held.event_reason == "ScaleBlocked"
    assert held.reason == (
        "scale-up to 4 held by stabilization (5s of 15s since the last change): "
        "queue_depth=20 > 10, utilization=1.00 > 0.80"
    )
    assert run(busy, state(2, last_scale_up_time=NOW - 15)).desired_replicas == 4


def test_a_recent_scale_down_also_holds_a_scale_up_for_the_stabilization_window() -> None:
    busy = Signals(queue_depth=20, oldest_wait_seconds=0, utilization=1.0)
    assert run(busy, state(2, last_scale_down_time=NOW - 1)).blocked_by == "stabilization"


def test_scale_down_within_cooldown_is_held() -> None:
    held = run(QUIET, state(5, last_scale_up_time=NOW - 299))
    assert (held.desired_replicas, held.blocked_by, held.wanted_replicas) == (5, "cooldown", 4)
    assert held.trigger is Trigger.COOLDOWN
    after_down = run(QUIET, state(5, last_scale_down_time=NOW - 100))
    assert after_down.blocked_by == "cooldown"
    assert run(QUIET, state(5, last_scale_up_time=NOW - 300)).desired_replicas == 4


@pytest.mark.parametrize(
    "signals",
    [
        Signals.unavailable("Prometheus unreachable: connection refused"),
        Signals(queue_depth=0, oldest_wait_seconds=0, utilization=None, error="no series"),
        Signals(queue_depth=None, oldest_wait_seconds=0, utilization=0.0, error="timeout"),
        Signals(queue_depth=0, oldest_wait_seconds=None, utilization=0.0),
    ],
)
def test_missing_data_never_scales_down(signals: Signals) -> None:
    decision = run(signals, state(5, lo=0))
    assert decision.desired_replicas == 5
    assert not decision.metrics_available
    assert decision.trigger is Trigger.METRICS_UNAVAILABLE
    assert decision.consecutive_failures == 1
    assert "never scaling down on missing data" in decision.reason


def test_missing_data_names_the_signals_and_the_error() -> None:
    decision = run(
        Signals(queue_depth=0, oldest_wait_seconds=0, error="no worker_busy series"),
        state(3, consecutive_failures=4),
    )
    assert decision.missing_signals == ("utilization",)
    assert decision.metrics_error == "no worker_busy series"
    assert decision.consecutive_failures == 5
    assert decision.reason == (
        "metrics unavailable (utilization: no worker_busy series) for 5 polls: "
        "holding 3, never scaling down on missing data"
    )


def test_an_available_high_signal_still_scales_up_while_another_is_missing() -> None:
    decision = run(Signals(queue_depth=30, oldest_wait_seconds=None), state(2))
    assert decision.desired_replicas == 4
    assert not decision.metrics_available


def test_fallback_applies_after_the_failure_threshold_and_only_raises() -> None:
    policy = AutoscalingSpec(fallback=FallbackPolicy(failure_threshold=3, replicas=6))
    outage = Signals.unavailable("timeout")
    counting = run(outage, state(2, consecutive_failures=1), policy)
    assert counting.desired_replicas == 2
    assert counting.consecutive_failures == 2
    assert "poll 2 of 3 before fallback" in counting.reason
    reached = run(outage, state(2, consecutive_failures=2), policy)
    assert (reached.direction, reached.desired_replicas) == (Direction.UP, 6)
    assert reached.trigger is Trigger.FALLBACK
    assert reached.reason == (
        "metrics unavailable (queue_depth, oldest_wait, utilization: timeout) "
        "for 3 polls: fallback to 6 replicas"
    )
    above_fallback = run(outage, state(8, consecutive_failures=7), policy)
    assert above_fallback.desired_replicas == 8


def test_fallback_replicas_are_clamped_to_the_bounds() -> None:
    policy = AutoscalingSpec(fallback=FallbackPolicy(failure_threshold=1, replicas=50))
    assert run(Signals.unavailable("down"), state(2, hi=7), policy).desired_replicas == 7


def test_available_metrics_reset_the_failure_count() -> None:
    assert run(MIDDLE, state(3, consecutive_failures=9)).consecutive_failures == 0


def test_paused_and_disabled_hold_whatever_the_signals() -> None:
    busy = Signals(queue_depth=99, oldest_wait_seconds=9999, utilization=1.0)
    paused = run(busy, state(3), AutoscalingSpec(paused=True))
    assert (paused.desired_replicas, paused.trigger) == (3, Trigger.PAUSED)
    disabled = run(QUIET, state(3), AutoscalingSpec(enabled=False))
    assert (disabled.desired_replicas, disabled.trigger) == (3, Trigger.DISABLED)


def test_out_of_bounds_replicas_move_to_the_bound_despite_timers() -> None:
    recent = {"last_scale_up_time": NOW - 1}
    below = run(QUIET, state(0, lo=2, **recent))
    assert (below.desired_replicas, below.trigger) == (2, Trigger.MIN_REPLICAS)
    above = run(Signals.unavailable("down"), state(15, hi=10, **recent))
    assert (above.desired_replicas, above.trigger) == (10, Trigger.MAX_REPLICAS)
    assert above.reason == "replicas=15 > maxReplicas=10"


def test_custom_thresholds_are_used() -> None:
    policy = AutoscalingSpec(
        scale_up=ScaleUpRule(queue_depth_above=2, utilization_above=0.95),
        scale_down=ScaleDownRule(queue_depth_below=1, utilization_below=0.5),
    )
    up = run(Signals(queue_depth=3, oldest_wait_seconds=0, utilization=0.9), state(1), policy)
    assert up.reason == "queue_depth=3 > 2"
    down = run(Signals(queue_depth=0, oldest_wait_seconds=0, utilization=0.4), state(3), policy)
    assert down.direction is Direction.DOWN


def test_invalid_bounds_are_rejected() -> None:
    with pytest.raises(ValueError, match="minReplicas"):
        ScaleState(current_replicas=1, min_replicas=5, max_replicas=2)
