"""The CLI's side of the operator's read API, without a server: rows from its reports,
durations, where the Service is, and how error answers become one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.fleetapi import (
    HeldItem,
    LaneReport,
    QueueReport,
    Scope,
    StageThroughput,
    StageTotals,
    ThroughputReport,
)
from agentfleet.core.queue import Lane
from agentfleet.ctl.kube import CliError, Target
from agentfleet.ctl.operatorapi import OperatorApi, ServiceRef
from agentfleet.ctl.output import machine, parse_duration
from agentfleet.ctl.views import QueuesOutput, metrics_rows, queue_rows, worker_row

pytestmark = pytest.mark.unit


def lane(project: str, lane_name: Lane, waiting: int, held: bool = False) -> LaneReport:
    return LaneReport(
        project=project, stage=Stage.DEVELOPMENT, specialty="general", lane=lane_name,
        waiting=waiting, held=held, in_flight=1, retrying=2, oldest_wait_seconds=3.0,
    )  # fmt: skip


def test_queue_rows_sum_the_lanes_per_stage_with_the_finished_counts() -> None:
    report = QueueReport(
        namespace="ns",
        lanes=[
            lane("shop", Lane.URGENT, 2),
            lane("shop", Lane.NORMAL, 3),
            lane("blog", Lane.LOW, 4, held=True),
        ],
        stages=[
            StageTotals(project="shop", stage=Stage.DEVELOPMENT, completed=5, dead_lettered=1),
            StageTotals(project="shop", stage=Stage.GENESIS, completed=9, dead_lettered=0),
        ],
    )
    queues = queue_rows(report)
    got = [
        (s.project, s.stage, s.pending, s.held, s.in_flight, s.retrying, s.completed,
         s.dead_lettered)
        for s in queues.stages
    ]  # fmt: skip
    assert got == [
        ("blog", "development", 0, 4, 1, 2, 0, 0),
        ("shop", "genesis", 0, 0, 0, 0, 9, 0),
        ("shop", "development", 5, 0, 2, 4, 5, 1),
    ]
    assert [(r.lane, r.waiting, r.held) for r in queues.lanes] == [
        ("urgent", 2, False), ("normal", 3, False), ("low", 4, True),
    ]  # fmt: skip
    # What -o json prints reads back strictly.
    printed = json.loads(json.dumps(machine(queues, "Queues")))
    assert QueuesOutput.model_validate(printed).kind == "Queues"
    assert set(printed["lanes"][0]) >= {"oldestWaitSeconds", "inFlight", "specialty"}


def test_a_worker_row_carries_the_items_its_pod_holds() -> None:
    pod = {
        "metadata": {"namespace": "ns", "name": "dev-1"},
        "status": {"phase": "Running", "containerStatuses": [{"ready": True}]},
    }
    held = [
        HeldItem(
            worker=name, item_id=item, project="shop", stage=Stage.DEVELOPMENT,
            specialty="general", lane=Lane.NORMAL, heartbeat_age_seconds=age, deliveries=1,
        )
        for name, item, age in [("dev-1", "a", 4.0), ("dev-2", "b", 1.0)]
    ]  # fmt: skip
    now = datetime(2026, 1, 1, tzinfo=UTC)
    row = worker_row(pod, "dev", now, held)
    assert (row.items, row.heartbeat_age_seconds) == (["a"], 4.0)
    idle = worker_row(pod, "dev", now)
    assert (idle.items, idle.heartbeat_age_seconds) == ([], None)


def test_metrics_rows_carry_the_window() -> None:
    report = ThroughputReport(
        namespace="ns",
        window_seconds=600,
        stages=[
            StageThroughput(
                project="shop", stage=Stage.CONTENT, finished=2, succeeded=1, dead_lettered=1,
                retried=0, per_hour=12.0, success_rate=0.5, rework_rate=0.0,
            )
        ],
    )  # fmt: skip
    (row,) = metrics_rows(report)
    assert (row.namespace, row.stage, row.window_seconds, row.per_hour) == (
        "ns", "content", 600, 12.0,
    )  # fmt: skip


def test_durations() -> None:
    assert [parse_duration(v) for v in ("90s", "30m", "1h", "2d", "15", "1.5h")] == [
        90, 1800, 3600, 172800, 15, 5400,
    ]  # fmt: skip
    for bad in ("", "soon", "-1h", "0m", "nanh", "infh"):
        with pytest.raises(ValueError, match="not a positive duration"):
            parse_duration(bad)


def test_the_service_reference() -> None:
    assert str(ServiceRef.parse("agentfleet-api")) == "agentfleet-system/agentfleet-api:api"
    assert str(ServiceRef.parse("ops/fleet:8083")) == "ops/fleet:8083"
    with pytest.raises(CliError, match="expected \\[namespace/\\]name"):
        ServiceRef.parse("ops/")


def api(url: str | None = None) -> OperatorApi:
    from kubernetes import client

    return OperatorApi.connect(Target(client.ApiClient(), "ns"), "ops/fleet-api:api", url)


def status(message: str, code: int) -> bytes:
    return json.dumps({"kind": "Status", "message": message, "code": code}).encode()


def test_error_answers_are_one_line_naming_the_cause() -> None:
    proxy = api()
    assert proxy._failure("POST", 403, b'{"error": "user \\"x\\" may not patch"}') == (
        'operator: user "x" may not patch'
    )
    assert proxy._failure("GET", 403, status("nope", 403)).startswith(
        "forbidden: cannot get services/proxy 'fleet-api' in namespace 'ops'"
    )
    assert proxy._failure("POST", 403, status("nope", 403)).startswith("forbidden: cannot create")
    missing = proxy._failure("GET", 404, status('services "fleet-api" not found', 404))
    assert missing.startswith(
        "the operator's read API (service ops/fleet-api:api) is not installed"
    )
    down = proxy._failure("GET", 503, status('no endpoints available for service "x"', 503))
    assert "is unreachable" in down and "--api-port" in down
    assert "\n" not in proxy._failure("GET", 500, b"<html>\nboom\n</html>")
    assert api("http://127.0.0.1:1").where == "the operator's read API at http://127.0.0.1:1"


def test_the_scope_says_which_namespaces_the_operator_serves() -> None:
    scope = Scope(all_namespaces=False, namespaces=["team-*", "ops"])
    assert [ns for ns in ("team-a", "ops", "opsx", "default") if scope.serves(ns)] == [
        "team-a",
        "ops",
    ]
    assert Scope(all_namespaces=True, namespaces=[]).serves("anything")
    assert Scope.model_validate(scope.wire()) == scope


def test_metrics_rows_carry_the_seeds_goals() -> None:
    report = ThroughputReport(
        namespace="ns",
        window_seconds=3600,
        stages=[
            StageThroughput(
                project="p", stage=stage, finished=1, succeeded=1, dead_lettered=0, retried=0,
                per_hour=1.0, success_rate=1.0, rework_rate=0.0, stage_seconds=30.0,
                pipeline_seconds=90.0,
            )
            for stage in (Stage.GENESIS, Stage.DEVELOPMENT, Stage.CONTENT, Stage.REVIEW)
        ],
    )  # fmt: skip
    goals = [(r.stage, r.target_per_hour, r.target_per_worker) for r in metrics_rows(report)]
    assert goals == [
        ("genesis", 8.0, False),
        ("development", 3.0, True),
        ("content", 5.0, False),
        ("review", None, False),
    ]
    assert metrics_rows(report)[2].pipeline_seconds == 90.0
