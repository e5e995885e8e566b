"""The operator's side of autoscaling, without a cluster: which pools the loop is given,
what the status and Events say about a decision, and which Pods get a deletion cost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.api.conditions import ConditionStatus, find_condition, set_condition
from agentfleet.core.api.workerpool import WorkerPoolStatus
from agentfleet.operator.autoscaler.decision import Decision, ScaleState, Signals, decide
from agentfleet.operator.autoscaler.reporting import (
    FIRST_METRICS_GRACE_SECONDS,
    METRICS_AVAILABLE,
    PAUSED_REPLICAS_ANNOTATION,
    RATE_LIMITED,
    SCALING_ACTIVE,
    awaiting_first_metrics,
    deletion_costs,
    pinned_replicas,
    pool_target,
    same_status,
    scaled_status,
    scaling_events,
    status_patch,
)
from agentfleet.operator.autoscaler.scaler import PoolDirectory
from agentfleet.operator.index import PoolEntry, PoolIndexKey, pool_index_entries
from agentfleet.operator.logic import Problem, ProjectInfo

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
BUSY = Signals(queue_depth=14, oldest_wait_seconds=120, utilization=0.9)
QUIET = Signals(queue_depth=0, oldest_wait_seconds=0, utilization=0.0)
DOWN = Signals.unavailable("Prometheus unreachable at http://prometheus:9090")
PIPELINE = (Stage.GENESIS, Stage.DEVELOPMENT, Stage.CONTENT, Stage.REVIEW)


def body(
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
    name: str = "dev",
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "team",
            "name": name,
            "uid": f"uid-{name}",
            "generation": 3,
            "annotations": annotations or {},
        },
        "spec": {"stage": "development", "minReplicas": 1, "maxReplicas": 6, **(spec or {})},
        "status": status or {},
    }


def pool(**kwargs: Any) -> PoolEntry:
    return PoolEntry.from_body(body(**kwargs))


def project(name: str, paused: bool = False, **labels: str) -> ProjectInfo:
    return ProjectInfo(
        namespace="team", name=name, uid=f"uid-{name}", labels=labels, paused=paused,
        stages=PIPELINE,
    )  # fmt: skip


def decided(signals: Signals, current: int = 2, failures: int = 0, **policy: Any) -> Decision:
    target = pool_target(pool(spec={"replicas": current, "autoscaling": policy}), [project("web")])
    assert target is not None
    state = ScaleState(
        current_replicas=current, min_replicas=1, max_replicas=6, consecutive_failures=failures
    )
    return decide(target.autoscaling, state, signals, NOW.timestamp())


# ------------------------------------------------------------------ pools to scale


def test_a_pool_without_a_selector_serves_every_project_and_asks_for_its_replicas() -> None:
    target = pool_target(pool(spec={"replicas": 3}), [project("web"), project("api")])

    assert target is not None
    assert target.projects is None
    assert target.current_replicas == 3
    assert (target.min_replicas, target.max_replicas) == (1, 6)


def test_unset_replicas_read_as_min_replicas() -> None:
    target = pool_target(pool(), [project("web")])

    assert target is not None and target.current_replicas == 1


def test_a_selector_limits_the_projects() -> None:
    selector = {"projectSelector": {"matchLabels": {"team": "shop"}}}

    target = pool_target(pool(spec=selector), [project("web", team="shop"), project("api")])

    assert target is not None and target.projects == ("web",)


def test_a_selector_matching_only_unreadable_projects_serves_none_rather_than_all() -> None:
    selector = {"projectSelector": {"matchLabels": {"team": "shop"}}}
    unreadable = ProjectInfo(
        namespace="team",
        name="legacy",
        uid="uid-legacy",
        labels={"team": "shop"},
        problem=Problem("InvalidSpec", "spec.repository: field required"),
    )

    target = pool_target(pool(spec=selector), [unreadable, project("api")])

    assert target is not None and target.projects == ()


@pytest.mark.parametrize(
    ("spec", "projects"),
    [
        ({"project": "gone"}, [project("web")]),
        ({"projectSelector": {"matchLabels": {"team": "x"}}}, [project("web")]),
        ({"minReplicas": 9}, [project("web")]),  # invalid: min above max
        ({"project": "web"}, [project("web", paused=True)]),  # emergency stop
    ],
    ids=["missing project", "selector matches nothing", "invalid spec", "emergency stop"],
)
def test_pools_the_reconciler_is_not_scaling_are_left_alone(
    spec: dict[str, Any], projects: list[ProjectInfo]
) -> None:
    assert pool_target(pool(spec=spec), projects) is None


def test_the_last_scale_time_in_status_seeds_both_timers() -> None:
    status = {"lastScaleTime": "2026-03-01T11:59:00Z"}

    target = pool_target(pool(status=status), [project("web")])

    assert target is not None
    assert target.last_scale_up_time == target.last_scale_down_time == NOW.timestamp() - 60


def test_the_paused_replicas_annotation_pauses_autoscaling_and_pins_within_bounds() -> None:
    pinned = pool(annotations={PAUSED_REPLICAS_ANNOTATION: "4"})
    too_many = pool(annotations={PAUSED_REPLICAS_ANNOTATION: "40"})
    zero = pool(annotations={PAUSED_REPLICAS_ANNOTATION: "0"})
    garbage = pool(annotations={PAUSED_REPLICAS_ANNOTATION: "lots"})

    target = pool_target(pinned, [project("web")])

    assert target is not None and target.autoscaling.paused
    assert [pinned_replicas(p) for p in (pinned, too_many, zero, garbage, pool())] == [
        4,
        6,
        1,
        None,
        None,
    ]


def test_the_directory_lists_only_pools_this_operator_is_serving_now() -> None:
    # The operator's one WorkerPool index: each pool under its namespace and its key.
    index: dict[PoolIndexKey, list[PoolEntry]] = {}
    for name in ("a", "b"):
        for key, entry in pool_index_entries(body(name=name)).items():
            index.setdefault(key, []).append(entry)
    a, b = pool(name="a"), pool(name="b")
    assert [entry.name for entry in index["team"]] == ["a", "b"]
    directory = PoolDirectory(index, {"team": [project("web")]}, active={a.key, ("team", "gone")})

    assert [t.name for t in directory.targets()] == ["a"]
    assert directory.get(b.key) == b


# ------------------------------------------------------------------------ status


def test_a_scale_up_records_replicas_time_reason_metrics_and_conditions() -> None:
    decision = decided(BUSY)
    ready = set_condition([], "Ready", True, "Reconciled", "ok", NOW)
    previous = WorkerPoolStatus(replicas=2, ready_replicas=2, projects=["web"], conditions=ready)

    status = scaled_status(previous, pool(), decision, NOW)

    assert status.desired_replicas == 4
    assert status.last_scale_time == NOW
    assert status.last_scale_reason == "ScaledUp 2→4: queue_depth=14 > 10, utilization=0.90 > 0.80"
    assert status.metrics is not None
    assert (status.metrics.queue_depth, status.metrics.utilization) == (14, 0.9)
    assert status.metrics.observed_at == NOW
    metrics = find_condition(status.conditions, METRICS_AVAILABLE)
    active = find_condition(status.conditions, SCALING_ACTIVE)
    assert metrics is not None and metrics.status is ConditionStatus.TRUE
    assert active is not None and active.status is ConditionStatus.TRUE
    assert active.message == status.last_scale_reason
    # What the reconciler owns is untouched.
    assert (status.replicas, status.ready_replicas, status.projects) == (2, 2, ["web"])
    assert find_condition(status.conditions, "Ready") == ready[0]


def test_scaling_active_says_what_is_held_and_what_a_timer_holds_back() -> None:
    at_min = scaled_status(WorkerPoolStatus(), pool(), decided(QUIET, current=1), NOW)
    in_cooldown = decide(
        pool_target(pool(spec={"replicas": 3}), [project("web")]).autoscaling,  # type: ignore[union-attr]
        ScaleState(
            current_replicas=3, min_replicas=1, max_replicas=6, last_scale_up_time=NOW.timestamp()
        ),
        QUIET,
        NOW.timestamp() + 10,
    )
    cooling = scaled_status(WorkerPoolStatus(), pool(), in_cooldown, NOW)

    held = find_condition(at_min.conditions, SCALING_ACTIVE)
    blocked = find_condition(cooling.conditions, SCALING_ACTIVE)
    assert held is not None and held.message.startswith("holding 1: queue_depth=0 < 3")
    assert blocked is not None
    assert blocked.message.startswith("scale-down to 1 held by cooldown (10s of 300s")


def test_a_hold_keeps_the_last_scale_and_says_why_metrics_are_missing() -> None:
    previous = WorkerPoolStatus(
        desired_replicas=2, last_scale_time=NOW.replace(hour=11), last_scale_reason="earlier"
    )

    status = scaled_status(previous, pool(), decided(DOWN), NOW)

    assert (status.desired_replicas, status.last_scale_reason) == (2, "earlier")
    assert status.metrics is not None and status.metrics.queue_depth is None
    metrics = find_condition(status.conditions, METRICS_AVAILABLE)
    active = find_condition(status.conditions, SCALING_ACTIVE)
    assert metrics is not None and metrics.status is ConditionStatus.FALSE
    assert metrics.reason == "MetricsUnavailable"
    assert "Prometheus unreachable" in metrics.message
    assert active is not None and active.status is ConditionStatus.FALSE
    assert "never scaling down on missing data" in active.message


def test_the_status_patch_removes_signals_that_went_missing() -> None:
    """Status is server-side applied: a signal left out of the autoscaler's apply is
    removed (it is the field's only manager), so an outage never shows the last queue
    depth as if it were current."""
    read = scaled_status(WorkerPoolStatus(), pool(), decided(QUIET), NOW)
    assert status_patch(read)["metrics"]["queueDepth"] == 0

    missing = scaled_status(read, pool(), decided(DOWN), NOW)
    patch = status_patch(missing)["metrics"]
    assert "queueDepth" not in patch
    assert "utilization" not in patch
    assert patch["observedAt"] == "2026-03-01T12:00:00Z"


def test_the_status_patch_carries_only_the_autoscalers_fields() -> None:
    """desiredReplicas and lastScale* belong to the reconciler, Ready and Available too."""
    previous = WorkerPoolStatus.model_validate(
        {
            "replicas": 2,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Reconciled", "message": "",
                 "lastTransitionTime": "2026-03-01T11:00:00Z"},
            ],
        }
    )  # fmt: skip
    patch = status_patch(scaled_status(previous, pool(), decided(BUSY), NOW))
    assert set(patch) == {"metrics", "conditions"}
    assert {c["type"] for c in patch["conditions"]} == {METRICS_AVAILABLE, SCALING_ACTIVE}


@pytest.mark.parametrize(
    ("annotations", "policy", "message"),
    [
        ({}, {"paused": True}, "spec.autoscaling.paused is true: holding 2"),
        (
            {PAUSED_REPLICAS_ANNOTATION: "2"},
            {},
            f"annotation {PAUSED_REPLICAS_ANNOTATION}='2': pinned at 2 replicas",
        ),
        ({}, {"enabled": False}, "replicas are set by hand"),
    ],
    ids=["spec", "annotation", "disabled"],
)
def test_paused_and_disabled_pools_say_so_in_scaling_active(
    annotations: dict[str, str], policy: dict[str, Any], message: str
) -> None:
    scalable = pool(spec={"replicas": 2, "autoscaling": policy}, annotations=annotations)
    target = pool_target(scalable, [project("web")])
    assert target is not None
    state = ScaleState(current_replicas=2, min_replicas=1, max_replicas=6)
    decision = decide(target.autoscaling, state, BUSY, NOW.timestamp())

    status = scaled_status(WorkerPoolStatus(), scalable, decision, NOW)

    assert not decision.changed
    active = find_condition(status.conditions, SCALING_ACTIVE)
    assert active is not None and active.status is ConditionStatus.FALSE
    assert message in active.message


def test_only_the_read_time_changing_needs_no_write() -> None:
    idle = decided(QUIET, current=1)
    first = scaled_status(WorkerPoolStatus(), pool(), idle, NOW)
    later = scaled_status(first, pool(), idle, NOW.replace(minute=5))
    busier = scaled_status(first, pool(), decided(BUSY), NOW.replace(minute=5))

    assert same_status(first, later)
    assert not same_status(first, busier)


# ------------------------------------------------------------------------ Events


def test_scale_events_carry_the_change_and_the_reason() -> None:
    up = scaling_events(WorkerPoolStatus(), decided(BUSY))
    down = scaling_events(WorkerPoolStatus(), decided(QUIET, current=3))

    assert [(e.type, e.reason, e.message) for e in up] == [
        ("Normal", "ScaledUp", "2→4: queue_depth=14 > 10, utilization=0.90 > 0.80")
    ]
    assert [(e.reason, e.message.split(":")[0]) for e in down] == [("ScaledDown", "3→1")]


def test_metrics_loss_is_announced_once_and_recovery_once() -> None:
    fresh = WorkerPoolStatus()
    lost = scaled_status(fresh, pool(), decided(DOWN), NOW)

    first = scaling_events(fresh, decided(DOWN))
    again = scaling_events(lost, decided(DOWN, failures=1))
    back = scaling_events(lost, decided(QUIET, current=1))

    assert [(e.type, e.reason) for e in first] == [("Warning", "MetricsUnavailable")]
    assert "holding 2 replicas" in first[0].message
    assert again == []
    assert [(e.type, e.reason) for e in back] == [("Normal", "MetricsAvailable")]


def _created(seconds_ago: float) -> PoolEntry:
    made = body()
    made["metadata"]["creationTimestamp"] = (NOW - timedelta(seconds=seconds_ago)).isoformat()
    return PoolEntry.from_body(made)


def test_a_new_pool_waits_for_its_first_metrics_without_a_word() -> None:
    """Prometheus has not scraped a new pool's lanes yet: no write, no Warning, during
    its first FIRST_METRICS_GRACE_SECONDS; past them, or once its metrics have been read,
    a loss is announced as ever."""
    fresh = WorkerPoolStatus()
    young = _created(FIRST_METRICS_GRACE_SECONDS - 1)
    old = _created(FIRST_METRICS_GRACE_SECONDS + 1)
    assert young.created is not None and old.created is not None
    assert awaiting_first_metrics(fresh, young, decided(DOWN), NOW)
    assert not awaiting_first_metrics(fresh, old, decided(DOWN), NOW)
    # Unknown age (no creationTimestamp): no grace.
    assert not awaiting_first_metrics(fresh, pool(), decided(DOWN), NOW)
    # Metrics read once before: their loss is news.
    read = scaled_status(fresh, young, decided(QUIET, current=1), NOW)
    assert not awaiting_first_metrics(read, young, decided(DOWN), NOW)
    # A decision that changes the replicas (a bound, a fallback) is always carried out.
    below_min = decided(DOWN, current=0)
    assert below_min.changed
    assert not awaiting_first_metrics(fresh, young, below_min, NOW)
    # Metrics available: nothing to wait for.
    assert not awaiting_first_metrics(fresh, young, decided(QUIET, current=1), NOW)


def test_fallback_replicas_are_a_warning_event() -> None:
    decision = decided(DOWN, failures=2, fallback={"failureThreshold": 3, "replicas": 5})

    events = scaling_events(WorkerPoolStatus(), decision)

    assert decision.desired_replicas == 5
    assert [(e.type, e.reason) for e in events] == [
        ("Warning", "FallbackReplicas"),
        ("Warning", "MetricsUnavailable"),
    ]


def test_a_rate_limit_hold_is_announced_when_it_begins_and_when_it_ends() -> None:
    throttled = BUSY.model_copy(update={"throttled_fraction": 0.4})
    held = decided(throttled)
    fresh = WorkerPoolStatus()
    holding = scaled_status(fresh, pool(), held, NOW)

    first = scaling_events(fresh, held)
    again = scaling_events(holding, decided(throttled))
    cleared = scaling_events(holding, decided(BUSY))

    assert held.blocked_by == "rate_limit" and held.desired_replicas == 2
    assert [(e.type, e.reason) for e in first] == [("Warning", "ScaleBlocked")]
    assert first[0].message.startswith("2→4 wanted, 2 kept: scale-up to 4 held while the model")
    assert "throttled=0.40 > 0.05" in first[0].message
    condition = find_condition(holding.conditions, SCALING_ACTIVE)
    assert condition is not None and condition.reason == RATE_LIMITED
    assert again == []
    assert [(e.type, e.reason) for e in cleared] == [
        ("Normal", "ScaledUp"),
        ("Normal", "RateLimitCleared"),
    ]


def test_other_holds_post_no_event() -> None:
    target = pool_target(pool(spec={"replicas": 3}), [project("web")])
    assert target is not None
    state = ScaleState(
        current_replicas=3, min_replicas=1, max_replicas=6, last_scale_up_time=NOW.timestamp() - 10
    )
    cooling = decide(target.autoscaling, state, QUIET, NOW.timestamp())
    status = scaled_status(WorkerPoolStatus(), pool(), decided(BUSY), NOW)

    assert cooling.blocked_by == "cooldown"
    assert scaling_events(status, cooling) == []


def test_a_paused_pool_reports_no_metrics_transitions() -> None:
    assert scaling_events(WorkerPoolStatus(), decided(DOWN, paused=True)) == []


# ---------------------------------------------------------------- deletion cost


def test_idle_pods_get_the_lower_deletion_cost_and_only_changes_are_written() -> None:
    pods = {"busy": None, "idle": "1", "starting": None, "was-busy-still-busy": "1"}
    busy = {"busy": 1.0, "idle": 0.0, "was-busy-still-busy": 1.0}

    assert deletion_costs(pods, busy) == {"busy": "1", "idle": "0"}
