"""The operator read API's pure parts: the reports it builds from the queue's snapshot, the
items in flight and the completion log, the alerts it passes on from Prometheus, and the
access decision for actions."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.fleetapi import (
    AlertReport,
    InFlightReport,
    LaneReport,
    QueueReport,
    StageThroughput,
    ThroughputReport,
)
from agentfleet.core.queue import CompletionOutcome, InFlight, Lane, LaneFigures, NamespaceSnapshot
from agentfleet.operator.readapi import (
    access_decision,
    alerts_from_prometheus,
    in_flight_report,
    queue_report,
    throughput_report,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def lane(project: str, lane_name: Lane, waiting: int, oldest_ago: float | None) -> LaneFigures:
    oldest = None if oldest_ago is None else int((NOW.timestamp() - oldest_ago) * 1000)
    return LaneFigures(
        project=project, stage=Stage.DEVELOPMENT, specialty="general", lane=lane_name,
        waiting=waiting, in_flight=1, oldest_waiting_ms=oldest,
    )  # fmt: skip


def test_queue_report_lists_lanes_with_waits_retries_and_held_projects() -> None:
    snapshot = NamespaceSnapshot(
        namespace="ns",
        lanes=(
            lane("shop", Lane.NORMAL, 4, 90.5),
            lane("shop", Lane.URGENT, 0, None),
            lane("blog", Lane.LOW, 2, 10),
        ),
        retrying=Counter({("shop", Stage.DEVELOPMENT): 3}),
        retrying_lanes=Counter(
            {
                ("shop", Stage.DEVELOPMENT, "general", Lane.NORMAL): 2,
                ("shop", Stage.DEVELOPMENT, "tdd", Lane.HIGH): 1,
            }
        ),
        completed=Counter(
            {
                ("shop", Stage.DEVELOPMENT, CompletionOutcome.SUCCEEDED): 7,
                ("shop", Stage.DEVELOPMENT, CompletionOutcome.DEAD_LETTERED): 2,
            }
        ),
        held_projects=frozenset({"blog"}),
    )

    report = queue_report(snapshot, NOW)

    rows = [(r.project, r.specialty, r.lane, r.waiting, r.retrying, r.held) for r in report.lanes]
    assert rows == [
        ("blog", "general", Lane.LOW, 2, 0, True),
        ("shop", "general", Lane.URGENT, 0, 0, False),
        ("shop", "general", Lane.NORMAL, 4, 2, False),
        ("shop", "tdd", Lane.HIGH, 0, 1, False),
    ]  # fmt: skip
    assert report.lanes[2].oldest_wait_seconds == pytest.approx(90.5, abs=0.001)
    assert report.lanes[1].oldest_wait_seconds is None
    assert [(s.project, s.stage, s.completed, s.dead_lettered) for s in report.stages] == [
        ("shop", Stage.DEVELOPMENT, 7, 2)
    ]
    # The wire form is camelCase and reads back strictly.
    wire = report.wire()
    assert "oldestWaitSeconds" in wire["lanes"][0]  # type: ignore[index]
    assert QueueReport.model_validate(wire) == report
    with pytest.raises(ValueError, match="extra"):
        LaneReport.model_validate({**report.lanes[0].wire(), "password": "x"})


def test_in_flight_report_gives_each_item_its_heartbeat_age() -> None:
    held = [
        InFlight(
            worker="pod-1", item_id="a", project="shop", stage=Stage.GENESIS,
            specialty="general", lane=Lane.HIGH, heartbeat_at=NOW - timedelta(seconds=12),
            deliveries=2,
        )
    ]  # fmt: skip
    report = in_flight_report("ns", held, NOW, 300.0)
    assert report.items[0].heartbeat_age_seconds == 12.0
    assert report.items[0].deliveries == 2
    assert InFlightReport.model_validate(report.wire()) == report


def test_throughput_counts_successes_dead_letters_and_rework_per_hour() -> None:
    events = [
        {"project": "shop", "stage": "development", "outcome": "succeeded", "attempts": "1"},
        {"project": "shop", "stage": "development", "outcome": "succeeded", "attempts": "2"},
        {"project": "shop", "stage": "development", "outcome": "dead_lettered", "attempts": "3"},
        {"project": "shop", "stage": "genesis", "outcome": "succeeded", "attempts": "1"},
        {"project": "shop", "stage": "nonsense", "outcome": "succeeded", "attempts": "1"},
    ]
    report = throughput_report("ns", events, 1800)
    assert report.stages == [
        StageThroughput(
            project="shop", stage=Stage.GENESIS, finished=1, succeeded=1, dead_lettered=0,
            retried=0, per_hour=2.0, success_rate=1.0, rework_rate=0.0,
        ),
        StageThroughput(
            project="shop", stage=Stage.DEVELOPMENT, finished=3, succeeded=2, dead_lettered=1,
            retried=2, per_hour=6.0, success_rate=0.6667, rework_rate=0.6667,
        ),
    ]  # fmt: skip
    assert throughput_report("ns", [], 3600) == ThroughputReport(
        namespace="ns", window_seconds=3600, stages=[]
    )


def test_alerts_are_filtered_by_namespace_and_firing_ones_come_first() -> None:
    payload = {
        "status": "success",
        "data": {
            "alerts": [
                {"labels": {"alertname": "B", "namespace": "other"}, "state": "firing"},
                {
                    "labels": {
                        "alertname": "QueueBacklog",
                        "namespace": "ns",
                        "severity": "warning",
                    },
                    "annotations": {"summary": "deep queue"},
                    "state": "pending",
                    "activeAt": "2026-01-01T00:00:00Z",
                },
                {"labels": {"alertname": "RedisDown"}, "state": "firing", "annotations": {}},
            ]
        },
    }
    alerts = alerts_from_prometheus(payload, "ns")
    assert [(a.name, a.state, a.namespace, a.severity, a.summary) for a in alerts] == [
        ("RedisDown", "firing", None, None, ""),
        ("QueueBacklog", "pending", "ns", "warning", "deep queue"),
    ]
    assert len(alerts_from_prometheus(payload, None)) == 3
    AlertReport.model_validate(AlertReport(prometheus=True, alerts=alerts).wire())


def test_only_an_authenticated_and_authorised_caller_may_act() -> None:
    what = 'patch projects.agentfleet.dev "shop" in namespace ns'
    user = {"authenticated": True, "user": {"username": "jane"}}
    assert access_decision(user, {"allowed": True}, what) is None
    assert access_decision(user, {"allowed": False}, what) == (
        f'user "jane" may not {what} (no RBAC rule allows it)'
    )
    assert "denied" in str(access_decision(user, {"allowed": False, "reason": "denied"}, what))
    assert access_decision({"authenticated": False, "error": "expired"}, None, what) == (
        "the API server did not accept the caller's token: expired"
    )
    # An accepted token with no access review made is not an allowance.
    assert access_decision(user, None, what) is not None


def test_throughput_has_the_mean_stage_and_pipeline_time_of_the_successes() -> None:
    def done(at: int, enqueued: str, started: str, outcome: str = "succeeded") -> dict[str, str]:
        return {
            "project": "shop", "stage": "content", "outcome": outcome, "attempts": "1",
            "at": str(at), "enqueued": enqueued, "started": started,
        }  # fmt: skip

    events = [
        done(100_000, "40000", "10000"),  # 60 s in the stage, 90 s since the pipeline began
        done(200_000, "180000", "50000"),  # 20 s, 150 s
        done(300_000, "0", "0", outcome="dead_lettered"),  # a failure has no time
        done(400_000, "", ""),  # logged before the times were kept
    ]
    (content,) = throughput_report("ns", events, 3600).stages
    assert (content.stage_seconds, content.pipeline_seconds) == (40.0, 120.0)
    assert content.finished == 4 and content.succeeded == 3
