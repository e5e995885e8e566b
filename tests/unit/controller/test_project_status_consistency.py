"""A Project's status never contradicts itself: `phase` is derived from the conditions by
one function, every writer (reconciler, intake) goes through it, and a Project whose
webhook cannot verify deliveries is not Ready."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TypeAlias, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.core.api.base import Stage
from agentfleet.core.api.conditions import Condition, ConditionStatus, find_condition
from agentfleet.core.api.project import ProjectPhase, ProjectSpec, ProjectStatus, StageCounts
from agentfleet.operator.intake import IntakeState, with_intake_condition
from agentfleet.operator.logic import (
    DEGRADED,
    PAUSED,
    READY,
    Problem,
    QueueView,
    SecretLookup,
    project_phase,
    project_status,
    webhook_problem,
    with_phase,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STATUSES = (None, ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN)


def contradictions(phase: ProjectPhase | None, conditions: Sequence[Condition]) -> list[str]:
    """What a person reading `kubectl get` and `kubectl describe` side by side would call
    a contradiction; empty when the status is coherent."""

    def state(kind: str) -> ConditionStatus | None:
        found = find_condition(conditions, kind)
        return None if found is None else found.status

    ready, paused, degraded = state(READY), state(PAUSED), state(DEGRADED)
    found = []
    if phase is None:
        found.append("no phase")
    if phase is ProjectPhase.ACTIVE and ready is not ConditionStatus.TRUE:
        found.append("Active but not Ready")
    if phase in (ProjectPhase.ACTIVE, ProjectPhase.DEGRADED) and paused is ConditionStatus.TRUE:
        found.append(f"{phase} while Paused=True")
    if phase is ProjectPhase.ACTIVE and degraded is ConditionStatus.TRUE:
        found.append("Active while Degraded=True")
    if phase is ProjectPhase.DEGRADED and degraded is not ConditionStatus.TRUE:
        found.append("Degraded phase without Degraded=True")
    if phase is ProjectPhase.PAUSED and paused is not ConditionStatus.TRUE:
        found.append("Paused phase without Paused=True")
    if phase is ProjectPhase.FAILED and ready is not ConditionStatus.FALSE:
        found.append("Failed while not Ready=False")
    if ready is ConditionStatus.FALSE and phase is not ProjectPhase.FAILED:
        found.append(f"Ready=False but {phase}")
    if phase is ProjectPhase.PENDING and ready in (ConditionStatus.TRUE, ConditionStatus.FALSE):
        found.append(f"Pending although Ready={ready}")
    return found


def _conditions(states: dict[str, ConditionStatus | None]) -> list[Condition]:
    return [
        Condition(type=kind, status=status, reason="R", last_transition_time=NOW)
        for kind, status in states.items()
        if status is not None
    ]


@pytest.mark.parametrize(
    ("ready", "paused", "degraded", "intake"), list(itertools.product(STATUSES, repeat=4))
)
def test_no_combination_of_conditions_yields_a_contradictory_phase(
    ready: ConditionStatus | None,
    paused: ConditionStatus | None,
    degraded: ConditionStatus | None,
    intake: ConditionStatus | None,
) -> None:
    conditions = _conditions({READY: ready, PAUSED: paused, DEGRADED: degraded, "Intake": intake})
    phase = project_phase(conditions)
    assert contradictions(phase, conditions) == []


def test_the_checker_catches_the_reported_contradiction() -> None:
    """The checker is not vacuous: a not-Ready Project shown Active, or a Degraded phase
    without a Degraded condition, are caught."""
    ready = _conditions({READY: ConditionStatus.FALSE})
    assert contradictions(ProjectPhase.ACTIVE, ready) != []
    assert contradictions(ProjectPhase.DEGRADED, _conditions({READY: ConditionStatus.TRUE})) != []


SPEC = ProjectSpec.model_validate({"repository": "o/r", "credentialsSecretRef": {"name": "gh"}})
PROBLEMS = st.sampled_from(
    [
        None,
        Problem("CredentialsNotFound", "credentials Secret gh does not exist"),
        Problem("WebhookSecretNotFound", "webhook Secret hook does not exist"),
    ]
)
QUEUES = st.sampled_from(
    [
        QueueView(configured=False),
        QueueView(configured=True, stages={Stage.GENESIS: StageCounts(pending=2)}),
        QueueView(configured=True, error="ConnectionError: refused"),
        QueueView(configured=True, stages={Stage.GENESIS: StageCounts(held=1)}, held=True),
    ]
)
POOLS = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(list(Stage))),
    max_size=4,
)
INTAKE = st.sampled_from(
    [
        IntakeState(True, "Polling", "ok"),
        IntakeState(False, "GitHubUnauthorized", "401"),
        IntakeState(False, "Paused", "emergency stop"),
    ]
)


# A reconcile step's inputs: paused, problem, queue view, pools.
Reconcile: TypeAlias = tuple[bool, Problem | None, QueueView, list[tuple[str, Stage]]]


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, object]]:
    """A sequence of status writes by the reconciler and by intake, in any order."""
    steps: list[tuple[str, object]] = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            steps.append(
                (
                    "reconcile",
                    (draw(st.booleans()), draw(PROBLEMS), draw(QUEUES), draw(POOLS)),
                )
            )
        else:
            steps.append(("intake", draw(INTAKE)))
    return steps


@given(
    start=st.sampled_from([ProjectStatus(), ProjectStatus(phase=ProjectPhase.ACTIVE)]),
    steps=histories(),
)
def test_every_writer_leaves_a_coherent_status(
    start: ProjectStatus, steps: list[tuple[str, object]]
) -> None:
    status = start
    for writer, argument in steps:
        if writer == "reconcile":
            # histories() pairs "reconcile" with a Reconcile tuple.
            paused, problem, queue, pools = cast(Reconcile, argument)
            spec = SPEC.model_copy(update={"paused": paused})
            status = project_status(
                status, generation=1, spec=spec, problem=problem, queue=queue, pools=pools, now=NOW
            )
            ready = find_condition(status.conditions, READY)
            assert ready is not None
            assert (ready.status is ConditionStatus.FALSE) == (problem is not None)
        else:
            assert isinstance(argument, IntakeState)
            status = with_intake_condition(status, argument, NOW, 1)
        assert status.phase == project_phase(status.conditions)
        assert contradictions(status.phase, status.conditions) == []


def test_with_phase_repairs_a_stale_phase() -> None:
    conditions = _conditions({READY: ConditionStatus.FALSE})
    stale = ProjectStatus(phase=ProjectPhase.ACTIVE, conditions=conditions)
    assert with_phase(stale).phase is ProjectPhase.FAILED


# ------------------------------------------------------------------------- webhook

WEBHOOK_SPEC = ProjectSpec.model_validate(
    {
        "repository": "o/r",
        "credentialsSecretRef": {"name": "gh"},
        "intake": {"webhook": {"enabled": True, "secretRef": {"name": "hook", "key": "secret"}}},
    }
)


@pytest.mark.parametrize(
    ("lookup", "reason"),
    [
        (SecretLookup(missing=True), "WebhookSecretNotFound"),
        (SecretLookup(error="403 forbidden"), "WebhookSecretUnreadable"),
        (SecretLookup(keys=frozenset({"token"})), "WebhookSecretKeyNotFound"),
        (SecretLookup(keys=frozenset({"secret"})), None),
    ],
)
def test_a_webhook_that_cannot_verify_deliveries_is_a_problem(
    lookup: SecretLookup, reason: str | None
) -> None:
    problem = webhook_problem(WEBHOOK_SPEC, lookup)
    assert (problem.reason if problem else None) == reason
    if problem is not None:
        assert "hook" in problem.message


def test_a_disabled_webhook_needs_no_secret() -> None:
    assert webhook_problem(SPEC, SecretLookup(missing=True)) is None


def test_a_project_whose_webhook_secret_is_missing_is_failed_not_degraded() -> None:
    """The reported case: webhook on, Secret missing, and a stage without a pool."""
    problem = webhook_problem(WEBHOOK_SPEC, SecretLookup(missing=True))
    status = project_status(
        ProjectStatus(),
        generation=1,
        spec=WEBHOOK_SPEC,
        problem=problem,
        queue=QueueView(configured=False),
        pools=[],
        now=NOW,
    )
    assert status.phase is ProjectPhase.FAILED
    ready = find_condition(status.conditions, READY)
    assert ready is not None
    assert (ready.status, ready.reason) == (ConditionStatus.FALSE, "WebhookSecretNotFound")
