"""What the read API's forecast endpoint observes per pool and Project (pure): the lanes a
pool reads, its replicas, and the rates from Prometheus' answers or the completion log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.forecastapi import ForecastObservations
from agentfleet.core.pipeline.lanes import Lane
from agentfleet.core.queue import InFlight, NamespaceSnapshot
from agentfleet.core.queue.snapshot import LaneFigures
from agentfleet.operator.forecastapi import (
    ArrivalKey,
    arrivals_from_log,
    arrivals_from_prometheus,
    arrivals_query,
    observations,
    pool_observation,
    service_from_log,
    service_from_prometheus,
    service_queries,
    working,
)
from agentfleet.operator.index import PAUSED_REPLICAS_ANNOTATION, PoolEntry

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
NS = "team-a"


def pool(
    name: str, stage: str, *, replicas: int = 2, annotations: dict[str, str] | None = None,
    **spec: Any,
) -> PoolEntry:  # fmt: skip
    return PoolEntry.from_body(
        {
            "metadata": {
                "namespace": NS, "name": name, "uid": name, "annotations": annotations or {},
            },
            "spec": {"stage": stage, "minReplicas": 1, "maxReplicas": 6, **spec},
            "status": {"replicas": replicas},
        }
    )  # fmt: skip


def lane(project: str, stage: Stage, specialty: str, waiting: int) -> LaneFigures:
    return LaneFigures(project, stage, specialty, Lane.NORMAL, waiting, 0, None)


def holding(project: str, stage: Stage, specialty: str = "general") -> InFlight:
    return InFlight(
        worker="w", item_id=f"{project}-{stage}-{specialty}", project=project, stage=stage,
        specialty=specialty, lane=Lane.NORMAL, heartbeat_at=NOW, deliveries=1,
    )  # fmt: skip


SNAPSHOT = NamespaceSnapshot(
    namespace=NS,
    lanes=(
        lane("shop", Stage.DEVELOPMENT, "general", 5),
        lane("shop", Stage.DEVELOPMENT, "tdd", 3),
        lane("shop", Stage.GENESIS, "general", 40),
        lane("blog", Stage.DEVELOPMENT, "general", 2),
        lane("blog", Stage.DEVELOPMENT, "ai-ml", 7),
    ),
    held_projects=frozenset({"blog"}),
)
HELD = [holding("shop", Stage.DEVELOPMENT), holding("shop", Stage.DEVELOPMENT, "tdd"),
        holding("shop", Stage.GENESIS)]  # fmt: skip


def test_a_pool_counts_the_lanes_it_reads_per_project() -> None:
    # per quarter hour, oldest first
    arrivals: dict[ArrivalKey, list[float]] = {
        ("shop", Stage.DEVELOPMENT, "general"): [3, 3, 3, 3],
        ("shop", Stage.DEVELOPMENT, "tdd"): [1, 1, 1, 1],
        ("shop", Stage.GENESIS, "general"): [100, 100, 100, 100],
        ("blog", Stage.DEVELOPMENT, "ai-ml"): [9, 9, 9, 9],
    }
    seen = pool_observation(
        pool("devs", "development", specialties=["tdd"]), SNAPSHOT, HELD, arrivals, 900.0,
        (120.0, 30),
    )  # fmt: skip
    assert (seen.pool, seen.stage, seen.replicas, seen.max_replicas) == (
        "devs", Stage.DEVELOPMENT, 2, 6,
    )  # fmt: skip
    assert not seen.pinned
    assert (seen.service_seconds, seen.service_samples, seen.poll_seconds) == (120.0, 30, 15.0)
    by_project = {p.project: p for p in seen.projects}
    assert list(by_project) == ["blog", "shop"]
    # tdd and general are read, genesis and the ai-ml specialty are not
    assert (by_project["shop"].queued, by_project["shop"].in_progress) == (8, 2)
    assert by_project["shop"].arrival_rate == pytest.approx(16 / 3600)
    assert (by_project["blog"].queued, by_project["blog"].held) == (2, True)
    assert by_project["blog"].arrival_rate == 0.0


def test_a_dedicated_pool_serves_only_its_project_and_a_pinned_one_has_no_headroom() -> None:
    seen = pool_observation(
        pool("shop-devs", "development", project="shop", autoscaling={"enabled": False}),
        SNAPSHOT, HELD, {}, 900.0, None,
    )  # fmt: skip
    assert [p.project for p in seen.projects] == ["shop"]
    assert (seen.pinned, seen.max_replicas, seen.service_seconds, seen.service_samples) == (
        True, 2, None, 0,
    )  # fmt: skip
    annotated = pool_observation(
        pool("devs", "development", annotations={PAUSED_REPLICAS_ANNOTATION: "2"}),
        SNAPSHOT, HELD, {}, 900.0, None,
    )  # fmt: skip
    assert (annotated.pinned, annotated.max_replicas) == (True, 2)


def test_a_burst_already_queued_is_not_extrapolated() -> None:
    burst: dict[ArrivalKey, list[float]] = {("shop", Stage.DEVELOPMENT, "general"): [2, 2, 2, 40]}
    seen = pool_observation(pool("devs", "development"), SNAPSHOT, [], burst, 900.0, None)
    # the last quarter counts at most twice the median quarter
    shop = next(p for p in seen.projects if p.project == "shop")
    assert shop.arrival_rate == pytest.approx((2 + 2 + 2 + 4) / 3600)


def test_log_arrivals_are_counted_per_quarter_hour_for_every_pool_of_the_stage() -> None:
    end_ms = 10_000_000.0
    events = [
        {"project": "shop", "stage": "development", "at": str(int(end_ms) - 1_000)},
        {"project": "shop", "stage": "development", "at": str(int(end_ms) - 600_000)},
        {"project": "shop", "stage": "development", "at": str(int(end_ms) - 2_600_000)},
        {"project": "shop", "stage": "development", "at": str(int(end_ms) - 3_601_000)},  # before
        {"project": "shop", "stage": "bogus", "at": str(int(end_ms))},
        {"project": "shop", "stage": "development"},  # no time
    ]
    counts = arrivals_from_log(events, end_ms, 3600.0)
    # the log does not record the specialty: the stage's every pool counts them
    assert counts == {("shop", Stage.DEVELOPMENT, None): [0.0, 1.0, 0.0, 2.0]}
    seen = pool_observation(
        pool("devs", "development", specialties=["tdd"]), SNAPSHOT, [], counts, 900.0, None
    )
    shop = next(p for p in seen.projects if p.project == "shop")
    assert shop.arrival_rate == pytest.approx(3 / 3600)
    # a window shorter than a quarter hour is one bucket
    assert arrivals_from_log(events[:2], end_ms, 600.0) == {
        ("shop", Stage.DEVELOPMENT, None): [1.0]
    }


def test_log_service_time_is_the_mean_gap_between_a_workers_completions() -> None:
    events = [
        {"worker": "devs-7f9-a", "at": "10000"},
        {"worker": "devs-7f9-a", "at": "40000"},
        {"worker": "devs-7f9-a", "at": "100000"},
        {"worker": "devs-tdd-55-b", "at": "0"},
        {"worker": "devs-tdd-55-b", "at": "5000"},
        {"worker": "devs-7f9-c", "at": "50000"},  # one completion: no gap
        {"worker": "stranger-1", "at": "1"},
        {"worker": "stranger-1", "at": "9"},
    ]
    found = service_from_log(events, ["devs", "devs-tdd"])
    assert found == {"devs": (45.0, 2), "devs-tdd": (5.0, 1)}


def test_prometheus_answers_become_rates_and_means() -> None:
    assert 'namespace="team-a"' in arrivals_query(NS, 900) and "[900s]" in arrivals_query(NS, 900)
    assert all("[3600s]" in q for q in service_queries(NS, 3600))

    def vector(*rows: tuple[dict[str, str], str]) -> dict[str, object]:
        return {
            "status": "success",
            "data": {"resultType": "vector", "result": [
                {"metric": labels, "value": [0, value]} for labels, value in rows
            ]},
        }  # fmt: skip

    end = 1_800_000_000.0

    def matrix(*rows: tuple[dict[str, str], list[tuple[float, str]]]) -> dict[str, object]:
        return {
            "status": "success",
            "data": {"resultType": "matrix", "result": [
                {"metric": labels, "values": [[at, value] for at, value in points]}
                for labels, points in rows
            ]},
        }  # fmt: skip

    arrivals = arrivals_from_prometheus(
        matrix(
            # no point for the oldest quarter: the series did not exist yet
            ({"project": "shop", "stage": "development", "specialty": "tdd"},
             [(end - 1800, "4"), (end - 900, "NaN"), (end, "7.5")]),
            ({"project": "shop", "stage": "development"}, [(end, "2")]),
            ({"project": "shop", "stage": "nope"}, [(end, "5")]),
        ),
        end,
        3600.0,
    )  # fmt: skip
    assert arrivals == {
        ("shop", Stage.DEVELOPMENT, "tdd"): [0.0, 4.0, 0.0, 7.5],
        ("shop", Stage.DEVELOPMENT, "general"): [0.0, 0.0, 0.0, 2.0],
    }
    with pytest.raises(ValueError, match="bad_data"):
        arrivals_from_prometheus({"status": "error", "errorType": "bad_data"}, end, 3600.0)
    service = service_from_prometheus(
        vector(({"pool": "devs"}, "600"), ({"pool": "idle"}, "0")),
        vector(({"pool": "devs"}, "4.0"), ({"pool": "idle"}, "0")),
    )
    assert service == {"devs": (150.0, 4)}
    with pytest.raises(ValueError, match="bad_data"):
        service_from_prometheus({"status": "error", "errorType": "bad_data"}, vector())


def test_the_answer_reads_back_strictly() -> None:
    answer = observations(
        namespace=NS, now=NOW, window_seconds=3600.0,
        pools=[pool("b-devs", "development"), pool("a-gen", "genesis")],
        snapshot=SNAPSHOT, held=HELD, arrivals={}, service={"a-gen": (30.0, 21)},
        source="completionLog", source_note="no Prometheus",
    )  # fmt: skip
    wire = answer.wire()
    assert [p.pool for p in answer.pools] == ["a-gen", "b-devs"]
    assert (wire["source"], wire["generatedAt"]) == ("completionLog", "2026-11-30T15:00:00Z")
    assert ForecastObservations.model_validate(wire) == answer


def test_an_item_whose_worker_stopped_heartbeating_is_waiting_not_in_progress() -> None:
    fresh = holding("shop", Stage.DEVELOPMENT)
    stale = fresh.model_copy(update={"item_id": "old", "heartbeat_at": NOW - timedelta(seconds=31)})
    assert working([fresh, stale], NOW + timedelta(seconds=30), 30.0) == [fresh]
