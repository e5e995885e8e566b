"""The decision core: each rule by example, with the explanation a user will read."""

from __future__ import annotations

import pytest

from agentfleet.core.api.autoscaling import (
    AutoscalingSpec,
    FallbackPolicy,
    PredictionPolicy,
    RateLimitPolicy,
    ScaleDownRule,
    ScaleUpRule,
)
from agentfleet.operator.autoscaler.decision import (
    Decision,
    Direction,
    ScaleState,
    Signals,
    Trigger,
    activate_on_arrival,
    decide,
    erlang_c,
    servers_for,
)

pytestmark = pytest.mark.unit

NOW = 10_000.0
DEFAULTS = AutoscalingSpec()
QUIET = Signals(queue_depth=0, oldest_wait_seconds=0, utilization=0.0)
MIDDLE = Signals(queue_depth=5, oldest_wait_seconds=60, utilization=0.5)
STEP_DOWN = AutoscalingSpec(scale_down=ScaleDownRule(sizing="step"))
"""Scale-down one `step` per decision instead of to the busy workers (`sizing: step`)."""


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
            "utilization=0.85 > 0.80 with 5 waiting",
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
    decision = run(
        Signals(queue_depth=2, oldest_wait_seconds=299, utilization=0.29), state(4), STEP_DOWN
    )
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
    policy = AutoscalingSpec(scale_down=ScaleDownRule(sizing="step", step=step))
    assert run(QUIET, state(8), policy).desired_replicas == expected


def test_scale_to_zero_when_min_is_zero_and_nothing_waits() -> None:
    decision = run(QUIET, state(1, lo=0))
    assert (decision.direction, decision.desired_replicas) == (Direction.DOWN, 0)


def test_no_scale_to_zero_while_an_item_waits() -> None:
    one_waiting = Signals(queue_depth=1, oldest_wait_seconds=10, utilization=0.0)
    decision = run(one_waiting, state(1, lo=0))
    assert decision.desired_replicas == 1
    assert decision.trigger is Trigger.ITEMS_WAITING
    assert run(one_waiting, state(3, lo=0)).desired_replicas == 1
    assert run(one_waiting, state(3, lo=0), STEP_DOWN).desired_replicas == 2


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


def test_a_burst_at_zero_right_after_a_scale_down_still_gets_one_replica() -> None:
    """Stabilization holds the step, never the first replica: more waiting work must not
    mean fewer replicas than one waiting item gets (found by the property tests)."""
    just_scaled = state(0, lo=0, last_scale_down_time=NOW - 5)  # within the 15 s window
    one = run(Signals(queue_depth=1, oldest_wait_seconds=0, utilization=None), just_scaled)
    burst = run(Signals(queue_depth=40, oldest_wait_seconds=0, utilization=None), just_scaled)
    assert (one.desired_replicas, burst.desired_replicas) == (1, 1)
    assert burst.trigger is Trigger.ACTIVATION
    assert (burst.blocked_by, burst.wanted_replicas) == ("stabilization", 2)


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
    assert (held.desired_replicas, held.blocked_by, held.wanted_replicas) == (5, "cooldown", 1)
    assert held.trigger is Trigger.COOLDOWN
    after_down = run(QUIET, state(5, last_scale_down_time=NOW - 100))
    assert after_down.blocked_by == "cooldown"
    assert run(QUIET, state(5, last_scale_up_time=NOW - 300)).desired_replicas == 1


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
    recent = NOW - 1
    below = run(QUIET, state(0, lo=2, last_scale_up_time=recent))
    assert (below.desired_replicas, below.trigger) == (2, Trigger.MIN_REPLICAS)
    above = run(Signals.unavailable("down"), state(15, hi=10, last_scale_up_time=recent))
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


# ------------------------------------------------------- how the thresholds combine

