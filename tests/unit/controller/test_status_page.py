"""The status page's snapshot from the read API's reports, the pool index and the
autoscaler's decisions (pure), and the Prometheus answer it reads processing times from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.fleetapi import (
    Alert,
    AlertReport,
    HeldItem,
    InFlightReport,
    LaneReport,
    QueueReport,
    StageThroughput,
    ThroughputReport,
)
from agentfleet.core.pipeline.lanes import Lane
from agentfleet.operator.index import PoolEntry
from agentfleet.operator.logic import ScalingRecord
from agentfleet.operator.statuspage import (
    TIMELINE_LENGTH,
    StatusSnapshot,
    build_snapshot,
    page_html,
    processing_from_prometheus,
    processing_query,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
NS = "team-a"


def lane(stage: Stage, waiting: int, oldest: float | None, project: str = "web") -> LaneReport:
    return LaneReport(
        project=project, stage=stage, specialty="general", lane=Lane.NORMAL, waiting=waiting,
        held=False, in_flight=0, retrying=1 if stage is Stage.REVIEW else 0,
        oldest_wait_seconds=oldest,
    )  # fmt: skip


def throughput(stage: Stage, finished: int, succeeded: int, window: float) -> StageThroughput:
    return StageThroughput(
        project="web", stage=stage, finished=finished, succeeded=succeeded,
        dead_lettered=finished - succeeded, retried=0, per_hour=finished * 3600 / window,
        success_rate=succeeded / finished, rework_rate=0.0,
    )  # fmt: skip


def held(stage: Stage, worker: str) -> HeldItem:
    return HeldItem(
        worker=worker, item_id=f"{worker}-item", project="web", stage=stage,
        specialty="general", lane=Lane.NORMAL, heartbeat_age_seconds=1.0, deliveries=1,
    )  # fmt: skip


def pool(name: str, stage: str | None, namespace: str = NS) -> PoolEntry:
    spec = {"stage": stage, "minReplicas": 1, "maxReplicas": 4} if stage else {"stage": 7}
    return PoolEntry.from_body(
        {
            "metadata": {"namespace": namespace, "name": name, "uid": name},
            "spec": spec,
            "status": {"replicas": 2, "readyReplicas": 1, "metrics": {"queueDepth": 12}},
        }
    )


def record(minutes: int, namespace: str = NS) -> ScalingRecord:
    return ScalingRecord(
        time=NOW - timedelta(minutes=minutes), namespace=namespace, pool="devs",
        from_replicas=1, to_replicas=3, reason="queue_depth=12 > 10", queue_depth=12,
    )  # fmt: skip


def snapshot(**changes: object) -> StatusSnapshot:
    inputs: dict[str, object] = {
        "namespace": NS,
        "now": NOW,
        "queues": QueueReport(
            namespace=NS,
            lanes=[
                lane(Stage.DEVELOPMENT, 3, 40.0),
                lane(Stage.DEVELOPMENT, 2, 90.0, project="api"),
                lane(Stage.REVIEW, 0, None),
            ],
            stages=[],
        ),
        "held": InFlightReport(
            namespace=NS,
            heartbeat_timeout_seconds=30,
            items=[held(Stage.DEVELOPMENT, "a"), held(Stage.DEVELOPMENT, "b")],
        ),
        "today": ThroughputReport(
            namespace=NS, window_seconds=86400, stages=[throughput(Stage.DEVELOPMENT, 4, 3, 86400)]
        ),
        "last_hour": ThroughputReport(
            namespace=NS,
            window_seconds=3600,
            stages=[
                throughput(Stage.DEVELOPMENT, 2, 2, 3600).model_copy(
                    update={"pipeline_seconds": 900.0}
                ),
                throughput(Stage.DEVELOPMENT, 1, 1, 3600).model_copy(
                    update={"project": "blog", "pipeline_seconds": 1800.0}
                ),
            ],
        ),
        "pools": [pool("writers", "content"), pool("devs", "development"), pool("broken", None)],
        "scaling": [record(m) for m in range(TIMELINE_LENGTH + 5, 0, -1)] + [record(0, "other")],
        "alerts": AlertReport(
            prometheus=True,
            alerts=[
                Alert(
                    name="QueueBacklog",
                    state="firing",
                    severity="warning",
                    namespace=NS,
                    summary="30 items wait",
                    active_at=None,
                    labels={},
                ),
                Alert(
                    name="Resolved",
                    state="inactive",
                    severity=None,
                    namespace=NS,
                    summary="",
                    active_at=None,
                    labels={},
                ),
            ],
        ),
        "processing_seconds": {Stage.DEVELOPMENT: 612.34},
    }
    inputs.update(changes)
    return build_snapshot(**inputs)  # type: ignore[arg-type]


def test_stages_add_up_every_project_and_lane_in_pipeline_order() -> None:
    made = snapshot()
    by_stage = {s.stage: s for s in made.stages}

    assert list(by_stage) == [Stage.DEVELOPMENT, Stage.CONTENT, Stage.REVIEW]
    dev = by_stage[Stage.DEVELOPMENT]
    assert (dev.waiting, dev.active_workers, dev.oldest_wait_seconds) == (5, 2, 90.0)
    assert (dev.completed_today, dev.succeeded_today, dev.success_rate_today) == (4, 3, 0.75)
    assert (dev.per_hour, dev.average_seconds) == (3.0, 612.3)
    # The pipeline time is the mean over every success of the stage, whatever its project.
    assert dev.pipeline_seconds == 1200.0
    # A stage only a pool serves is shown, idle; one with nothing finished has no rate.
    content = by_stage[Stage.CONTENT]
    assert (content.waiting, content.completed_today, content.success_rate_today) == (0, 0, None)
    assert by_stage[Stage.REVIEW].retrying == 1


def test_pools_timeline_and_alerts() -> None:
    made = snapshot()

    pools = made.pools
    assert [(p.name, p.stage, p.replicas, p.ready, p.queue_depth) for p in pools] == [
        ("broken", None, 2, 1, 12),
        ("devs", Stage.DEVELOPMENT, 2, 1, 12),
        ("writers", Stage.CONTENT, 2, 1, 12),
    ]
    steps = made.scaling
    assert len(steps) == TIMELINE_LENGTH
    assert steps[0].time == NOW - timedelta(minutes=1)  # newest first, other namespaces out
    assert [a.name for a in made.alerts] == ["QueueBacklog"]


def test_processing_times_from_prometheus_leave_out_nan_and_unknown_stages() -> None:
    payload = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [
                {"metric": {"stage": "development"}, "value": [1, "600.5"]},
                {"metric": {"stage": "content"}, "value": [1, "NaN"]},
                {"metric": {"stage": "unknown"}, "value": [1, "3"]},
                {"metric": {}, "value": [1]},
            ],
        },
    }

    assert processing_from_prometheus(payload) == {Stage.DEVELOPMENT: 600.5}
    assert 'namespace="team-a"' in processing_query(NS)


def test_the_page_loads_nothing_from_elsewhere() -> None:
    html = page_html()

    assert "<script src" not in html and '<link rel="stylesheet"' not in html
    assert "http://" not in html and "https://" not in html
    assert 'name="viewport"' in html  # readable at phone width
