"""The sample manifests in examples/ are valid for the models the operator uses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from agentfleet.core.api.project import ProjectSpec
from agentfleet.core.api.workerpool import WorkerPoolSpec

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MODELS: dict[str, type[BaseModel]] = {"Project": ProjectSpec, "WorkerPool": WorkerPoolSpec}


def _documents() -> list[dict[str, object]]:
    documents = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return documents


def test_examples_hold_a_project_and_a_pool_per_stage() -> None:
    kinds = [d["kind"] for d in _documents()]
    assert kinds.count("Project") >= 1
    stages = {d["spec"]["stage"] for d in _documents() if d["kind"] == "WorkerPool"}  # type: ignore[index]
    assert stages == {"genesis", "development", "content", "review"}


@pytest.mark.parametrize(
    "document",
    [d for d in _documents() if d["kind"] in MODELS],
    ids=lambda d: f"{d['kind']}/{d['metadata']['name']}",
)
def test_example_parses(document: dict[str, object]) -> None:
    assert document["apiVersion"] == "agentfleet.dev/v1alpha1"
    MODELS[str(document["kind"])].model_validate(document["spec"])
