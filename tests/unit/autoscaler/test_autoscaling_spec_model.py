"""The AutoscalingSpec API model: defaults, wire form, and the threshold-gap rules that
pydantic and the CRD's CEL both enforce."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from agentfleet.core.api.autoscaling import AutoscalingSpec

pytestmark = pytest.mark.unit


def test_defaults_are_the_documented_thresholds() -> None:
    spec = AutoscalingSpec()
    assert spec.to_wire() == {
        "enabled": True,
        "paused": False,
        "pollIntervalSeconds": 15,
        "scaleUp": {
            "queueDepthAbove": 10,
            "oldestWaitSecondsAbove": 1800.0,
            "utilizationAbove": 0.8,
            "utilizationNeedsBacklog": True,
            "sizing": "backlog",
            "drainSeconds": 1800,
            "step": 2,
            "stabilizationSeconds": 15,
        },
        "scaleDown": {
            "queueDepthBelow": 3,
            "oldestWaitSecondsBelow": 300.0,
            "utilizationBelow": 0.3,
            "sizing": "backlog",
            "step": 1,
            "cooldownSeconds": 300,
        },
        "fallback": {"failureThreshold": 3},
        "prediction": {
            "enabled": True,
            "windowSeconds": 7200,
            "periodSeconds": 86400,
            "lookaheadSeconds": 3600,
            "waitProbability": 0.05,
        },
        "rateLimit": {"enabled": True, "throttledAbove": 0.05, "headroomBelow": 0.1},
        "queries": {},
    }


def test_wire_form_round_trips() -> None:
    wire = {
        "paused": True,
        "scaleUp": {"queueDepthAbove": 4, "step": 3},
        "fallback": {"replicas": 2},
        "queries": {"queueDepth": 'sum(my_queue{pool="a"})'},
    }
    spec = AutoscalingSpec.model_validate(wire)
    assert spec.paused
    assert spec.scale_up.queue_depth_above == 4
    assert spec.queries.queue_depth == 'sum(my_queue{pool="a"})'
    assert AutoscalingSpec.model_validate(spec.to_wire()) == spec


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (
            {"scaleDown": {"queueDepthBelow": 10}},
            "scaleDown.queueDepthBelow (10) must be strictly below scaleUp.queueDepthAbove (10)",
        ),
        (
            {"scaleUp": {"oldestWaitSecondsAbove": 60}},
            "scaleDown.oldestWaitSecondsBelow (300.0) must be strictly below "
            "scaleUp.oldestWaitSecondsAbove (60.0)",
        ),
        (
            {"scaleDown": {"utilizationBelow": 0.9}},
            "scaleDown.utilizationBelow (0.9) must be strictly below "
            "scaleUp.utilizationAbove (0.8)",
        ),
    ],
)
def test_scale_down_thresholds_must_sit_below_scale_up_thresholds(
    wire: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        AutoscalingSpec.model_validate(wire)


@pytest.mark.parametrize(
    "wire",
    [
        {"scaleUp": {"step": 0}},
        {"scaleDown": {"step": 0}},
        {"scaleUp": {"utilizationAbove": 1.5}},
        {"fallback": {"failureThreshold": 0}},
        {"pollIntervalSeconds": 0},
        {"scaleUp": {"queueDepthAbve": 3}},
    ],
)
def test_out_of_range_and_unknown_fields_are_rejected(wire: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        AutoscalingSpec.model_validate(wire)


def test_schema_carries_the_cel_rules_and_nested_defaults() -> None:
    schema = AutoscalingSpec.model_json_schema(by_alias=True)
    rules = {r["rule"]: r["message"] for r in schema["x-kubernetes-validations"]}
    assert rules == {
        "self.scaleDown.queueDepthBelow < self.scaleUp.queueDepthAbove": (
            "scaleDown.queueDepthBelow must be strictly below scaleUp.queueDepthAbove"
        ),
        "self.scaleDown.oldestWaitSecondsBelow < self.scaleUp.oldestWaitSecondsAbove": (
            "scaleDown.oldestWaitSecondsBelow must be strictly below scaleUp.oldestWaitSecondsAbove"
        ),
        "self.scaleDown.utilizationBelow < self.scaleUp.utilizationAbove": (
            "scaleDown.utilizationBelow must be strictly below scaleUp.utilizationAbove"
        ),
    }
    # The API server only fills nested defaults (which the CEL rules read) when the
    # parent object has a default.
    for field in ("scaleUp", "scaleDown", "fallback", "queries"):
        assert schema["properties"][field]["default"] == {}


def _all_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for field in model.model_fields.values():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _all_models(annotation)
    return found


@pytest.mark.parametrize("model", _all_models(AutoscalingSpec), ids=lambda m: m.__name__)
def test_every_field_is_described_for_kubectl_explain(model: type[BaseModel]) -> None:
    undocumented = [name for name, f in model.model_fields.items() if not f.description]
    assert undocumented == []
    assert model.__doc__
