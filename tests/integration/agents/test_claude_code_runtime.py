"""The claude-code runtime: the real Claude Code CLI (bundled in `claude-agent-sdk`) against
the fake Messages API, which answers it with server-sent events as the API does.

The model is scripted; everything else is real: the CLI's own agent loop, its streaming
client, the SDK's control protocol and the in-process MCP server through which it reaches
agentfleet's tools, which are its only tools.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import anthropic
import pytest
from prometheus_client import CollectorRegistry

from agentfleet.dev.testing import FakeAnthropic, call, calls, say, scripted
from agentfleet.dev.testing.fake_anthropic import ToolCall
from agentfleet.worker.agents import (
    AgentMetrics,
    AgentSettings,
    Redactor,
    Workspace,
    WorkspaceTools,
    submit_tool,
)
from agentfleet.worker.agents.claude_code import TOOL_PREFIX, ClaudeCodeRunner

pytestmark = pytest.mark.integration

ADD_TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
ADD_CODE = "def add(a, b):\n    return a + b\n"
PLAN_SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "tasks": {"type": "array"}},
    "required": ["summary", "tasks"],
}


def runner(
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
) -> ClaudeCodeRunner:
    return ClaudeCodeRunner(client, settings, redactor, metrics=metrics)


def running_children() -> list[str]:
    """The command lines of this process's children that are still running (not zombies)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue  # gone meanwhile
        state, parent = fields[0], int(fields[1])
        if parent == os.getpid() and state != "Z":
            found.append(cmdline)
    return found


def tool_results(fake: FakeAnthropic) -> list[dict[str, object]]:
    """Every tool_result Claude Code sent back, in order."""
    last = fake.calls[-1].request["messages"]
    found = []
    for message in last:
        if message["role"] == "user" and isinstance(message["content"], list):
            found += [b for b in message["content"] if b.get("type") == "tool_result"]
    return found


async def test_claude_code_works_only_through_agentfleets_tools(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
    registry: CollectorRegistry,
    workspace: Workspace,
) -> None:
    fake_anthropic.add_script(
        "calculator",
        scripted(
            call("write_file", text="Tests first.", path="tests/test_calc.py", content=ADD_TEST),
            call("write_file", path="calc.py", content=ADD_CODE),
            call("run_command", command=["python", "-m", "pytest", "-q"]),
            # What a prompt injection would ask for: Claude Code's own tools.
            calls(
                ToolCall("Bash", {"command": "cat /etc/passwd; env"}),
                ToolCall("Read", {"file_path": "/etc/passwd"}),
                ToolCall("Write", {"file_path": "/tmp/pwned", "content": "x"}),
                ToolCall("WebFetch", {"url": "http://169.254.169.254/", "prompt": "x"}),
            ),
            say("Added add() with a passing test."),
        ),
    )
    result = await runner(client, settings, redactor, metrics).run(
        "You write a calculator.", "Implement add", WorkspaceTools(workspace, settings).tools()
    )

    assert result.stop_reason == "end_turn" and result.finished
    assert result.final_text == "Added add() with a passing test."
    assert (workspace.root / "calc.py").read_text() == ADD_CODE
    assert [(c.name, c.ok) for c in result.tool_calls] == [
        ("write_file", True),
        ("write_file", True),
        ("run_command", True),
        ("Bash", False),
        ("Read", False),
        ("Write", False),
        ("WebFetch", False),
    ]
    assert not Path("/tmp/pwned").exists()  # noqa: ASYNC240
    results = tool_results(fake_anthropic)
    assert "1 passed" in json.dumps(results[2])
    refused = json.dumps(results[3:])
    assert "root:x:0" not in refused and all(r.get("is_error") for r in results[3:])

    # Claude Code was offered agentfleet's tools and nothing else, and streamed every call.
    for recorded in fake_anthropic.calls:
        offered = {tool["name"] for tool in recorded.request["tools"]}
        assert offered == {
            TOOL_PREFIX + tool
            for tool in (
                "read_file",
                "list_files",
                "search",
                "write_file",
                "edit_file",
                "run_command",
            )
        }
        assert recorded.request["stream"] is True
        assert recorded.request["model"] == settings.model
    paths = {(request.method, request.path) for request in fake_anthropic.received}
    assert paths <= {("POST", "/v1/messages"), ("HEAD", "/api/hello")}
    assert result.turns == len(fake_anthropic.calls) == 5
    usage = fake_anthropic.usage_totals()
    assert result.usage.input_tokens == usage["input_tokens"]
    assert (
        registry.get_sample_value(
            "agentfleet_agent_tokens_total", {"model": settings.model, "kind": "input"}
        )
        == usage["input_tokens"]
    )


