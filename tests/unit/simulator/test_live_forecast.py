"""`agentfleet forecast`'s pure part: the operator's observations to the engine's loads, and
its answer to rows (with why a Project cannot be forecast)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.core.forecastapi import (
    ForecastObservations,
    ForecastRow,
    PoolObservation,
    ProjectObservation,
)
from agentfleet.simulator.forecast import replay
from agentfleet.simulator.forecast_command import cells
from agentfleet.simulator.live import STARTUP_SECONDS, forecast_rows, project_load, why_not
from agentfleet.simulator.trace import bursty_trace

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def project(name: str, queued: int, in_progress: int = 0, rate: float = 0.0, held: bool = False
            ) -> ProjectObservation:  # fmt: skip
    return ProjectObservation(
        project=name, queued=queued, in_progress=in_progress, held=held, arrival_rate=rate
    )


def pool(*projects: ProjectObservation, **changes: object) -> PoolObservation:
    fields: dict[str, object] = {
        "pool": "devs", "stage": Stage.DEVELOPMENT, "replicas": 2, "max_replicas": 6,
        "pinned": False, "poll_seconds": 15.0, "service_seconds": 60.0, "service_samples": 40,
        "projects": list(projects),
    }  # fmt: skip
    return PoolObservation.model_validate({**fields, **changes})


def observed(*pools: PoolObservation) -> ForecastObservations:
    return ForecastObservations(
        namespace="team-a", generated_at=NOW, window_seconds=3600.0, source="prometheus",
        source_note="test", pools=list(pools),
    )  # fmt: skip


def test_a_load_carries_the_pools_service_time() -> None:
    load = project_load(pool(), project("shop", 20, 2, 0.01))
    assert load is not None
    assert (load.project, load.queued, load.in_progress, load.arrival_rate) == (
        "shop", 20, 2, 0.01,
    )  # fmt: skip
    assert (load.service_seconds, load.service_samples) == (60.0, 40)
    assert project_load(pool(service_seconds=None), project("shop", 20)) is None


@pytest.mark.parametrize(
    ("changes", "held", "reason"),
    [
        ({"service_seconds": None, "service_samples": 0}, False, "no service time observed"),
        ({}, True, "the Project is paused"),
        ({"replicas": 0, "max_replicas": 0, "pinned": True}, False, "pinned at 0 replicas"),
        ({"stage": None}, False, "spec does not parse"),
    ],
)
def test_what_cannot_be_forecast_says_why(
    changes: dict[str, object], held: bool, reason: str
) -> None:
    seen = pool(project("shop", 20, held=held), **changes)
    assert reason in (why_not(seen, seen.projects[0]) or "")
    (row,) = forecast_rows(observed(seen))
    assert (row.current, row.maximum) == (None, None)
    assert reason in (row.cannot_forecast or "")


def test_queued_work_drains_sooner_at_the_maximum() -> None:
    rows = forecast_rows(observed(pool(project("shop", 40, 2), project("blog", 0, 0))))
    shop = next(r for r in rows if r.project == "shop")
    assert shop.cannot_forecast is None
    assert shop.current is not None and shop.maximum is not None
    assert (shop.current.replicas, shop.maximum.replicas) == (2, 6)
    # 42 items of 60 s on two workers: about 21 minutes
    done, done_at_max = shop.current.done_seconds, shop.maximum.done_seconds
    assert done == pytest.approx(42 * 60 / 2, rel=0.3)
    assert done is not None and done_at_max is not None
    assert done_at_max < 0.6 * done
    assert shop.current.done_at == NOW + timedelta(seconds=done)
    assert shop.current.drained_seconds is not None and shop.current.drained_at is not None
    blog = next(r for r in rows if r.project == "blog")
    assert blog.current is not None and blog.current.done_seconds == 0.0
    assert ForecastRow.model_validate(shop.wire()) == shop


def test_arrivals_that_outrun_the_capacity_leave_no_drain_time() -> None:
    # 10 items a minute of 60 s each need 10 workers: 2 and 6 never empty the queue
    (row,) = forecast_rows(observed(pool(project("shop", 10, 2, rate=10 / 60))))
    assert row.current is not None and row.maximum is not None
    assert (row.current.drained_seconds, row.maximum.drained_seconds) == (None, None)
    assert row.current.drained_at is None
    assert "outrun even the maximum capacity (6 replicas)" in (row.cannot_forecast or "")
    # 3 a minute: 2 workers fall behind, 6 catch up
    (row,) = forecast_rows(observed(pool(project("shop", 10, 2, rate=3 / 60))))
    assert row.maximum is not None and row.maximum.drained_seconds is not None
    assert "outrun the current capacity (2 replicas)" in (row.cannot_forecast or "")
    assert row.arrivals_per_hour == 180.0


def test_the_table_shows_durations_and_never_for_a_queue_that_does_not_empty() -> None:
    (row,) = forecast_rows(observed(pool(project("shop", 10, 2, rate=3 / 60))))
    shown = cells(row, {("team-a", "devs"): (2, 6)})
    assert shown[:8] == ["team-a", "devs", "shop", "10", "2", "180.0", "60s", "2/6"]
    assert shown[9] == "never"  # drained at the current capacity
    assert shown[8].endswith(")") and "(" in shown[8]  # done: a duration and the moment
    assert shown[12].startswith("the arrivals outrun the current capacity")
    (blocked,) = forecast_rows(observed(pool(project("shop", 10, held=True))))
    assert cells(blocked, {("team-a", "devs"): (2, 6)})[8:12] == ["-", "-", "-", "-"]


def test_on_a_replayed_trace_it_forecasts_as_the_simulator_and_within_20_percent() -> None:
    """The bursty trace through a pool held at 2 replicas (maximum 5), observed two hours
    in (as `benchmarks/policy_quality.py` section 3 does): the command's path from the
    observations gives the engine's forecast, and that is within 20 % of the drain the
    simulation then measures, at both capacities."""
    result = replay(
        bursty_trace(seed=7), AutoscalingSpec(), min_replicas=1, max_replicas=5,
        start_replicas=2, at_seconds=7200.0, startup_seconds=STARTUP_SECONDS,
        fixed_replicas=2, runs=15,
    )  # fmt: skip
    (engine,) = result.forecasts
    load = engine.load
    assert load.queued >= 20 and (load.service_samples or 0) >= 20
    seen = pool(
        project(load.project, load.queued, load.in_progress, load.arrival_rate),
        replicas=result.replicas, max_replicas=5, service_seconds=load.service_seconds,
        service_samples=load.service_samples,
    )  # fmt: skip
    (row,) = forecast_rows(observed(seen), runs=15)
    assert row.current is not None and row.maximum is not None
    for figures, drain, measured in (
        (row.current, engine.current, result.measured_current[load.project]),
        (row.maximum, engine.maximum, result.measured_maximum[load.project]),
    ):
        assert drain.done_seconds is not None and measured.done_seconds is not None
        assert figures.replicas == drain.replicas
        assert figures.done_seconds == round(drain.done_seconds, 1)
        assert figures.done_seconds == pytest.approx(measured.done_seconds, rel=0.2)
    assert (row.current.replicas, row.maximum.replicas) == (2, 5)
