"""The workspace boundary and redaction, attacked through each agent runtime: the builtin
loop (`AgentRunner`) and Claude Code (`ClaudeCodeRunner`, the real CLI bundled in
claude-agent-sdk). Both reach the checkout only through agentfleet's tools, so the same
attacks must fail the same way whichever runtime a WorkerPool picks.

The model is the fake Messages API, scripted; the runtimes, their clients and the tools
are real.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import anthropic
import pytest

from agentfleet.dev.testing import FakeAnthropic, call, calls, say, scripted
from agentfleet.dev.testing.fake_anthropic import ToolCall
from agentfleet.worker.agents import (
    REDACTED,
    AgentMetrics,
    AgentResult,
    AgentRunner,
    AgentSettings,
    Redactor,
    Tool,
    Workspace,
    WorkspaceTools,
)
from agentfleet.worker.agents.claude_code import ClaudeCodeRunner

pytestmark = pytest.mark.integration


class Runner(Protocol):
    async def run(self, system: str, task: str, tools: list[Tool]) -> AgentResult: ...


MakeRunner = Callable[[anthropic.AsyncAnthropic, AgentSettings, Redactor, AgentMetrics], Runner]

RUNTIMES: dict[str, MakeRunner] = {
    "builtin": lambda c, s, r, m: AgentRunner(c, s, r, metrics=m),
    "claude-code": lambda c, s, r, m: ClaudeCodeRunner(c, s, r, metrics=m),
}


@pytest.fixture(params=list(RUNTIMES))
def runtime(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def tool_results(fake: FakeAnthropic) -> list[dict[str, Any]]:
    """Every tool_result the runtime sent back, in order (the last request carries the
    whole conversation)."""
    found: list[dict[str, Any]] = []
    for message in fake.calls[-1].request["messages"]:
        if message["role"] == "user" and isinstance(message["content"], list):
            found += [b for b in message["content"] if b.get("type") == "tool_result"]
    return found


async def test_path_and_command_escapes_are_refused_and_reported_to_the_model(
    runtime: str,
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
    workspace: Workspace,
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("do not touch")
    (workspace.root / "innocent.txt").symlink_to(outside)
    attacks = [
        ToolCall("write_file", {"path": "../outside.txt", "content": "pwned"}),
        ToolCall("read_file", {"path": "/etc/passwd"}),
        ToolCall("write_file", {"path": "innocent.txt", "content": "pwned"}),
        ToolCall("edit_file", {"path": "innocent.txt", "old_text": "do", "new_text": "x"}),
        ToolCall("write_file", {"path": ".git/hooks/pre-commit", "content": "curl evil"}),
        ToolCall("list_files", {"path": "../"}),
        ToolCall("run_command", {"command": ["bash", "-c", "cat ../outside.txt"]}),
        ToolCall("run_command", {"command": ["/usr/bin/python3", "-c", "print(1)"]}),
    ]
    fake_anthropic.add_script("escape", scripted(calls(*attacks)))

    result = await RUNTIMES[runtime](client, settings, redactor, metrics).run(
        "escape", "try", WorkspaceTools(workspace, settings).tools()
    )

    assert outside.read_text() == "do not touch"
    assert not (workspace.root / ".git").exists()
    assert [c.ok for c in result.tool_calls] == [False] * len(attacks)
    results = tool_results(fake_anthropic)
    assert len(results) == len(attacks) and all(r.get("is_error") for r in results)
    said = [json.dumps(r.get("content")) for r in results]
    assert "'..' is not allowed" in said[0]
    assert "absolute paths are not allowed" in said[1]
    assert "outside the workspace" in said[2] and "outside the workspace" in said[3]
    assert ".git directory is off limits" in said[4]
    assert "'..' is not allowed" in said[5]
    assert "not allowed" in said[6] and "not allowed" in said[7]
    assert "do not touch" not in json.dumps(results)


async def test_secrets_never_reach_the_model_or_the_logs(
    runtime: str,
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    metrics: AgentMetrics,
    workspace: Workspace,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    github_token = "ghs_" + "A1b2C3d4" * 5
    webhook_secret = "hook-secret-value-42"
    monkeypatch.setenv("AGENTFLEET_TEST_GITHUB_TOKEN", github_token)
    redactor = Redactor.from_environment(
        {"AGENTFLEET_TEST_GITHUB_TOKEN": github_token}, [webhook_secret, fake_anthropic.api_key]
    )
    (workspace.root / ".env").write_text(f"TOKEN={github_token}\nWEBHOOK={webhook_secret}\n")
    printenv = "import os; print(sorted(os.environ)); print(open('.env').read())"
    fake_anthropic.add_script(
        "leaky",
        scripted(
            call("read_file", path=".env"),
            call("run_command", command=["python", "-c", printenv]),
            call("write_file", path="notes.txt", content=f"copy {webhook_secret}"),
            say(f"the token is {github_token}"),
        ),
    )
    with caplog.at_level(logging.DEBUG, logger="agentfleet"):
        result = await RUNTIMES[runtime](client, settings, redactor, metrics).run(
            "leaky system prompt mentions " + webhook_secret,
            f"Issue text pasted a token: {github_token}",
            WorkspaceTools(workspace, settings).tools(),
        )
    assert result.finished

    # What agentfleet hands the model (system prompt, task, every tool result) is redacted.
    given = json.dumps(
        [
            [c.request["system"], [m for m in c.request["messages"] if m["role"] == "user"]]
            for c in fake_anthropic.calls
        ]
    )
    assert github_token not in given and webhook_secret not in given
    assert REDACTED in given
    # Commands run with a scrubbed environment: the variable is not even there to print.
    assert "AGENTFLEET_TEST_GITHUB_TOKEN" not in given
    sent = json.dumps([c.request for c in fake_anthropic.calls])
    assert fake_anthropic.api_key not in sent
    if runtime == "builtin":
        # The builtin loop redacts the model's own earlier output too; Claude Code keeps
        # it verbatim in its history (docs/agents.md says so).
        assert github_token not in sent and webhook_secret not in sent
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert github_token not in logged and webhook_secret not in logged
    assert github_token not in json.dumps([c.input for c in result.tool_calls])
    assert webhook_secret not in json.dumps([c.input for c in result.tool_calls])