async def test_the_submit_tool_is_structured_output(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
    workspace: Workspace,
) -> None:
    tasks = [{"title": "Greeting"}, {"title": "Farewell"}]
    fake_anthropic.add_script(
        "planner",
        scripted(
            call("list_files", text="Looking."), call("submit_plan", summary="Two", tasks=tasks)
        ),
    )
    tools = [
        *WorkspaceTools(workspace, settings, read_only=True).tools(),
        submit_tool("submit_plan", "Submit the plan.", PLAN_SCHEMA),
    ]
    result = await runner(client, settings, redactor, metrics).run("planner", "plan", tools)
    assert result.stop_reason == "submitted"
    assert result.submission == {"summary": "Two", "tasks": tasks}
    offered = {tool["name"] for tool in fake_anthropic.calls[-1].request["tools"]}
    assert "StructuredOutput" in offered and TOOL_PREFIX + "write_file" not in offered


@pytest.mark.parametrize(
    ("limits", "stop"),
    [
        ({"max_turns": 2}, "max_turns"),
        ({"token_budget": 3000}, "token_budget"),
        ({"cost_budget_usd": 0.005}, "cost_budget"),
    ],
)
async def test_limits_end_the_run(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
    workspace: Workspace,
    limits: dict[str, object],
    stop: str,
) -> None:
    fake_anthropic.add_script("forever", lambda conversation: call("list_files", path="."))
    limited = settings.model_copy(update=limits)
    before = running_children()
    result = await runner(client, limited, redactor, metrics).run(
        "forever", "loop", WorkspaceTools(workspace, limited).tools()
    )
    assert result.stop_reason == stop
    assert not result.finished
    assert len(fake_anthropic.calls) <= 10
    # However the run ended, Claude Code has exited before `run` returns: it must not go on
    # writing into its private directory as that is removed (nor outlive its run).
    assert running_children() == before


async def test_the_fake_streams_what_the_anthropic_sdk_parses(
    fake_anthropic: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    """The streaming protocol checked with the official SDK's own parser as well: text and
    tool input split across events arrive whole, with the stop reason and usage."""
    long_text = "A reply long enough to be split across several text deltas. " * 3
    fake_anthropic.add_script(
        "stream me",
        scripted(
            calls(
                ToolCall("write_file", {"path": "a.py", "content": "x = 1\n" * 20}), text=long_text
            ),
        ),
    )
    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=1000,
        system="stream me",
        messages=[{"role": "user", "content": "go"}],
        tools=[{"name": "write_file", "input_schema": {"type": "object"}}],
    ) as stream:
        events = [event.type async for event in stream]
        message = await stream.get_final_message()
    assert events.count("text") > 1 and events.count("input_json") > 1
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "text" and message.content[0].text == long_text
    tool = message.content[1]
    assert tool.type == "tool_use" and tool.input == {"path": "a.py", "content": "x = 1\n" * 20}
    assert message.usage.output_tokens > 1
    recorded = fake_anthropic.calls[-1]
    assert recorded.request["stream"] is True and recorded.status == 200
