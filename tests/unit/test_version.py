"""One version: pyproject.toml's. The package reports it, the default worker image and the
chart carry it (Helm needs literals in Chart.yaml, so this test keeps them equal), and the
release workflow tags images and the chart from it."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml

from agentfleet import __version__
from agentfleet.core.api.workerpool import DEFAULT_WORKER_IMAGE

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_every_place_carries_pyprojects_version() -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert __version__ == version
    assert f"ghcr.io/agentfleet/agentfleet-worker:{version}" == DEFAULT_WORKER_IMAGE
    chart = yaml.safe_load((REPO / "charts" / "agentfleet" / "Chart.yaml").read_text())
    assert (chart["version"], chart["appVersion"]) == (version, version)
    workflow = (REPO / ".github" / "workflows" / "release.yml").read_text()
    assert "scripts/version.sh" in workflow, "the release reads the version from one place"
