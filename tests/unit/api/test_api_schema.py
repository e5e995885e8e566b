"""The generated CRD schemas are structural and say what the models say."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from agentfleet.core.api import ApiModel
from agentfleet.core.api.crd import PEERING_CRDS, PROJECT, RESOURCES, WORKERPOOL
from agentfleet.core.api.project import ProjectSpec
from agentfleet.core.api.schema import (
    UnsupportedSchemaError,
    structural_schema,
    structural_violations,
)
from agentfleet.core.api.workerpool import WorkerPoolSpec

pytestmark = pytest.mark.unit


def _walk(schema: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [schema]
    for child in schema.get("properties", {}).values():
        nodes += _walk(child)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            nodes += _walk(schema[key])
    return nodes


def _at(schema: dict[str, Any], path: str) -> dict[str, Any]:
    node = schema
    for part in path.split("."):
        node = node["properties"][part]
    return node


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.kind)
def test_every_crd_schema_is_structural_with_descriptions(resource: Any) -> None:
    assert list(structural_violations(resource.open_api_schema())) == []


@pytest.mark.parametrize("crd", PEERING_CRDS, ids=lambda c: c["spec"]["names"]["kind"])
def test_peering_crds_are_structural(crd: dict[str, Any]) -> None:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert list(structural_violations(schema)) == []


def test_violations_are_reported() -> None:
    bad = {
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"$ref": "#/x", "description": "b"}},
        "additionalProperties": False,
    }
    found = list(structural_violations(bad))
    assert "a: no description" in found
    assert "b: no type" in found
    assert "b: $ref is not allowed" in found
    assert "<root>: additionalProperties: false" in found


def test_refs_are_inlined_and_titles_dropped() -> None:
    schema = structural_schema(WorkerPoolSpec)
    nodes = _walk(schema)
    assert not [n for n in nodes if "$ref" in n or "title" in n or "$defs" in n]
    # The autoscaling policy comes from another module and still appears in full.
    scale_up = _at(schema, "autoscaling.scaleUp.queueDepthAbove")
    assert scale_up["default"] == 10


def test_optional_fields_are_nullable_without_a_null_default() -> None:
    schema = structural_schema(WorkerPoolSpec)
    replicas = _at(schema, "replicas")
    assert replicas["nullable"] is True
    assert replicas["type"] == "integer"
    assert "default" not in replicas
    selector = _at(schema, "projectSelector")
    assert selector["nullable"] is True
    assert selector["type"] == "object"
    assert "matchLabels" in selector["properties"]


def test_field_description_wins_over_the_referenced_models() -> None:
    stage = _at(structural_schema(WorkerPoolSpec), "stage")
    assert stage["description"].startswith("Pipeline stage the workers serve")
    assert stage["enum"] == ["genesis", "development", "content", "review"]


def test_quantities_are_int_or_string() -> None:
    requests = _at(structural_schema(WorkerPoolSpec), "resources.requests")
    quantity = requests["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert quantity["anyOf"] == [{"type": "integer"}, {"type": "string"}]


def test_exclusive_bounds_use_the_openapi_v3_0_boolean_form() -> None:
    threshold = _at(structural_schema(ProjectSpec), "parallelism.successThreshold")
    assert threshold["minimum"] == 0
    assert threshold["exclusiveMinimum"] is True
    assert threshold["maximum"] == 1


def test_cross_field_rules_are_cel_validations() -> None:
    pool = structural_schema(WorkerPoolSpec)
    rules = {v["rule"] for v in pool["x-kubernetes-validations"]}
    assert "self.minReplicas <= self.maxReplicas" in rules
    autoscaling_rules = {v["rule"] for v in _at(pool, "autoscaling")["x-kubernetes-validations"]}
    assert "self.scaleDown.queueDepthBelow < self.scaleUp.queueDepthAbove" in autoscaling_rules


def test_descriptions_are_single_paragraphs() -> None:
    for resource in RESOURCES:
        for node in _walk(resource.open_api_schema()):
            assert "\n" not in node.get("description", "")
            assert "  " not in node.get("description", "")


def test_unions_without_structural_form_are_refused() -> None:
    class Ambiguous(ApiModel):
        value: int | list[str]
        """Either."""

    with pytest.raises(UnsupportedSchemaError, match="value"):
        structural_schema(Ambiguous)


def test_sets_are_refused_with_the_alternative_named() -> None:
    class WithSet(BaseModel):
        tags: set[str] = Field(default_factory=set)

    with pytest.raises(UnsupportedSchemaError, match="x-kubernetes-list-type: set"):
        structural_schema(WithSet)


def test_workerpool_crd_has_scale_status_columns_and_short_names() -> None:
    version = WORKERPOOL.to_wire()["spec"]["versions"][0]
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:4] == ["Stage", "Desired", "Ready", "Queue"]
    assert columns[-1] == "Age"
    assert "wp" in WORKERPOOL.to_wire()["spec"]["names"]["shortNames"]


def test_project_crd_has_status_and_columns() -> None:
    version = PROJECT.to_wire()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:3] == ["Repo", "Phase", "Queued"]
    # Every column points at a field the schema has.
    schema = PROJECT.open_api_schema()
    for column in version["additionalPrinterColumns"]:
        if column["jsonPath"].startswith(".metadata"):
            continue
        _at(schema, column["jsonPath"].lstrip("."))


def test_workerpool_columns_point_at_fields() -> None:
    schema = WORKERPOOL.open_api_schema()
    for column in WORKERPOOL.to_wire()["spec"]["versions"][0]["additionalPrinterColumns"]:
        if not column["jsonPath"].startswith(".metadata"):
            _at(schema, column["jsonPath"].lstrip("."))
