"""Each status field has exactly one writer: the reconciler, the autoscaler or intake
apply their own fields with server-side apply, under their own field manager."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agentfleet.core.api.project import ProjectStatus
from agentfleet.core.api.workerpool import WorkerPoolConditionType, WorkerPoolSpec, WorkerPoolStatus
from agentfleet.operator.intake import INTAKE
from agentfleet.operator.logic import (
    BUDGET_EXHAUSTED,
    DEGRADED,
    PAUSED,
    POOL_AUTOSCALER_FIELDS,
    POOL_RECONCILER_FIELDS,
    PROJECT_INTAKE_FIELDS,
    PROJECT_RECONCILER_FIELDS,
    READY,
    Replicas,
    Resolution,
    ScaleNote,
    pool_status,
)

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def wire_names(model: type[WorkerPoolStatus] | type[ProjectStatus]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def test_every_workerpool_status_field_has_exactly_one_owner() -> None:
    fields = wire_names(WorkerPoolStatus) - {"conditions"}
    reconciler, autoscaler = POOL_RECONCILER_FIELDS, POOL_AUTOSCALER_FIELDS
    assert reconciler.fields | autoscaler.fields == fields
    assert not reconciler.fields & autoscaler.fields
    types = {t.value for t in WorkerPoolConditionType}
    assert reconciler.conditions | autoscaler.conditions == types
    assert not reconciler.conditions & autoscaler.conditions


def test_every_project_status_field_has_exactly_one_owner() -> None:
    fields = wire_names(ProjectStatus) - {"conditions"}
    reconciler, intake = PROJECT_RECONCILER_FIELDS, PROJECT_INTAKE_FIELDS
    assert reconciler.fields | intake.fields == fields
    assert not reconciler.fields & intake.fields
    assert reconciler.conditions == {READY, PAUSED, DEGRADED, BUDGET_EXHAUSTED}
    assert intake.conditions == {INTAKE}


def test_a_writer_applies_its_fields_and_conditions_only() -> None:
    wire = {
        "replicas": 2,
        "metrics": {"queueDepth": 3},
        "conditions": [{"type": "Ready"}, {"type": "ScalingActive"}],
    }
    assert POOL_RECONCILER_FIELDS.select(wire) == {"replicas": 2, "conditions": [{"type": "Ready"}]}
    assert POOL_AUTOSCALER_FIELDS.select(wire) == {
        "metrics": {"queueDepth": 3},
        "conditions": [{"type": "ScalingActive"}],
    }
    # A writer with no condition left still says so: an empty list removes what it had.
    assert POOL_AUTOSCALER_FIELDS.select({"replicas": 1}) == {"conditions": []}


def _reconciled(previous: WorkerPoolStatus, count: int, note: ScaleNote | None) -> WorkerPoolStatus:
    spec = WorkerPoolSpec.model_validate(
        {"stage": "development", "minReplicas": 1, "maxReplicas": 6, "replicas": count}
    )
    return pool_status(
        previous,
        name="dev",
        generation=2,
        spec=spec,
        selector="app=dev",
        resolution=Resolution(projects=(), all_projects=True),
        replicas=Replicas(count, f"spec.replicas={count}"),
        problem=None,
        deployment=None,
        now=NOW,
        scale_note=note,
    )


def test_the_reconciler_records_the_autoscalers_reason_for_the_replicas_it_asked_for() -> None:
    earlier = NOW.replace(minute=0, second=30)
    previous = WorkerPoolStatus(desired_replicas=2, last_scale_reason="before")
    note = ScaleNote(4, "ScaledUp 2→4: queue_depth=14 > 10", earlier)

    status = _reconciled(previous, 4, note)

    assert status.desired_replicas == 4
    assert (status.last_scale_time, status.last_scale_reason) == (earlier, note.reason)


def test_a_note_for_other_replicas_is_not_the_reason() -> None:
    previous = WorkerPoolStatus(desired_replicas=2, last_scale_reason="before")
    stale = ScaleNote(5, "ScaledUp 2→5: ...", NOW)

    status = _reconciled(previous, 3, stale)

    assert status.desired_replicas == 3
    assert status.last_scale_reason == "before"


def test_a_writers_own_part_overlays_an_older_status() -> None:
    """What the autoscaler recorded of its last write replaces its part of a status the
    index still shows from before; the reconciler's part stays as the index has it."""
    older = {
        "replicas": 2,
        "metrics": {"queueDepth": 9},
        "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "ScalingActive", "status": "True", "reason": "ScalingFromMetrics"},
            {"type": "Available", "status": "True"},
        ],
    }
    recorded = POOL_AUTOSCALER_FIELDS.select(
        {
            "replicas": 5,  # not the autoscaler's: ignored
            "metrics": {"queueDepth": 0},
            "conditions": [
                {"type": "Ready", "status": "False"},  # not the autoscaler's: ignored
                {"type": "ScalingActive", "status": "False", "reason": "MetricsUnavailable"},
                {"type": "MetricsAvailable", "status": "False"},
            ],
        }
    )
    merged = POOL_AUTOSCALER_FIELDS.overlay(older, recorded)
    assert merged["replicas"] == 2
    assert merged["metrics"] == {"queueDepth": 0}
    assert merged["conditions"] == [
        {"type": "Ready", "status": "True"},
        {"type": "ScalingActive", "status": "False", "reason": "MetricsUnavailable"},
        {"type": "Available", "status": "True"},
        {"type": "MetricsAvailable", "status": "False"},
    ]
    # A field or condition the writer no longer writes is gone, as the API server removes it.
    cleared = POOL_AUTOSCALER_FIELDS.overlay(older, {"conditions": []})
    assert "metrics" not in cleared
    assert [c["type"] for c in cleared["conditions"]] == ["Ready", "Available"]
