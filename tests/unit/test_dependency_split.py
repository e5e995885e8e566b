"""The operator runs without the `worker` extra: nothing it imports needs anthropic."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def test_operator_and_cli_do_not_import_the_claude_client() -> None:
    probe = (
        "import sys; import agentfleet.cli, agentfleet.operator.handlers; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'anthropic'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout
