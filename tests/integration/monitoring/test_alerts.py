"""The shipped alerting rules, checked and unit-tested by the real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agentfleet.dev.localenv import find_binary

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
RULES = REPO / "charts" / "agentfleet" / "files" / "alerts.yaml"
CASES = Path(__file__).with_name("alerts_test.yaml")


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(find_binary("promtool")), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_rules_are_valid() -> None:
    result = _promtool("check", "rules", str(RULES), cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_fire_exactly_as_specified(tmp_path: Path) -> None:
    shutil.copy(RULES, tmp_path / "alerts.yaml")
    shutil.copy(CASES, tmp_path / CASES.name)
    result = _promtool("test", "rules", CASES.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
