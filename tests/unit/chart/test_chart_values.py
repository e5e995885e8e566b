"""The chart's values.schema.json is generated from the values models
(`agentfleet.dev.chartvalues`, `make chart-schema`) and is current; the models' defaults
are values.yaml's, so the schema describes exactly the values the chart ships."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from agentfleet.dev import chartvalues

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "agentfleet"


def test_committed_schema_is_generated_from_the_models() -> None:
    committed = REPO_ROOT / chartvalues.SCHEMA_PATH
    assert committed.exists(), "values.schema.json is missing: run `make chart-schema`"
    assert committed.read_text() == chartvalues.schema_text(), (
        "charts/agentfleet/values.schema.json is stale: run `make chart-schema` and commit it"
    )


def test_the_models_defaults_are_values_yaml() -> None:
    shipped = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chartvalues.ChartValues.model_validate(shipped).model_dump() == shipped
    assert chartvalues.ChartValues().model_dump() == shipped


def test_every_object_in_the_schema_forbids_unknown_keys() -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, path
            for key, child in node.items():
                walk(child, f"{path}/{key}")

    walk(chartvalues.values_schema(), "")


def test_the_models_reject_typos_and_wrong_types() -> None:
    with pytest.raises(ValidationError, match="deplyo"):
        chartvalues.ChartValues.model_validate({"redis": {"deplyo": True}})
    with pytest.raises(ValidationError, match="replicaCount"):
        chartvalues.ChartValues.model_validate({"replicaCount": "two"})


def test_check_mode_reports_a_stale_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert chartvalues.main(["--root", str(tmp_path)]) == 0
    assert chartvalues.main(["--root", str(tmp_path), "--check"]) == 0
    path = tmp_path / chartvalues.SCHEMA_PATH
    path.write_text(json.dumps({"edited": "by hand"}))
    assert chartvalues.main(["--root", str(tmp_path), "--check"]) == 1
    assert "stale charts/agentfleet/values.schema.json" in capsys.readouterr().out
