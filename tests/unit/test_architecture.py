"""The import contracts in pyproject.toml (run by `make lint`) hold for the package, and
they are not blind: a copy of the package with one layer crossed is refused."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint(
    tmp_path: Path, crossing: tuple[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """lint-imports over a copy of the package, with `crossing` = (module file, import
    line) added when given."""
    source = tmp_path / "src"
    shutil.copytree(
        REPO / "operator" / "agentfleet",
        source / "agentfleet",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    if crossing is not None:
        path, line = crossing
        target = source / "agentfleet" / path
        target.write_text(target.read_text() + f"\n{line}\n")
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(source)},
        cwd=tmp_path,
    )


def test_the_package_keeps_every_contract(tmp_path: Path) -> None:
    result = lint(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("crossing", "contract"),
    [
        (
            ("core/podenv.py", "import agentfleet.operator.kube  # noqa"),
            "The shared core imports no process",
        ),
        (
            ("worker/runtime.py", "import agentfleet.operator.kube  # noqa"),
            "The operator and a worker Pod share only the core",
        ),
        (
            ("operator/children.py", "import agentfleet.worker.stages  # noqa"),
            "The operator and a worker Pod share only the core",
        ),
        (
            ("core/pipeline/ids.py", "import agentfleet.core.queue.workqueue  # noqa"),
            "The pure core (api, pipeline, redaction) does no I/O",
        ),
        (
            ("operator/children.py", "import agentfleet.dev.localenv.stack  # noqa"),
            "Nothing that runs in a cluster depends on developer-only code",
        ),
        (
            ("worker/stages/base.py", "import kubernetes.client  # noqa"),
            "A worker Pod never reaches the Kubernetes API",
        ),
        (
            ("operator/kube.py", "import anthropic  # noqa"),
            "The operator does not run agents",
        ),
        (
            ("ctl/views.py", "import redis  # noqa"),
            "The fleet CLI reaches the cluster through the API server only",
        ),
        (
            ("worker/stages/master/aggregate.py", "import agentfleet.core.queue.workqueue  # noqa"),
            "A master issue's rules (parse, validate, aggregate) are pure",
        ),
        (
            ("core/queue/workqueue.py", "import github  # noqa"),
            "The queue knows nothing of GitHub, the model or Kubernetes",
        ),
        (
            ("operator/autoscaler/decision.py", "import agentfleet.operator.kube  # noqa"),
            "The operator's pure cores do no I/O: no API client, kopf, Redis or HTTP",
        ),
        (
            ("core/github/events.py", "import lightkube  # noqa"),
            "Only the operator's adapters hold its API client",
        ),
        (
            ("core/fleetapi.py", "import redis  # noqa"),
            "The read API's wire models (core.fleetapi), shared by operator and CLI, do no I/O",
        ),
    ],
)
def test_a_crossed_layer_is_caught(
    tmp_path: Path, crossing: tuple[str, str], contract: str
) -> None:
    result = lint(tmp_path, crossing)
    assert result.returncode != 0, result.stdout
    report = " ".join(result.stdout.split())  # contract names wrap in the report
    assert f"{contract} BROKEN" in report, result.stdout
