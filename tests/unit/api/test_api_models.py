"""Project and WorkerPool models: documented defaults, the rules the API server also
enforces as CEL, and agreement between schema defaults and model defaults."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from agentfleet.core.api import Stage
from agentfleet.core.api.conditions import (
    ConditionStatus,
    find_condition,
    is_true,
    set_condition,
)
from agentfleet.core.api.project import Priority, ProjectSpec
from agentfleet.core.api.schema import apply_defaults, structural_schema
from agentfleet.core.api.workerpool import LabelSelector, WorkerPoolSpec

pytestmark = pytest.mark.unit

MINIMAL_PROJECT = {"repository": "acme/widgets", "credentialsSecretRef": {"name": "gh"}}
MINIMAL_POOL = {"stage": "development"}


def test_project_defaults_follow_the_brief() -> None:
    spec = ProjectSpec.model_validate(MINIMAL_PROJECT)
    assert spec.pipeline.stages == [Stage.GENESIS, Stage.DEVELOPMENT, Stage.CONTENT]
    assert spec.pipeline.failure_stage is Stage.REVIEW
    assert spec.parallelism.max_workers == 5
    assert spec.parallelism.success_threshold == 0.8
    assert spec.parallelism.task_timeout_seconds == 1800
    assert spec.priority is Priority.NORMAL
    assert spec.paused is False
    assert spec.intake.webhook.enabled is False


def test_workerpool_defaults_follow_the_brief() -> None:
    spec = WorkerPoolSpec.model_validate(MINIMAL_POOL)
    assert (spec.min_replicas, spec.max_replicas, spec.replicas) == (1, 5, None)
    up, down = spec.autoscaling.scale_up, spec.autoscaling.scale_down
    assert (up.queue_depth_above, up.oldest_wait_seconds_above, up.utilization_above) == (
        10,
        1800,
        0.8,
    )
    assert (
        down.queue_depth_below,
        down.oldest_wait_seconds_below,
        down.utilization_below,
    ) == (3, 300, 0.3)


@pytest.mark.parametrize(
    ("model", "minimal"),
    [(ProjectSpec, MINIMAL_PROJECT), (WorkerPoolSpec, MINIMAL_POOL)],
    ids=["Project", "WorkerPool"],
)
def test_what_the_api_server_stores_parses_to_the_models_defaults(
    model: Any, minimal: dict[str, Any]
) -> None:
    stored = apply_defaults(structural_schema(model), copy.deepcopy(minimal))
    assert model.model_validate(stored) == model.model_validate(minimal)
    # And the operator's own serialisation is a fixed point of server defaulting.
    wire = model.model_validate(minimal).to_wire()
    assert apply_defaults(structural_schema(model), copy.deepcopy(wire)) == wire


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"minReplicas": 4, "maxReplicas": 2}, "minReplicas must be less than or equal"),
        (
            {"project": "a", "projectSelector": {"matchLabels": {"x": "y"}}},
            "either project or projectSelector",
        ),
        ({"env": [{"name": "A"}]}, "exactly one of value and secretKeyRef"),
        (
            {"env": [{"name": "A", "value": "1", "secretKeyRef": {"name": "s", "key": "k"}}]},
            "exactly one of value and secretKeyRef",
        ),
        (
            {"projectSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}},
            "values must be non-empty",
        ),
        ({"resources": {"requests": {"cpu": "lots"}}}, "not a Kubernetes quantity"),
        ({"stage": "deploy"}, "stage"),
        ({"replicas": -1}, "replicas"),
        ({"unknownField": 1}, "unknownField"),
        (
            {"autoscaling": {"scaleDown": {"queueDepthBelow": 20}}},
            "must be strictly below",
        ),
    ],
)
def test_invalid_workerpool_specs_are_refused(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WorkerPoolSpec.model_validate({**MINIMAL_POOL, **patch})


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"repository": "not a repo"}, "repository"),
        ({"pipeline": {"failureStage": "genesis"}}, "failureStage must not be one of"),
        ({"pipeline": {"stages": ["genesis", "genesis"]}}, "must not repeat"),
        ({"intake": {"webhook": {"enabled": True}}}, "secretRef is required"),
        ({"parallelism": {"successThreshold": 0}}, "successThreshold"),
        ({"priority": "asap"}, "priority"),
    ],
)
def test_invalid_project_specs_are_refused(patch: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProjectSpec.model_validate({**MINIMAL_PROJECT, **patch})


@pytest.mark.parametrize(
    "repository",
    [
        "acme/widgets",
        "a/b.c_d-e",
        "https://github.com/acme/widgets",
        "https://github.com/acme/widgets.git",
        "https://ghe.example.com:8443/acme/widgets",
    ],
)
def test_repository_forms(repository: str) -> None:
    assert ProjectSpec.model_validate({**MINIMAL_PROJECT, "repository": repository})


def test_replicas_are_clamped_to_bounds() -> None:
    spec = WorkerPoolSpec.model_validate({**MINIMAL_POOL, "minReplicas": 2, "maxReplicas": 4})
    assert [spec.clamp(n) for n in (0, 2, 3, 9)] == [2, 2, 3, 4]


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "a", "x": "y"}, True),
        ({"matchLabels": {"team": "a"}}, {"team": "b"}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["1"]}]}, {}, False),
        (
            {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["1"]}]},
            {},
            True,
        ),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": "2"}, False),
        (
            {
                "matchLabels": {"team": "a"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["1", "2"]}],
            },
            {"team": "a", "tier": "2"},
            True,
        ),
    ],
)
def test_label_selector_semantics_match_kubernetes(
    selector: dict[str, Any], labels: dict[str, str], expected: bool
) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is expected


def test_condition_transition_time_moves_only_when_status_flips() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    conditions = set_condition([], "Ready", False, "Pending", "starting", t0)
    conditions = set_condition(conditions, "Paused", False, "Running", "", t0)
    later = set_condition(conditions, "Ready", False, "StillPending", "x", t0 + timedelta(1))
    ready = find_condition(later, "Ready")
    assert ready is not None
    assert (ready.reason, ready.last_transition_time) == ("StillPending", t0)
    flipped = set_condition(later, "Ready", True, "Reconciled", "", t0 + timedelta(2))
    assert [c.type for c in flipped] == ["Ready", "Paused"]
    assert find_condition(flipped, "Ready").last_transition_time == t0 + timedelta(2)  # type: ignore[union-attr]
    assert is_true(flipped, "Ready")
    assert not is_true(flipped, "Paused")
    assert find_condition(flipped, "Ready").status is ConditionStatus.TRUE  # type: ignore[union-attr]
