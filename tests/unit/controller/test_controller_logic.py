"""Reconciliation decisions: project resolution, replicas, semantic errors, statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.api.conditions import ConditionStatus, find_condition
from agentfleet.core.api.project import (
    BudgetSpec,
    ProjectPhase,
    ProjectSpec,
    ProjectStatus,
    StageCounts,
)
from agentfleet.core.api.workerpool import WorkerPoolSpec, WorkerPoolStatus
from agentfleet.core.queue.models import DaySpend
from agentfleet.operator.logic import (
    Problem,
    ProjectInfo,
    QueueView,
    Resolution,
    SecretLookup,
    contains,
    credentials_problem,
    declared_routes,
    desired_replicas,
    mirror_deployment,
    pool_status,
    project_status,
    resolve_projects,
    secret_names,
    secrets_problem,
)
from agentfleet.operator.reconciler import resolution_fingerprint

pytestmark = pytest.mark.unit

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PIPELINE = (Stage.GENESIS, Stage.DEVELOPMENT, Stage.CONTENT, Stage.REVIEW)


def _project(name: str, paused: bool = False, **labels: str) -> ProjectInfo:
    return ProjectInfo(
        namespace="ns",
        name=name,
        uid=f"uid-{name}",
        labels=labels,
        paused=paused,
        stages=PIPELINE,
        credentials_secret=f"{name}-gh",
    )


def _pool(**fields: Any) -> WorkerPoolSpec:
    return WorkerPoolSpec.model_validate({"stage": "development", **fields})


def _condition(conditions: Any, kind: str) -> tuple[str, str]:
    condition = find_condition(conditions, kind)
    assert condition is not None, f"no {kind} condition"
    return condition.status.value, condition.reason


# ------------------------------------------------------------------- resolution


def test_dedicated_pool_serves_its_project() -> None:
    resolution = resolve_projects(_pool(project="b"), [_project("a"), _project("b")])
    assert [p.name for p in resolution.projects] == ["b"]
    assert resolution.problem is None
    assert not resolution.all_projects


def test_dedicated_pool_of_a_missing_project_is_a_problem() -> None:
    resolution = resolve_projects(_pool(project="gone"), [_project("a")])
    assert resolution.problem is not None
    assert resolution.problem.reason == "ProjectNotFound"
    assert "gone" in resolution.problem.message


def test_selector_picks_projects_by_label() -> None:
    projects = [_project("a", team="x"), _project("b", team="y"), _project("c", team="x")]
    resolution = resolve_projects(_pool(projectSelector={"matchLabels": {"team": "x"}}), projects)
    assert [p.name for p in resolution.projects] == ["a", "c"]


def test_selector_matching_nothing_is_a_problem() -> None:
    resolution = resolve_projects(
        _pool(projectSelector={"matchLabels": {"team": "z"}}), [_project("a", team="x")]
    )
    assert resolution.problem is not None
    assert resolution.problem.reason == "NoMatchingProjects"
    assert "matches none of the 1 Project(s)" in resolution.problem.message


def test_no_selector_serves_every_project_even_none() -> None:
    assert resolve_projects(_pool(), []) == Resolution(all_projects=True)
    resolution = resolve_projects(_pool(), [_project("b"), _project("a")])
    assert [p.name for p in resolution.projects] == ["a", "b"]
    assert resolution.all_projects


def test_stage_outside_every_served_pipeline_is_a_problem() -> None:
    genesis_only = ProjectInfo("ns", "a", "u", stages=(Stage.GENESIS, Stage.REVIEW))
    resolution = resolve_projects(_pool(stage="content"), [genesis_only])
    assert resolution.problem is not None
    assert resolution.problem.reason == "StageNotInPipeline"
    assert "a: genesis, review" in resolution.problem.message
    # The failure stage counts: a review pool serves it.
    assert resolve_projects(_pool(stage="review"), [genesis_only]).problem is None


def test_project_info_from_an_unparseable_body_carries_the_problem() -> None:
    info = ProjectInfo.from_body(
        {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {"repository": "x"}}
    )
    assert info.problem is not None
    assert info.problem.reason == "InvalidSpec"
    assert "credentialsSecretRef" in info.problem.message


def test_project_info_from_body() -> None:
    info = ProjectInfo.from_body(
        {
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"a": "b"}},
            "spec": {
                "repository": "o/r",
                "credentialsSecretRef": {"name": "s"},
                "paused": True,
                "pipeline": {"stages": ["development"]},
            },
        }
    )
    assert (info.paused, info.credentials_secret, info.labels) == (True, "s", {"a": "b"})
    assert info.stages == (Stage.DEVELOPMENT, Stage.REVIEW)


# --------------------------------------------------------------------- replicas


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, 1),
        ({"minReplicas": 0}, 0),
        ({"replicas": 3}, 3),
        ({"replicas": 9}, 5),
        ({"replicas": 0, "minReplicas": 2}, 2),
    ],
)
def test_replicas_follow_spec_within_bounds(fields: dict[str, Any], expected: int) -> None:
    replicas = desired_replicas(_pool(**fields), Resolution(projects=(_project("a"),)))
    assert replicas.count == expected
    assert not replicas.paused


def test_clamping_is_explained() -> None:
    replicas = desired_replicas(_pool(replicas=9), Resolution(projects=(_project("a"),)))
    assert replicas.reason == "spec.replicas=9 clamped to [1, 5]"


def test_pool_scales_to_zero_when_every_served_project_is_paused() -> None:
    paused = Resolution(projects=(_project("a", paused=True), _project("b", paused=True)))
    replicas = desired_replicas(_pool(replicas=4, minReplicas=2), paused)
    assert (replicas.count, replicas.paused) == (0, True)
    assert "a, b" in replicas.reason
    mixed = Resolution(projects=(_project("a", paused=True), _project("b")))
    assert desired_replicas(_pool(replicas=4), mixed).count == 4


def test_pool_without_projects_is_not_paused() -> None:
    assert desired_replicas(_pool(), Resolution(all_projects=True)).count == 1


# ---------------------------------------------------------------------- secrets

SECRET_POOL = _pool(
    envFromSecrets=["shared"],
    env=[
        {"name": "ANTHROPIC_API_KEY", "secretKeyRef": {"name": "anthropic", "key": "api-key"}},
        {"name": "PLAIN", "value": "x"},
    ],
)


def test_secret_names_of_a_pool() -> None:
    assert secret_names(SECRET_POOL) == ["anthropic", "shared"]


@pytest.mark.parametrize(
    ("lookups", "reason"),
    [
        ({"shared": SecretLookup(missing=True)}, "SecretNotFound"),
        ({"anthropic": SecretLookup(error="403 forbidden")}, "SecretUnreadable"),
        ({"anthropic": SecretLookup(keys=frozenset({"other"}))}, "SecretKeyNotFound"),
        ({}, None),
    ],
)
def test_secret_problems(lookups: dict[str, SecretLookup], reason: str | None) -> None:
    found = {
        "shared": SecretLookup(keys=frozenset({"A"})),
        "anthropic": SecretLookup(keys=frozenset({"api-key"})),
        **lookups,
    }
    problem = secrets_problem(SECRET_POOL, found)
    assert (problem.reason if problem else None) == reason


@pytest.mark.parametrize(
    ("lookup", "reason"),
    [
        (SecretLookup(keys=frozenset({"token"})), None),
        (SecretLookup(keys=frozenset({"app-id", "private-key", "installation-id"})), None),
        (SecretLookup(keys=frozenset({"app-id"})), "CredentialsIncomplete"),
        (SecretLookup(missing=True), "CredentialsNotFound"),
        (SecretLookup(error="403"), "CredentialsUnreadable"),
    ],
)
def test_credentials_problems(lookup: SecretLookup, reason: str | None) -> None:
    problem = credentials_problem("gh", lookup)
    assert (problem.reason if problem else None) == reason


# ----------------------------------------------------------------- pool status

DEPLOYMENT = {
    "status": {
        "replicas": 3,
        "readyReplicas": 2,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}
        ],
    }
}


def _pool_status(previous: WorkerPoolStatus, spec: WorkerPoolSpec, **kw: Any) -> WorkerPoolStatus:
    resolution = Resolution(projects=(_project("a"),))
    args: dict[str, Any] = {
        "name": "dev",
        "generation": 4,
        "spec": spec,
        "selector": "sel",
        "resolution": resolution,
        "replicas": desired_replicas(spec, resolution),
        "problem": None,
        "deployment": DEPLOYMENT,
        "now": NOW,
    }
    return pool_status(previous, **{**args, **kw})


def test_pool_status_after_a_successful_reconcile() -> None:
    status = _pool_status(WorkerPoolStatus(), _pool(replicas=3))
    assert (status.replicas, status.ready_replicas, status.desired_replicas) == (3, 2, 3)
    assert (status.selector, status.observed_generation, status.projects) == ("sel", 4, ["a"])
    assert _condition(status.conditions, "Ready") == ("True", "Reconciled")
    assert _condition(status.conditions, "Available") == ("True", "MinimumReplicasAvailable")
    assert status.last_scale_time == NOW


def test_problem_sets_ready_false_and_keeps_what_was_running() -> None:
    previous = _pool_status(WorkerPoolStatus(), _pool(replicas=3))
    status = _pool_status(
        previous,
        _pool(replicas=5),
        replicas=None,
        deployment=None,
        problem=Problem("SecretNotFound", "Secret x does not exist"),
        now=NOW + timedelta(minutes=1),
    )
    assert status.desired_replicas == 3
    assert status.replicas == 3
    ready = find_condition(status.conditions, "Ready")
    assert ready is not None
    assert (ready.status, ready.reason) == (ConditionStatus.FALSE, "SecretNotFound")
    assert ready.message == "Secret x does not exist"
    assert ready.last_transition_time == NOW + timedelta(minutes=1)


def test_autoscaler_explains_its_own_changes_but_manual_ones_are_explained_here() -> None:
    first = _pool_status(WorkerPoolStatus(), _pool(replicas=2))
    autoscaled = _pool_status(first, _pool(replicas=4), now=NOW + timedelta(minutes=1))
    assert autoscaled.desired_replicas == 4
    assert autoscaled.last_scale_time == NOW  # left to the autoscaler
    manual = _pool(replicas=4, autoscaling={"enabled": False})
    scaled = _pool_status(first, manual, now=NOW + timedelta(minutes=2))
    assert scaled.last_scale_time == NOW + timedelta(minutes=2)
    assert scaled.last_scale_reason == "spec.replicas=4"


def test_pause_is_explained_even_with_autoscaling_on() -> None:
    first = _pool_status(WorkerPoolStatus(), _pool(replicas=2))
    paused = Resolution(projects=(_project("a", paused=True),))
    spec = _pool(replicas=2)
    status = _pool_status(
        first, spec, resolution=paused, replicas=desired_replicas(spec, paused), now=NOW
    )
    assert status.desired_replicas == 0
    assert status.last_scale_reason is not None
    assert status.last_scale_reason.startswith("paused")


def test_mirroring_a_missing_deployment_reports_zero() -> None:
    mirrored = mirror_deployment(WorkerPoolStatus(replicas=2, ready_replicas=2), None, 1, NOW)
    assert (mirrored.replicas, mirrored.ready_replicas) == (0, 0)


def test_fingerprint_changes_when_a_served_project_pauses() -> None:
    running = Resolution(projects=(_project("a"),))
    paused = Resolution(projects=(_project("a", paused=True),))
    assert resolution_fingerprint(running) != resolution_fingerprint(paused)
    assert resolution_fingerprint(running) == resolution_fingerprint(
        Resolution(projects=(_project("a"),))
    )


# -------------------------------------------------------------- project status

SPEC = ProjectSpec.model_validate({"repository": "o/r", "credentialsSecretRef": {"name": "gh"}})
ALL_POOLS = [
    ("g", Stage.GENESIS),
    ("d", Stage.DEVELOPMENT),
    ("c", Stage.CONTENT),
    ("r", Stage.REVIEW),
]


def _project_status(**kw: Any) -> ProjectStatus:
    args: dict[str, Any] = {
        "generation": 2,
        "spec": SPEC,
        "problem": None,
        "queue": QueueView(configured=False),
        "pools": ALL_POOLS,
        "now": NOW,
    }
    return project_status(ProjectStatus(), **{**args, **kw})


def test_active_project() -> None:
    status = _project_status()
    assert status.phase is ProjectPhase.ACTIVE
    assert status.pools == ["c", "d", "g", "r"]
    assert _condition(status.conditions, "Ready") == ("True", "Valid")
    assert _condition(status.conditions, "Paused") == ("False", "Running")
    assert _condition(status.conditions, "Degraded") == ("False", "AllStagesServed")


def test_missing_stage_pool_degrades_the_project() -> None:
    status = _project_status(pools=ALL_POOLS[:2])
    assert status.phase is ProjectPhase.DEGRADED
    degraded = find_condition(status.conditions, "Degraded")
    assert degraded is not None
    assert degraded.message == "no WorkerPool serves stage(s): content, review"


def test_paused_project_reports_held_work() -> None:
    paused = SPEC.model_copy(update={"paused": True})
    counts = {
        Stage.DEVELOPMENT: StageCounts(held=4, in_flight=1),
        Stage.CONTENT: StageCounts(held=1, pending=0, retrying=2),
    }
    status = _project_status(
        spec=paused, queue=QueueView(configured=True, stages=counts, held=True)
    )
    assert status.phase is ProjectPhase.PAUSED
    assert status.queued == 7
    assert status.stages[Stage.DEVELOPMENT].in_flight == 1
    paused_condition = find_condition(status.conditions, "Paused")
    assert paused_condition is not None
    assert paused_condition.status is ConditionStatus.TRUE
    assert "5 queued item(s) held" in paused_condition.message


def test_paused_without_a_queue_says_nothing_is_held() -> None:
    status = _project_status(spec=SPEC.model_copy(update={"paused": True}))
    paused = find_condition(status.conditions, "Paused")
    assert paused is not None
    assert "no work queue is configured" in paused.message


def test_queue_outage_degrades_and_keeps_the_last_counts() -> None:
    previous = ProjectStatus(queued=3, stages={Stage.GENESIS: StageCounts(pending=3)})
    status = project_status(
        previous,
        generation=2,
        spec=SPEC,
        problem=None,
        queue=QueueView(configured=True, error="ConnectionError: refused"),
        pools=ALL_POOLS,
        now=NOW,
    )
    assert status.phase is ProjectPhase.DEGRADED
    assert _condition(status.conditions, "Degraded") == ("True", "QueueUnavailable")
    assert status.queued == 3
    assert status.stages[Stage.GENESIS].pending == 3


def test_invalid_credentials_fail_the_project() -> None:
    status = _project_status(problem=Problem("CredentialsNotFound", "credentials Secret gh ..."))
    assert status.phase is ProjectPhase.FAILED
    assert _condition(status.conditions, "Ready") == ("False", "CredentialsNotFound")


# ------------------------------------------------------------------- contains


def test_stored_object_with_server_fields_contains_the_desired_one() -> None:
    desired = {"spec": {"replicas": 2, "template": {"env": [{"name": "A", "value": "1"}]}}}
    stored = {
        "metadata": {"resourceVersion": "7"},
        "spec": {
            "replicas": 2,
            "progressDeadlineSeconds": 600,
            "template": {"env": [{"name": "A", "value": "1"}], "dnsPolicy": "ClusterFirst"},
        },
    }
    assert contains(stored, desired)


@pytest.mark.parametrize(
    "stored",
    [
        {"spec": {"replicas": 3, "template": {"env": [{"name": "A", "value": "1"}]}}},
        {"spec": {"replicas": 2, "template": {"env": [{"name": "A", "value": "2"}]}}},
        {"spec": {"replicas": 2, "template": {"env": []}}},
        {
            "spec": {
                "replicas": 2,
                "template": {"env": [{"name": "A", "value": "1"}, {"name": "B"}]},
            }
        },
        {"spec": {"replicas": 2}},
    ],
)
def test_any_difference_in_a_desired_field_is_seen(stored: dict[str, Any]) -> None:
    desired = {"spec": {"replicas": 2, "template": {"env": [{"name": "A", "value": "1"}]}}}
    assert not contains(stored, desired)


def test_declared_routes_cover_the_pipeline_and_the_serving_pools_specialties() -> None:
    pools = [
        WorkerPoolSpec.model_validate({"stage": "development", "specialties": ["tdd", "ai-ml"]}),
        WorkerPoolSpec.model_validate({"stage": "review"}),
    ]
    assert set(declared_routes(SPEC, pools)) == {
        (Stage.GENESIS, "general"),
        (Stage.DEVELOPMENT, "ai-ml"),
        (Stage.DEVELOPMENT, "general"),
        (Stage.DEVELOPMENT, "tdd"),
        (Stage.CONTENT, "general"),
        (Stage.REVIEW, "general"),
    }
    assert set(declared_routes(SPEC, [])) == {(stage, "general") for stage in PIPELINE}


def test_a_spent_daily_budget_is_a_condition_with_when_work_resumes() -> None:
    budgeted = SPEC.model_copy(
        update={"budgets": BudgetSpec(tokens_per_day=50_000, cost_per_day_usd=5.0)}
    )
    today = NOW.date()
    within = DaySpend(day=today, tokens=1200, cost_usd=0.04, tokens_per_day=50_000,
                      cost_per_day_usd=5.0)  # fmt: skip
    spent = within.model_copy(update={"cost_usd": 5.2})

    ok = _project_status(spec=budgeted, queue=QueueView(configured=True, stages={}, budget=within))
    over = _project_status(spec=budgeted, queue=QueueView(configured=True, stages={}, budget=spent))
    unread = project_status(
        over, generation=2, spec=budgeted, problem=None,
        queue=QueueView(configured=True, error="ConnectionError: down"), pools=ALL_POOLS, now=NOW,
    )  # fmt: skip
    unlimited = _project_status()

    assert _condition(ok.conditions, "BudgetExhausted") == ("False", "WithinBudget")
    condition = find_condition(over.conditions, "BudgetExhausted")
    assert condition is not None and condition.status is ConditionStatus.TRUE
    assert condition.message == (
        "$5.20 spent today, budgets.costPerDayUsd=5: no item is delivered until "
        "2025-06-02T00:00Z; running items stop at their next model call and wait in the queue"
    )
    # The queue unreadable: the last known state stands (Degraded says why).
    assert _condition(unread.conditions, "BudgetExhausted") == ("True", "DailyBudgetSpent")
    assert _condition(unlimited.conditions, "BudgetExhausted") == ("False", "NoDailyBudget")
