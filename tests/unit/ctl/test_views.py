"""The CLI's rows and the fleet summary, from objects as the API server returns them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agentfleet.ctl.output import Format, duration, machine
from agentfleet.ctl.views import (
    StageMetricsRow,
    bottlenecks,
    pool_mode,
    pool_row,
    project_row,
    stage_rows,
    summary,
    worker_row,
)

pytestmark = pytest.mark.unit


def project(name: str = "web", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "team-a", "name": name},
        "spec": {"repository": "acme/web", "paused": status.pop("paused", False)},
        "status": status,
    }


def pool(
    name: str = "web-dev", spec: dict[str, Any] | None = None, **status: Any
) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "team-a", "name": name},
        "spec": {"stage": "development", "minReplicas": 1, "maxReplicas": 3, **(spec or {})},
        "status": status,
    }


READY = {"type": "Ready", "status": "True", "reason": "Reconciled", "message": "ok"}


def test_a_project_row_sums_its_stages_and_says_what_is_wrong() -> None:
    row = project_row(
        project(
            phase="Degraded",
            queued=4,
            conditions=[
                READY,
                {"type": "Degraded", "status": "True", "message": "no pool for content"},
            ],
            stages={
                "development": {"pending": 3, "inFlight": 2, "completed": 5},
                "review": {"pending": 1, "deadLettered": 1},
            },
            pools=["web-dev"],
        )
    )
    assert (row.queued, row.in_flight, row.completed, row.dead_lettered) == (4, 2, 5, 1)
    assert (row.phase, row.ready, row.message) == ("Degraded", "True", "no pool for content")
    assert [r.stage for r in stage_rows(project(stages={"review": {}, "content": {}}))] == [
        "content",
        "review",
    ]


def test_a_project_never_reconciled_is_pending_with_unknown_readiness() -> None:
    row = project_row({"metadata": {"namespace": "n", "name": "p"}, "spec": {}})
    assert (row.phase, row.ready, row.queued, row.message) == ("Pending", "Unknown", None, "")


@pytest.mark.parametrize(
    ("autoscaling", "mode"),
    [({}, "auto"), ({"enabled": False}, "pinned"), ({"paused": True}, "paused")],
)
def test_pool_modes(autoscaling: dict[str, Any], mode: str) -> None:
    assert pool_mode(pool(spec={"autoscaling": autoscaling})) == mode


def test_the_summary_points_at_what_needs_a_look() -> None:
    fleet = summary(
        [project("web", paused=True, queued=7, conditions=[READY]), project("api", conditions=[])],
        [
            pool(
                "full", replicas=3, readyReplicas=3, metrics={"queueDepth": 12}, conditions=[READY]
            ),
            pool("blind", replicas=1, conditions=[READY]),
            pool(
                "pinned", spec={"autoscaling": {"enabled": False}}, replicas=2, conditions=[READY]
            ),
        ],
    )
    assert fleet.attention == [
        "project team-a/web is paused with 7 item(s) held",
        "project team-a/api is not Ready: Pending",
        "pool team-a/full is at its maximum (3) with 12 waiting: raise spec.maxReplicas",
        "pool team-a/blind has no queue metrics (MetricsAvailable is not True)",
    ]
    assert (fleet.queued, fleet.workers, fleet.workers_ready) == (7, 6, 3)


def test_a_worker_row() -> None:
    pod = {
        "metadata": {"namespace": "team-a", "name": "web-dev-1", "deletionTimestamp": "x"},
        "spec": {"nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "startTime": "2026-11-30T10:00:00Z",
            "containerStatuses": [
                {"ready": True, "restartCount": 1},
                {"ready": True, "restartCount": 2},
            ],
        },
    }
    row = worker_row(pod, "web-dev", datetime(2026, 11, 30, 10, 5, tzinfo=UTC))
    assert (row.ready, row.restarts, row.age_seconds, row.deleting) == (True, 3, 300.0, True)
    assert duration(row.age_seconds) == "5m"


def test_machine_output_is_camel_case_and_names_its_kind() -> None:
    rows = [pool_row(pool(replicas=1, lastScaleReason="queue_depth=14 > 10"))]
    out = machine(rows, "Pool")
    assert out["kind"] == "PoolList"
    assert out["items"][0]["lastScaleReason"] == "queue_depth=14 > 10"
    assert out["items"][0]["minReplicas"] == 1
    assert Format("yaml") is Format.YAML


def served(name: str, stage: str, projects: list[str], **status: Any) -> dict[str, Any]:
    obj = pool(name, spec={"stage": stage}, projects=projects, conditions=[READY], **status)
    return obj


def test_bottlenecks_name_the_limit_and_what_to_do() -> None:
    web = project(
        "web",
        stages={
            "development": {"pending": 9, "retrying": 1},
            "content": {"pending": 2},
            "review": {"pending": 1},
            "genesis": {"completed": 4},
        },
    )
    found = bottlenecks(
        [web, project("ops", paused=True, stages={"development": {"held": 5}})],
        [
            served("dev", "development", ["web"], replicas=3, readyReplicas=3),
            served("docs", "content", ["web"], replicas=1, readyReplicas=1, desiredReplicas=1),
            pool("review-pinned", spec={"stage": "review", "autoscaling": {"enabled": False}},
                 projects=["web"], replicas=1),
        ],
    )  # fmt: skip
    assert [(b.project, b.stage, b.waiting) for b in found] == [
        ("web", "development", 10),
        ("ops", "development", 5),
        ("web", "content", 2),
        ("web", "review", 1),
    ]
    by_stage = {(b.project, b.stage): b for b in found}
    assert by_stage["web", "development"].cause == "every serving pool is at its maximum: dev (3)"
    assert by_stage["web", "development"].suggestion == "raise spec.maxReplicas"
    assert by_stage["ops", "development"].cause == "the Project is paused: 5 item(s) held"
    assert by_stage["web", "content"].suggestion == "none: the autoscaler is adding workers"
    assert by_stage["web", "review"].cause.startswith("the serving pools are pinned at 1 worker")


def test_a_stage_nobody_serves_is_named() -> None:
    (only,) = bottlenecks([project(stages={"content": {"pending": 4}})], [])
    assert only.cause == "no WorkerPool serves the content stage of this Project"
    assert "stage: content" in only.suggestion


def metrics_row(stage: str, finished: int, succeeded: int) -> StageMetricsRow:
    return StageMetricsRow(
        namespace="team-a", project="web", stage=stage, window_seconds=3600,
        finished=finished, succeeded=succeeded, dead_lettered=finished - succeeded, retried=0,
        per_hour=float(finished), success_rate=succeeded / finished if finished else None,
        rework_rate=0.0, stage_seconds=None, pipeline_seconds=None, target_per_hour=None,
        target_per_worker=False,
    )  # fmt: skip


def test_with_throughput_failing_and_stalled_stages_are_told_from_short_handed_ones() -> None:
    web = project(
        "web",
        stages={"development": {"pending": 9}, "content": {"pending": 2}, "review": {"pending": 3}},
    )
    serving = [
        served("dev", "development", ["web"], replicas=3, readyReplicas=3),
        served("docs", "content", ["web"], replicas=1, readyReplicas=1, desiredReplicas=1),
        served("rev", "review", ["web"], replicas=1, readyReplicas=1, desiredReplicas=1),
    ]
    finished = {
        ("team-a", "web", "development"): metrics_row("development", 6, 1),
        ("team-a", "web", "review"): metrics_row("review", 3, 3),
    }
    by_stage = {b.stage: b for b in bottlenecks([web], serving, finished)}

    failing = by_stage["development"]
    assert failing.cause == "most items fail: 17% of 6 succeeded in the last 1h (5 dead-lettered)"
    assert "agentfleet retry <project> --list" in failing.suggestion
    assert failing.per_hour == 6.0
    stalled = by_stage["content"]
    assert stalled.cause == (
        "1 worker(s) ready, but no content item finished in the throughput window"
    )
    assert stalled.per_hour == 0.0
    # Succeeding and below its maximum: the usual verdict.
    assert by_stage["review"].suggestion == "none: the autoscaler is adding workers"

    # Without the read API the same stages get the resource-only verdicts.
    plain = {b.stage: b for b in bottlenecks([web], serving)}
    assert plain["development"].cause == "every serving pool is at its maximum: dev (3)"
    assert plain["content"].per_hour is None
