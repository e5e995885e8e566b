"""Invariants of the decision core over generated policies, pool states and signals."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from agentfleet.core.api.autoscaling import (
    AutoscalingSpec,
    FallbackPolicy,
    PredictionPolicy,
    RateLimitPolicy,
    ScaleDownRule,
    ScaleUpRule,
)
from agentfleet.operator.autoscaler.decision import ScaleState, Signals, Trigger, decide

pytestmark = pytest.mark.unit

NOW = 1_000_000.0


@st.composite
def policies(draw: st.DrawFn) -> AutoscalingSpec:
    depth_low = draw(st.integers(0, 20))
    wait_low = draw(st.floats(0, 3600))
    util_low = draw(st.floats(0, 0.9))
    return AutoscalingSpec(
        scale_up=ScaleUpRule(
            queue_depth_above=draw(st.integers(depth_low + 1, 40)),
            oldest_wait_seconds_above=draw(st.floats(wait_low + 1, 7200)),
            utilization_above=draw(st.floats(util_low + 0.01, 1.0)),
            utilization_needs_backlog=draw(st.booleans()),
            sizing=draw(st.sampled_from(["backlog", "step"])),
            drain_seconds=draw(st.integers(1, 7200)),
            step=draw(st.integers(1, 10)),
            stabilization_seconds=draw(st.integers(0, 120)),
        ),
        scale_down=ScaleDownRule(
            queue_depth_below=depth_low,
            oldest_wait_seconds_below=wait_low,
            utilization_below=util_low,
            sizing=draw(st.sampled_from(["backlog", "step"])),
            step=draw(st.integers(1, 10)),
            cooldown_seconds=draw(st.integers(0, 900)),
        ),
        fallback=FallbackPolicy(
            failure_threshold=draw(st.integers(1, 5)),
            replicas=draw(st.none() | st.integers(0, 30)),
        ),
        prediction=PredictionPolicy(
            enabled=draw(st.booleans()),
            window_seconds=draw(st.integers(60, 86400)),
            period_seconds=draw(st.sampled_from([0, 3600, 86400])),
            lookahead_seconds=draw(st.integers(60, 7200)),
        ),
        rate_limit=RateLimitPolicy(
            enabled=draw(st.booleans()),
            throttled_above=draw(st.floats(0, 1)),
            headroom_below=draw(st.floats(0, 1)),
        ),
    )


@st.composite
def states(draw: st.DrawFn, in_bounds: bool = True) -> ScaleState:
    lo = draw(st.integers(0, 10))
    hi = draw(st.integers(lo, 30))
    current = draw(st.integers(lo, hi) if in_bounds else st.integers(0, 40))
    ago = st.none() | st.floats(0, 2000)
    up_ago, down_ago = draw(ago), draw(ago)
    return ScaleState(
        current_replicas=current,
        min_replicas=lo,
        max_replicas=hi,
        last_scale_up_time=None if up_ago is None else NOW - up_ago,
        last_scale_down_time=None if down_ago is None else NOW - down_ago,
        consecutive_failures=draw(st.integers(0, 10)),
    )


def maybe(values: st.SearchStrategy[float]) -> st.SearchStrategy[float | None]:
    return st.none() | values


DEPTHS = st.integers(0, 100).map(float)
WAITS = st.floats(0, 10_000)
UTILIZATIONS = st.floats(0, 1)

SERVICE = st.floats(0, 7200)
RATES = st.floats(0, 0.1)  # items per second: up to 360 an hour
FRACTIONS = st.floats(0, 1)

# The optional signals: absent means "no information", present they refine a decision.
optional = {
    "service_seconds": maybe(SERVICE),
    "arrival_rate": maybe(RATES),
    "seasonal_arrival_rate": maybe(RATES),
    "throttled_fraction": maybe(FRACTIONS),
    "api_headroom": maybe(FRACTIONS),
}
signals = st.builds(
    Signals,
    queue_depth=maybe(DEPTHS),
    oldest_wait_seconds=maybe(WAITS),
    utilization=maybe(UTILIZATIONS),
    **optional,
)
complete_signals = st.builds(
    Signals,
    queue_depth=DEPTHS,
    oldest_wait_seconds=WAITS,
    utilization=UTILIZATIONS,
    **optional,
)


def any_high(policy: AutoscalingSpec, s: Signals) -> bool:
    up = policy.scale_up
    waiting = s.queue_depth is not None and s.queue_depth > 0
    return (
        (s.queue_depth is not None and s.queue_depth > up.queue_depth_above)
        or (
            s.oldest_wait_seconds is not None
            and s.oldest_wait_seconds > up.oldest_wait_seconds_above
        )
        or (
            s.utilization is not None
            and s.utilization > up.utilization_above
            and (waiting or not up.utilization_needs_backlog)
        )
    )


def rate_limited(policy: AutoscalingSpec, s: Signals) -> bool:
    limit = policy.rate_limit
    return limit.enabled and (
        (s.throttled_fraction is not None and s.throttled_fraction > limit.throttled_above)
        or (
            limit.headroom_below > 0
            and s.api_headroom is not None
            and s.api_headroom < limit.headroom_below
        )
    )


def prediction_floor(policy: AutoscalingSpec, state: ScaleState, s: Signals) -> int:
    """What the floor rule promises, computed independently of the decision code."""
    rates = [s.arrival_rate]
    if policy.prediction.period_seconds > 0:
        rates.append(s.seasonal_arrival_rate)
    known = [rate for rate in rates if rate is not None]
    if not policy.prediction.enabled or s.service_seconds is None or not known:
        return state.min_replicas
    load = max(known) * s.service_seconds
    return min(state.max_replicas, max(state.min_replicas, math.ceil(load - 1e-9)))


def busy_workers(state: ScaleState, s: Signals) -> int:
    if s.utilization is None or state.current_replicas == 0:
        return 0
    return math.ceil(min(1.0, s.utilization) * state.current_replicas - 1e-9)


@given(policies(), states(in_bounds=False), signals)
def test_desired_replicas_are_always_within_bounds(
    policy: AutoscalingSpec, state: ScaleState, s: Signals
) -> None:
    decision = decide(policy, state, s, NOW)
    assert state.min_replicas <= decision.desired_replicas <= state.max_replicas


@given(policies(), states(), signals)
def test_no_scale_down_while_any_signal_is_high(
    policy: AutoscalingSpec, state: ScaleState, s: Signals
) -> None:
    assume(any_high(policy, s))
    assert decide(policy, state, s, NOW).desired_replicas >= state.current_replicas


@given(policies(), states(), signals)
def test_no_scale_down_while_any_required_signal_is_missing(
    policy: AutoscalingSpec, state: ScaleState, s: Signals
) -> None:
    decision = decide(policy, state, s, NOW)
    if not decision.metrics_available:
        assert decision.desired_replicas >= state.current_replicas


@given(policies(), states(), signals)
def test_no_change_inside_stabilization_or_cooldown(
    policy: AutoscalingSpec, state: ScaleState, s: Signals
) -> None:
    last = state.last_scale_time
    assume(last is not None)
    assert last is not None
    since = NOW - last
    decision = decide(policy, state, s, NOW)
    activation = state.current_replicas == 0 and decision.trigger is Trigger.ACTIVATION
    if since < policy.scale_up.stabilization_seconds and not activation:
        assert decision.desired_replicas <= state.current_replicas
    if activation:  # one item nobody can take is not noise: one replica, at once
        assert decision.desired_replicas == 1
    if since < policy.scale_down.cooldown_seconds:
        assert decision.desired_replicas >= state.current_replicas


@given(policies(), states(), complete_signals, st.data())
def test_more_load_never_means_fewer_replicas(
    policy: AutoscalingSpec, state: ScaleState, low: Signals, data: st.DataObject
) -> None:
    assert low.queue_depth is not None
    assert low.oldest_wait_seconds is not None
    assert low.utilization is not None
    high = low.model_copy(
        update={
            "queue_depth": low.queue_depth + data.draw(st.integers(0, 50)),
            "oldest_wait_seconds": low.oldest_wait_seconds + data.draw(st.floats(0, 5000)),
            "utilization": min(1.0, low.utilization + data.draw(st.floats(0, 1))),
        }
    )
    assert (
        decide(policy, state, low, NOW).desired_replicas
        <= decide(policy, state, high, NOW).desired_replicas
    )


@given(policies(), states(), signals)
def test_a_step_sized_scale_moves_at_most_one_step(
    policy: AutoscalingSpec, state: ScaleState, s: Signals
) -> None:
    policy = policy.model_copy(
        update={
            "scale_up": policy.scale_up.model_copy(update={"sizing": "step"}),
            "scale_down": policy.scale_down.model_copy(update={"sizing": "step"}),
            "prediction": PredictionPolicy(enabled=False),
        }
    )
    decision = decide(policy, state, s, NOW)
    change = decision.desired_replicas - state.current_replicas
    fallback = policy.fallback.replicas
    if change > 0 and decision.trigger != "fallback":
        assert change <= policy.scale_up.step
    if change > 0 and decision.trigger == "fallback":
        assert fallback is not None
        expected = min(max(fallback, state.min_replicas), state.max_replicas)
        if rate_limited(policy, s) and state.current_replicas == 0:
            expected = 1  # a rate-limited pool at zero gets one replica, no more
        assert decision.desired_replicas == expected
    if change < 0:
        assert -change <= policy.scale_down.step


@given(policies(), states(), complete_signals, SERVICE)
def test_a_backlog_sized_scale_up_adds_no_more_than_the_backlog_needs(
    policy: AutoscalingSpec, state: ScaleState, s: Signals, service: float
) -> None:
    policy = policy.model_copy(
        update={"scale_up": policy.scale_up.model_copy(update={"sizing": "backlog"})}
    )
    s = s.model_copy(update={"service_seconds": service})
    assert s.queue_depth is not None
    decision = decide(policy, state, s, NOW)
    assume(decision.desired_replicas > state.current_replicas)
    assume(decision.trigger not in (Trigger.FALLBACK, Trigger.MIN_REPLICAS))
    busy = min(1.0, s.utilization or 0.0) * state.current_replicas
    need = math.ceil(busy + s.queue_depth * service / policy.scale_up.drain_seconds)
    assert decision.desired_replicas <= max(
        state.current_replicas + 1, need, prediction_floor(policy, state, s)
    )


@given(policies(), states(), signals)
def test_a_backlog_sized_scale_down_removes_only_idle_replicas(
    policy: AutoscalingSpec, state: ScaleState, s: Signals
) -> None:
    assume(policy.scale_down.sizing == "backlog")
    decision = decide(policy, state, s, NOW)
    if decision.desired_replicas < state.current_replicas:
        assert decision.desired_replicas >= busy_workers(state, s)


@given(policies(), states(), signals)
def test_never_scale_down_below_the_prediction_floor(
    policy: AutoscalingSpec, state: ScaleState, s: Signals
) -> None:
    decision = decide(policy, state, s, NOW)
    if decision.desired_replicas < state.current_replicas:
        assert decision.desired_replicas >= prediction_floor(policy, state, s)


@given(policies(), states(), signals, st.floats(0, 0.99), st.sampled_from(["429s", "headroom"]))
def test_never_scale_up_while_rate_limited(
    policy: AutoscalingSpec, state: ScaleState, s: Signals, threshold: float, how: str
) -> None:
    assume(state.current_replicas > 0)
    limit = RateLimitPolicy(throttled_above=threshold, headroom_below=threshold + 0.01)
    policy = policy.model_copy(update={"rate_limit": limit})
    if how == "429s":
        s = s.model_copy(update={"throttled_fraction": 1.0})
    else:
        s = s.model_copy(update={"api_headroom": threshold})
    assert rate_limited(policy, s)
    decision = decide(policy, state, s, NOW)
    assert decision.desired_replicas <= state.current_replicas
    if decision.wanted_replicas > state.current_replicas:
        assert decision.blocked_by in ("rate_limit", "stabilization")


@given(policies(), states(), signals, UTILIZATIONS)
def test_utilization_alone_never_adds_pods_while_nothing_waits(
    policy: AutoscalingSpec, state: ScaleState, s: Signals, utilization: float
) -> None:
    policy = policy.model_copy(
        update={
            "scale_up": policy.scale_up.model_copy(update={"utilization_needs_backlog": True}),
            "fallback": FallbackPolicy(),
        }
    )
    # Nothing waits, the oldest wait is not high; utilization is whatever it is.
    wait = min(s.oldest_wait_seconds or 0.0, policy.scale_up.oldest_wait_seconds_above)
    s = s.model_copy(
        update={"queue_depth": 0.0, "oldest_wait_seconds": wait, "utilization": utilization}
    )
    assume(prediction_floor(policy, state, s) <= state.current_replicas)
    assert decide(policy, state, s, NOW).desired_replicas <= state.current_replicas


@given(policies(), states(), signals)
def test_every_decision_names_its_cause(
    policy: AutoscalingSpec, state: ScaleState, s: Signals
) -> None:
    decision = decide(policy, state, s, NOW)
    assert decision.reason
    assert decision.trigger in set(Trigger)
    if decision.trigger is Trigger.RATE_LIMITED:
        assert "429/529" in decision.reason or "api_headroom" in decision.reason
    if decision.trigger is Trigger.PREDICTION:
        assert "forecast" in decision.reason


@given(policies(), states(), signals)
def test_paused_pools_never_change(policy: AutoscalingSpec, state: ScaleState, s: Signals) -> None:
    paused = policy.model_copy(update={"paused": True})
    assert decide(paused, state, s, NOW).desired_replicas == state.current_replicas


@settings(max_examples=50)
@given(policies(), st.integers(1, 30))
def test_scale_to_zero_and_back_to_one(policy: AutoscalingSpec, hi: int) -> None:
    down = policy.scale_down
    # An all-zero signal is "low" only when every scale-down threshold is above zero.
    assume(min(down.queue_depth_below, down.oldest_wait_seconds_below, down.utilization_below) > 0)
    idle = ScaleState(current_replicas=1, min_replicas=0, max_replicas=hi)
    quiet = Signals(queue_depth=0, oldest_wait_seconds=0, utilization=0)
    assert decide(policy, idle, quiet, NOW).desired_replicas == 0
    empty = ScaleState(current_replicas=0, min_replicas=0, max_replicas=hi)
    first_item = Signals(queue_depth=1, oldest_wait_seconds=0)
    expected = 1 if policy.scale_up.queue_depth_above >= 1 else min(hi, policy.scale_up.step)
    assert decide(policy, empty, first_item, NOW).desired_replicas == expected
