"""The discrete-event engine on hand-made traces whose outcome can be worked out by hand."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.simulator.engine import RateLimit, simulate
from agentfleet.simulator.policies import AgentfleetPolicy, PoolView, StaticPolicy
from agentfleet.simulator.trace import Arrival

pytestmark = pytest.mark.unit


@dataclass
class Scripted:
    """A policy that follows a timetable of replicas and records what it saw."""

    timetable: dict[float, int]
    start: int
    name: str = "scripted"
    seen: list[tuple[float, PoolView]] = field(default_factory=list)

    def initial_replicas(self) -> int:
        return self.start

    def poll(self, now: float, replicas: int, view: PoolView) -> int:
        self.seen.append((now, view))
        return self.timetable.get(now, replicas)


def test_one_worker_serves_items_in_arrival_order() -> None:
    trace = [Arrival(0, 100), Arrival(0, 100), Arrival(50, 100)]
    result = simulate(
        trace, StaticPolicy(1), poll_seconds=15, startup_seconds=60, horizon_seconds=1000
    )
    assert sorted(result.waits) == [0, 100, 150]
    assert result.completed == 3
    assert result.unserved == 0
    assert result.pod_seconds == 1000
    assert result.scale_events == 0


def test_new_pods_take_work_only_after_the_start_up_delay() -> None:
    trace = [Arrival(0, 500), Arrival(0, 500)]
    policy = Scripted({0.0: 2}, start=1)
    result = simulate(trace, policy, poll_seconds=10, startup_seconds=60, horizon_seconds=600)
    assert sorted(result.waits) == [0, 60]
    # The second pod costs from its creation at 0, ready or not.
    assert result.pod_seconds == 600 + 600
    assert result.scale_events == 1


def test_scale_down_removes_idle_pods_first_and_busy_pods_drain() -> None:
    trace = [Arrival(0, 300), Arrival(350, 10)]
    # Three warm pods: one busy from 0 to 300, two idle; at 100 shrink to one.
    policy = Scripted({100.0: 1}, start=3)
    result = simulate(trace, policy, poll_seconds=50, startup_seconds=60, horizon_seconds=400)

    # The busy pod survived: its item finished, and it took the next one.
    assert result.completed == 2
    assert sorted(result.waits) == [0, 0]
    # Kept pod: 400 s; the two idle pods were removed at 100.
    assert result.pod_seconds == 400 + 100 + 100


def test_a_removed_busy_pod_drains_its_item_before_it_goes() -> None:
    trace = [Arrival(0, 300), Arrival(0, 300)]
    policy = Scripted({100.0: 1}, start=2)
    result = simulate(trace, policy, poll_seconds=50, startup_seconds=60, horizon_seconds=1000)
    assert result.completed == 2
    # One pod runs to the horizon, the drained one until its item finished at 300.
    assert result.pod_seconds == 1000 + 300


def test_items_never_started_count_with_their_wait_at_the_horizon() -> None:
    trace = [Arrival(0, 1000), Arrival(10, 5)]
    result = simulate(
        trace, StaticPolicy(1), poll_seconds=15, startup_seconds=0, horizon_seconds=500
    )
    assert result.unserved == 1
    assert sorted(result.waits) == [0, 490]


def test_the_policy_sees_queue_age_in_progress_and_utilization() -> None:
    trace = [Arrival(0, 1000), Arrival(0, 1000), Arrival(5, 1000)]
    policy = Scripted({}, start=2)
    simulate(trace, policy, poll_seconds=20, startup_seconds=0, horizon_seconds=40)
    at_20 = dict(policy.seen)[20.0]
    assert at_20 == PoolView(waiting=1, in_progress=2, oldest_wait_seconds=15, utilization=1.0)


def test_utilization_counts_starting_pods_as_idle_capacity() -> None:
    trace = [Arrival(0, 1000)]
    policy = Scripted({0.0: 4}, start=1)
    simulate(trace, policy, poll_seconds=20, startup_seconds=60, horizon_seconds=40)
    assert dict(policy.seen)[20.0].utilization == 0.25


def test_no_utilization_while_no_worker_is_up() -> None:
    trace = [Arrival(0, 100)]
    policy = Scripted({0.0: 1}, start=0)
    simulate(trace, policy, poll_seconds=20, startup_seconds=60, horizon_seconds=40)
    assert dict(policy.seen)[20.0].utilization is None


def test_scale_to_zero_and_back_with_the_operators_rules() -> None:
    trace = [Arrival(0, 100), Arrival(2000, 100)]
    spec = AutoscalingSpec.model_validate({"scaleDown": {"cooldownSeconds": 300}})
    policy = AgentfleetPolicy(spec, min_replicas=0, max_replicas=3, start_replicas=0)
    result = simulate(trace, policy, poll_seconds=15, startup_seconds=60, horizon_seconds=4000)

    changes = [(t, d.current_replicas, d.desired_replicas, d.reason) for t, d in policy.decisions]
    activation = "queue_depth=1 > 0 with no replicas"
    assert changes[0] == (0, 0, 1, activation)
    to_zero = [t for t, _, desired, _ in changes if desired == 0]
    assert to_zero
    assert to_zero[0] < 2000
    assert (2010, 0, 1, activation) in changes
    # Every scale-down waited out the cooldown since the previous change.
    for (before, *_), (at, current, desired, _) in itertools.pairwise(changes):
        if desired < current:
            assert at - before >= 300
    assert sorted(result.waits) == [60, 70]
    assert result.timeline[-1].replicas == 0


# ------------------------------------------------------------------- rate limits


def test_without_a_limit_nothing_is_throttled() -> None:
    trace = [Arrival(0, 100), Arrival(0, 100)]
    policy = Scripted({}, start=2)
    result = simulate(trace, policy, poll_seconds=50, startup_seconds=60, horizon_seconds=300)
    assert result.finishes == [100, 100]
    assert all(v.throttled_fraction is None and v.api_headroom is None for _, v in policy.seen)


def test_busy_workers_beyond_the_limit_share_it_and_the_extra_time_counts_as_waiting() -> None:
    # The API serves one session at full speed; two busy workers each get half of it.
    trace = [Arrival(0, 100), Arrival(0, 100)]
    policy = Scripted({}, start=2)
    result = simulate(
        trace,
        policy,
        poll_seconds=50,
        startup_seconds=60,
        horizon_seconds=300,
        rate_limit=RateLimit(sessions=1),
    )
    assert result.finishes == [200, 200]
    # Each was held back for 100 s of its 200 s in a worker.
    assert sorted(result.waits) == [100, 100]
    at_50 = dict(policy.seen)[50.0]
    assert (at_50.throttled_fraction, at_50.api_headroom) == (0.5, 0.0)


def test_a_finished_item_speeds_up_the_others() -> None:
    trace = [Arrival(0, 50), Arrival(0, 100)]
    result = simulate(
        trace,
        StaticPolicy(2),
        poll_seconds=50,
        startup_seconds=60,
        horizon_seconds=500,
        rate_limit=RateLimit(sessions=1),
    )
    # Both at half speed until the short one is done at 100 (50 s of work each), then the
    # long one has 50 s left at full speed.
    assert result.finishes == [100, 150]


def test_a_limit_applies_only_within_its_window() -> None:
    trace = [Arrival(0, 100), Arrival(0, 100)]
    limit = RateLimit(sessions=1, start=20, end=60)
    result = simulate(
        trace,
        StaticPolicy(2),
        poll_seconds=50,
        startup_seconds=60,
        horizon_seconds=500,
        rate_limit=limit,
    )
    # Full speed 0-20, half speed 20-60 (20 s of work), full speed again: 60 s left.
    assert result.finishes == pytest.approx([120, 120])
    assert limit.headroom(10, busy=0) == 1.0
    assert limit.headroom(30, busy=1) == 0.0


def test_headroom_falls_as_workers_get_busy() -> None:
    limit = RateLimit(sessions=4)
    assert [limit.headroom(0, busy) for busy in (0, 1, 2, 4, 6)] == [1.0, 0.75, 0.5, 0.0, 0.0]
    assert [limit.speed(0, busy) for busy in (1, 4, 8)] == [1.0, 1.0, 0.5]
    with pytest.raises(ValueError):
        RateLimit(sessions=0)


# --------------------------------------------------------------- projects, history


def test_projects_are_taken_in_turn() -> None:
    trace = [Arrival(0, 10, "a"), Arrival(0, 10, "a"), Arrival(0, 10, "a"), Arrival(1, 10, "b")]
    result = simulate(
        trace, StaticPolicy(1), poll_seconds=50, startup_seconds=60, horizon_seconds=100
    )
    # a takes the worker at 0 and goes to the back of the turn; b joins behind it at 1.
    # At 10 it is a's turn, at 20 b's (though a has an older item), then a's again.
    assert result.starts == [0, 10, 30, 20]


def test_the_policy_sees_the_history_of_arrivals_and_processing_times() -> None:
    trace = [Arrival(0, 100), Arrival(10, 300), Arrival(400, 50)]
    policy = Scripted({}, start=2)
    simulate(trace, policy, poll_seconds=500, startup_seconds=60, horizon_seconds=500)
    history = dict(policy.seen)[500.0].history
    assert history is not None
    assert history.arrivals_between(0, 500) == 2  # (0, 500]: the one at 0 is not inside
    assert history.arrivals_between(-1, 500) == 3
    assert history.mean_service_between(0, 500) == pytest.approx((100 + 300 + 50) / 3)
    assert history.mean_service_between(0, 50) is None


def test_items_running_at_the_start_occupy_warm_workers() -> None:
    trace = [Arrival(0, 100)]
    result = simulate(
        trace,
        StaticPolicy(1),
        poll_seconds=50,
        startup_seconds=60,
        horizon_seconds=500,
        running=[Arrival(0, 30)],
    )
    assert result.running_finishes == [30]
    assert result.starts == [30]
    assert result.waits == [30]