LITERAL = AutoscalingSpec(
    scale_up=ScaleUpRule(utilization_needs_backlog=False, sizing="step"),
    scale_down=ScaleDownRule(sizing="step"),
    prediction=PredictionPolicy(enabled=False),
    rate_limit=RateLimitPolicy(enabled=False),
)
"""The documented rules read literally: what the operator did before the options."""

ALL_BUSY_NOTHING_WAITING = Signals(queue_depth=0, oldest_wait_seconds=0, utilization=1.0)


def test_utilization_alone_does_not_add_pods_while_nothing_waits() -> None:
    decision = run(ALL_BUSY_NOTHING_WAITING, state(3))
    assert (decision.desired_replicas, decision.trigger) == (3, Trigger.WITHIN_THRESHOLDS)
    assert decision.reason == (
        "within thresholds: queue_depth=0 < 3, oldest_wait=0s < 300s, utilization=1.00 >= 0.30"
        " (utilization=1.00 > 0.80 with nothing waiting: no Pod to add would have work)"
    )
    # Read literally, the threshold table adds Pods that would have nothing to take.
    assert run(ALL_BUSY_NOTHING_WAITING, state(3), LITERAL).desired_replicas == 5


def test_utilization_counts_once_an_item_waits() -> None:
    decision = run(Signals(queue_depth=1, oldest_wait_seconds=5, utilization=1.0), state(3))
    assert (decision.desired_replicas, decision.trigger) == (5, Trigger.UTILIZATION)
    assert decision.reason == "utilization=1.00 > 0.80 with 1 waiting"


def test_a_backlog_sized_step_takes_the_waiting_items_within_the_drain_time() -> None:
    burst = Signals(queue_depth=14, oldest_wait_seconds=60, utilization=1.0, service_seconds=600)
    decision = run(burst, state(3))
    # 3 busy + 14 waiting x 600 s / 1800 s = 7.67: eight workers, in one decision.
    assert (decision.desired_replicas, decision.trigger) == (8, Trigger.QUEUE_DEPTH)
    assert decision.summary == (
        "ScaledUp 3→8: queue_depth=14 > 10, utilization=1.00 > 0.80;"
        " sized 3 busy + 14 waiting x 600s / 1800s = 8"
    )
    # The documented step, for comparison: two more per decision.
    assert run(burst, state(3), LITERAL).desired_replicas == 5
    # Capped at the maximum like any scale-up.
    assert run(burst, state(3, hi=6)).desired_replicas == 6


def test_a_backlog_sized_step_adds_at_least_one_and_uses_the_step_without_a_service_time() -> None:
    short = Signals(queue_depth=1, oldest_wait_seconds=1900, utilization=1.0, service_seconds=60)
    decision = run(short, state(4))
    assert decision.desired_replicas == 5
    assert decision.reason.endswith("= 5")
    unknown = Signals(queue_depth=14, oldest_wait_seconds=0, utilization=1.0)
    assert run(unknown, state(3)).desired_replicas == 5  # scaleUp.step


def test_a_backlog_sized_scale_down_removes_every_idle_replica_at_once() -> None:
    two_busy = Signals(queue_depth=0, oldest_wait_seconds=0, utilization=0.2)
    decision = run(two_busy, state(10))
    assert (decision.desired_replicas, decision.trigger) == (2, Trigger.IDLE)
    assert run(two_busy, state(10), STEP_DOWN).desired_replicas == 9
    # Never below one while an item waits, nor below minReplicas.
    one_waiting = Signals(queue_depth=1, oldest_wait_seconds=0, utilization=0.0)
    assert run(one_waiting, state(5, lo=0)).desired_replicas == 1
    assert run(QUIET, state(5, lo=3)).desired_replicas == 3


# --------------------------------------------------------------------- prediction

STEADY = Signals(
    queue_depth=0,
    oldest_wait_seconds=0,
    utilization=0.5,
    service_seconds=600,
    arrival_rate=12 / 3600,
)


def test_the_forecast_raises_the_pool_to_the_work_it_will_keep_busy() -> None:
    decision = run(STEADY, state(1))
    # 12 items an hour x 600 s each keep 2 workers busy.
    assert (decision.desired_replicas, decision.trigger) == (2, Trigger.PREDICTION)
    assert decision.reason == (
        "prediction floor 2 > 1: forecast 12.0/h (last 2h) x 600s per item keeps 2.0 workers busy"
    )
    off = AutoscalingSpec(prediction=PredictionPolicy(enabled=False))
    assert run(STEADY, state(1), off).desired_replicas == 1


def test_the_seasonal_forecast_provisions_ahead_of_a_daily_peak() -> None:
    yesterday_peak = STEADY.model_copy(update={"seasonal_arrival_rate": 30 / 3600})
    decision = run(yesterday_peak, state(2))
    assert decision.desired_replicas == 5
    assert "forecast 30.0/h (next 1h 1 day ago)" in decision.reason
    recent_only = AutoscalingSpec(prediction=PredictionPolicy(period_seconds=0))
    assert run(yesterday_peak, state(2), recent_only).desired_replicas == 2


def test_a_scale_down_keeps_warm_workers_for_the_forecast() -> None:
    # 6 items an hour x 600 s: one worker's worth of work. With 3 workers an arriving item
    # waits 9 % of the time, with 4 only 2 % (Erlang C): keep 4 of 6 idle ones.
    quiet = STEADY.model_copy(update={"utilization": 0.0, "arrival_rate": 6 / 3600})
    decision = run(quiet, state(6))
    assert (decision.desired_replicas, decision.trigger) == (4, Trigger.IDLE)
    assert decision.reason.endswith(
        "; keeping 4 for the forecast (forecast 6.0/h (last 2h) x 600s per item keeps 1.0"
        " workers busy; an arriving item waits with p <= 0.05 or utilization stays >= 0.30)"
    )
    at_floor = run(quiet, state(4))
    assert (at_floor.desired_replicas, at_floor.trigger) == (4, Trigger.PREDICTION)
    # A looser wait target keeps fewer.
    loose = AutoscalingSpec(prediction=PredictionPolicy(wait_probability=0.4))
    assert run(quiet, state(6), loose).desired_replicas == 2


def test_warm_workers_kept_for_a_light_forecast_stay_above_the_idle_threshold() -> None:
    # 0.45 Erlangs: Erlang C would keep 3 for a 5 % wait chance, but three workers would
    # sit at 15 % utilization, below scaleDown.utilizationBelow: keep 2.
    light = STEADY.model_copy(update={"utilization": 0.0, "arrival_rate": 2.7 / 3600})
    assert run(light, state(5)).desired_replicas == 2


def test_erlang_c_matches_the_textbook() -> None:
    assert erlang_c(1, 0.5) == pytest.approx(0.5)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(3, 1.0) == pytest.approx(1 / 11)
    assert erlang_c(2, 2.0) == 1.0
    assert servers_for(1.0, 0.05, limit=100) == 4
    assert servers_for(1.0, 0.05, limit=3) == 3


def test_the_forecast_floor_stays_within_the_bounds_and_needs_a_service_time() -> None:
    flood = STEADY.model_copy(update={"arrival_rate": 1.0})
    assert run(flood, state(3, hi=7)).desired_replicas == 7
    no_service = STEADY.model_copy(update={"service_seconds": None})
    assert run(no_service, state(1)).desired_replicas == 1


# ---------------------------------------------------------------------- rate limits

BURST = Signals(queue_depth=30, oldest_wait_seconds=0, utilization=1.0, service_seconds=600)


