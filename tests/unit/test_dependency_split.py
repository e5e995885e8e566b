"""What each process imports: the operator runs without the `worker` extra (nothing it
imports needs anthropic), and a worker loads Claude Code's SDK only for a pool that runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def _printed(code: str) -> str:
    """What `code` prints, run in a fresh interpreter (nothing imported yet)."""
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_operator_and_cli_do_not_import_the_claude_client() -> None:
    probe = (
        "import sys; import agentfleet.cli, agentfleet.operator.handlers; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'anthropic'))"
    )
    printed = _printed(probe)
    assert printed == "[]", printed


_ENVIRONMENT = """
import sys
import anthropic
from agentfleet.core.api.workerpool import AgentRuntime
from agentfleet.core.podenv import AgentSettings, StageConfig
from agentfleet.core.redaction import Redactor
from agentfleet.worker.stages.environment import StageEnvironment
before = 'claude_agent_sdk' in sys.modules
StageEnvironment(
    config=StageConfig(),
    agent_settings=AgentSettings(model="claude-test", runtime=AgentRuntime({runtime!r})),
    model_client=anthropic.AsyncAnthropic(api_key="unused", max_retries=0),
    credentials=lambda namespace, project: None,
    redactor=Redactor([]),
)
print(before, 'claude_agent_sdk' in sys.modules)
"""


@pytest.mark.parametrize(
    ("runtime", "loaded"), [("builtin", "False False"), ("claude-code", "False True")]
)
def test_claude_code_is_loaded_at_start_up_only_by_a_pool_that_runs_it(
    runtime: str, loaded: str
) -> None:
    # claude-agent-sdk (with the MCP SDK it loads) is about a fifth of a worker's start-up
    # CPU: a builtin worker never imports it; a claude-code worker imports it when its
    # environment is built, at start-up, not in its first item's time.
    printed = _printed(_ENVIRONMENT.format(runtime=runtime))
    assert printed == loaded, printed
