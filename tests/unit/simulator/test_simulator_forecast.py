"""The drain forecast: from observed rates, by the simulator's engine; and checked against
what a replayed trace then does."""

from __future__ import annotations

import pytest

from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.simulator.engine import RateLimit, simulate
from agentfleet.simulator.forecast import ProjectLoad, forecast, observe, replay
from agentfleet.simulator.policies import StaticPolicy
from agentfleet.simulator.trace import Arrival, bursty_trace

pytestmark = pytest.mark.unit

BACKLOG = ProjectLoad("web", queued=40, in_progress=4, arrival_rate=2 / 3600, service_seconds=600)


def test_a_backlog_is_done_in_about_its_work_over_the_capacity() -> None:
    [result] = forecast([BACKLOG], replicas=4, max_replicas=8)
    current, maximum = result.current, result.maximum
    assert (current.replicas, maximum.replicas) == (4, 8)
    assert current.done_seconds is not None and maximum.done_seconds is not None
    # 44 items x 600 s on 4 workers is 6,600 s of work each, plus the last item's tail.
    assert 5500 < current.done_seconds < 8500
    # Twice the workers (the new ones after their 60 s start-up): about half the time.
    assert 0.4 < maximum.done_seconds / current.done_seconds < 0.65
    assert current.done_range is not None
    assert current.done_range[0] <= current.done_seconds <= current.done_range[1]
    # The queue empties before the last items are done.
    assert current.drained_seconds is not None
    assert current.drained_seconds < current.done_seconds


def test_the_forecast_is_a_function_of_its_inputs() -> None:
    assert forecast([BACKLOG], replicas=4, max_replicas=8) == forecast(
        [BACKLOG], replicas=4, max_replicas=8
    )


def test_a_queue_fed_faster_than_it_is_served_never_empties() -> None:
    flooded = ProjectLoad("web", 10, 2, arrival_rate=30 / 3600, service_seconds=600)
    [result] = forecast([flooded], replicas=2, max_replicas=10)
    assert result.current.drained_seconds is None
    # The work queued now is still done: FIFO serves it before the newcomers.
    assert result.current.done_seconds is not None
    assert result.maximum.drained_seconds is not None


def test_projects_share_the_pool() -> None:
    alone = forecast([BACKLOG], replicas=4, max_replicas=4)[0].current.done_seconds
    other = ProjectLoad("api", queued=40, in_progress=0, arrival_rate=0, service_seconds=600)
    shared = forecast([BACKLOG, other], replicas=4, max_replicas=4)
    assert alone is not None and shared[0].current.done_seconds is not None
    assert shared[0].current.done_seconds > 1.5 * alone


def test_a_rate_limit_caps_what_more_replicas_buy() -> None:
    limited = forecast([BACKLOG], replicas=2, max_replicas=8, rate_limit=RateLimit(2))
    assert limited[0].current.done_seconds is not None
    assert limited[0].maximum.done_seconds is not None
    assert limited[0].maximum.done_seconds > 0.9 * limited[0].current.done_seconds


def test_nothing_to_forecast() -> None:
    assert forecast([], replicas=1, max_replicas=2) == []
    [idle] = forecast([ProjectLoad("web", 0, 0, 0.0, 600)], replicas=0, max_replicas=2)
    assert (idle.current.done_seconds, idle.current.drained_seconds) == (0.0, 0.0)
    assert idle.current.replicas == 1


def test_observe_reports_what_the_queue_and_workers_would_have() -> None:
    trace = [Arrival(t, 600) for t in (0, 0, 0, 100, 4000, 4000, 4000)]
    result = simulate(
        trace, StaticPolicy(1), poll_seconds=15, startup_seconds=60, horizon_seconds=9000
    )
    [load] = observe(trace, result, at=4100, window_seconds=3600)
    # One worker, 600 s each: the first four are done by 2400, the fifth runs 4000-4600,
    # two wait. Three arrived in the last quarter hour, none in the three before: the
    # cluster counts as two (twice the median quarter, at least two) over the hour.
    assert (load.queued, load.in_progress) == (2, 1)
    assert load.service_seconds == 600
    assert load.service_samples == 4
    assert load.arrival_rate == pytest.approx(2 / 3600)


def test_the_replayed_built_in_trace_is_forecast_within_20_percent() -> None:
    """One moment of benchmarks/policy_quality.py's check: a pool held at two replicas with
    a burst's backlog; the forecast at 2 and at 5 replicas against the replay."""
    result = replay(
        bursty_trace(seed=7),
        AutoscalingSpec(),
        min_replicas=1,
        max_replicas=5,
        start_replicas=2,
        at_seconds=2.5 * 3600,
        fixed_replicas=2,
        runs=15,
    )
    [item] = result.forecasts
    assert item.load.queued >= 20
    for drain, measured in (
        (item.current, result.measured_current[item.project]),
        (item.maximum, result.measured_maximum[item.project]),
    ):
        assert drain.done_seconds is not None and measured.done_seconds is not None
        assert abs(drain.done_seconds - measured.done_seconds) <= 0.2 * measured.done_seconds
