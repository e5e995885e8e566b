"""What ships: the wheel (and so the operator and worker images, which install it) holds
the operator, worker and CLI code, and none of the developer-only `agentfleet.dev`."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=120,
    )
    (built,) = out.glob("agentfleet-*.whl")
    return built


def test_the_wheel_leaves_out_developer_only_code(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "agentfleet/cli.py" in names
    assert "agentfleet/operator/handlers.py" in names
    assert "agentfleet/worker/runtime.py" in names
    assert "agentfleet/operator/status.html" in names  # the status page, read at run time
    assert not [name for name in names if name.startswith("agentfleet/dev/")]


def test_the_installed_cli_has_no_dev_command(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = (
        "import agentfleet, agentfleet.cli as cli; "
        "print(agentfleet.__file__); "
        "print(sorted(g.name for g in cli.app.registered_groups))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    where, groups = result.stdout.splitlines()
    assert where.startswith(str(target)), where
    assert groups == "[]", groups
    # The source checkout has it.
    from agentfleet import cli

    assert [group.name for group in cli.app.registered_groups] == ["dev"]