def test_a_rate_limited_pool_holds_its_scale_up_and_says_why() -> None:
    throttled = BURST.model_copy(update={"throttled_fraction": 0.4})
    decision = run(throttled, state(4))
    assert decision.desired_replicas == 4
    assert (decision.trigger, decision.blocked_by) == (Trigger.RATE_LIMITED, "rate_limit")
    assert decision.wanted_replicas == 10
    assert decision.event_reason == "ScaleBlocked"
    assert decision.reason.startswith(
        "scale-up to 10 held while the model API limits the pool"
        " (throttled=0.40 > 0.05 of model calls answered 429/529):"
        " more Pods would add cost, not throughput; wanted for queue_depth=30 > 10"
    )
    # The limit clears: scaling resumes with the next poll.
    cleared = run(BURST.model_copy(update={"throttled_fraction": 0.0}), state(4))
    assert (cleared.desired_replicas, cleared.trigger) == (10, Trigger.QUEUE_DEPTH)


def test_low_api_headroom_also_holds_scale_ups() -> None:
    nearly_spent = BURST.model_copy(update={"api_headroom": 0.04})
    decision = run(nearly_spent, state(4))
    assert (decision.desired_replicas, decision.trigger) == (4, Trigger.RATE_LIMITED)
    assert "api_headroom=0.04 < 0.10 of the rate-limit budget left" in decision.reason
    plenty = run(BURST.model_copy(update={"api_headroom": 0.5}), state(4))
    assert plenty.desired_replicas == 10


def test_rate_limits_hold_prediction_but_not_scale_down_or_activation() -> None:
    limited = {"throttled_fraction": 0.9}
    floor = run(STEADY.model_copy(update=limited), state(1))
    assert (floor.desired_replicas, floor.trigger) == (1, Trigger.RATE_LIMITED)
    down = run(QUIET.model_copy(update=limited), state(4))
    assert down.desired_replicas == 1
    first = Signals(queue_depth=1, oldest_wait_seconds=0, throttled_fraction=0.9)
    assert run(first, state(0, lo=0)).desired_replicas == 1


def test_rate_limit_awareness_can_be_switched_off() -> None:
    unaware = AutoscalingSpec(rate_limit=RateLimitPolicy(enabled=False))
    throttled = BURST.model_copy(update={"throttled_fraction": 0.9, "api_headroom": 0.0})
    assert run(throttled, state(4), unaware).desired_replicas == 10
    ignore_headers = AutoscalingSpec(rate_limit=RateLimitPolicy(headroom_below=0))
    spent = BURST.model_copy(update={"api_headroom": 0.0})
    assert run(spent, state(4), ignore_headers).desired_replicas == 10


def test_absent_optional_signals_mean_no_information_not_zero() -> None:
    decision = run(Signals(queue_depth=0, oldest_wait_seconds=0, utilization=0.0), state(2))
    assert decision.metrics_available
    assert decision.missing_signals == ()


def test_new_causes_are_their_own_low_cardinality_labels() -> None:
    assert Trigger.RATE_LIMITED.value == "rate_limited"
    assert Trigger.PREDICTION.value == "prediction"


def test_an_item_waiting_at_zero_activates_even_right_after_a_scale_down() -> None:
    """Stabilization keeps noise from adding Pods; an item no worker can take is not."""
    policy = AutoscalingSpec()
    zero = ScaleState(
        current_replicas=0, min_replicas=0, max_replicas=3, last_scale_down_time=NOW - 2
    )
    decision = decide(
        policy, zero, Signals(queue_depth=1, oldest_wait_seconds=0, utilization=0), NOW
    )
    assert (decision.desired_replicas, decision.trigger) == (1, Trigger.ACTIVATION)
    arrived = activate_on_arrival(policy, zero, "web/development/general", NOW)
    assert arrived is not None and arrived.desired_replicas == 1
    assert arrived.reason == (
        "an item arrived for web/development/general with no replicas (activated on arrival)"
    )
    # Nothing to do for a pool that has replicas, or may not grow.
    one = zero.model_copy(update={"current_replicas": 1})
    assert activate_on_arrival(policy, one, "web/development/general", NOW) is None
    capped = zero.model_copy(update={"max_replicas": 0})
    assert activate_on_arrival(policy, capped, "web/development/general", NOW) is None
    paused = policy.model_copy(update={"paused": True})
    assert activate_on_arrival(paused, zero, "web/development/general", NOW) is None
