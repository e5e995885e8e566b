"""The tool-use loop against the fake Messages API, with the real `anthropic` client."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import pytest
from prometheus_client import CollectorRegistry

from agentfleet.dev.testing import FakeAnthropic, Turn, call, say, scripted
from agentfleet.dev.testing.fake_anthropic import ToolCall
from agentfleet.worker.agents import (
    AgentError,
    AgentMetrics,
    AgentRunner,
    AgentSettings,
    Redactor,
    Workspace,
    WorkspaceTools,
    submit_tool,
)

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-6"
ADD_TEST = "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
ADD_CODE = "def add(a, b):\n    return a + b\n"


def runner(
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
) -> AgentRunner:
    return AgentRunner(client, settings, redactor, metrics=metrics)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_model_writes_tests_then_code_and_runs_them(
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
            call("write_file", path="tests/test_calc.py", content=ADD_TEST),
            call("write_file", path="calc.py", content=ADD_CODE),
            call("run_command", command=["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"]),
            say("Tests pass."),
        ),
    )
    tools = WorkspaceTools(workspace, settings).tools()
    result = await runner(client, settings, redactor, metrics).run(
        "You build a calculator.", "Implement add().", tools
    )

    assert result.stop_reason == "end_turn" and result.finished
    assert result.turns == 4
    assert [c.name for c in result.tool_calls] == ["write_file", "write_file", "run_command"]
    assert all(c.ok for c in result.tool_calls)
    assert (workspace.root / "calc.py").read_text() == ADD_CODE
    # The test run's output went back to the model as the last tool result.
    last_request = fake_anthropic.calls[-1].request
    tool_output = last_request["messages"][-1]["content"][0]["content"]
    assert tool_output.startswith("exit code 0") and "1 passed" in tool_output
    assert result.final_text == "Tests pass."
    usage = fake_anthropic.usage_totals()
    assert (result.usage.input_tokens, result.usage.output_tokens) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    model = {"model": MODEL}
    assert (
        sample(registry, "agentfleet_agent_tokens_total", kind="input", **model)
        == (usage["input_tokens"])
    )
    assert (
        sample(registry, "agentfleet_agent_tokens_total", kind="output", **model)
        == (usage["output_tokens"])
    )
    assert sample(registry, "agentfleet_agent_cost_usd_total", **model) == pytest.approx(
        (usage["input_tokens"] * 3 + usage["output_tokens"] * 15) / 1e6
    )
    assert sample(registry, "agentfleet_agent_runs_total", stop_reason="end_turn", **model) == 1


async def test_overload_and_rate_limits_are_retried_after_the_requested_wait(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
    registry: CollectorRegistry,
    workspace: Workspace,
) -> None:
    fake_anthropic.add_script("busy", scripted(say("ok")))
    fake_anthropic.fail_next(1, status=529, retry_after=1)
    fake_anthropic.fail_next(1, status=429, retry_after=0)
    result = await runner(client, settings, redactor, metrics).run("busy", "go", [])

    assert result.finished and result.final_text == "ok"
    assert [c.status for c in fake_anthropic.calls] == [529, 429, 200]
    overloaded = fake_anthropic.calls[0].response["error"]["type"]
    assert overloaded == "overloaded_error"
    waited = fake_anthropic.calls[1].received_at - fake_anthropic.calls[0].received_at
    assert waited >= 1.0, "the retry came before the server's retry-after"
    model = {"model": MODEL}
    assert sample(registry, "agentfleet_agent_retries_total", reason="overloaded", **model) == 1
    assert sample(registry, "agentfleet_agent_retries_total", reason="rate_limited", **model) == 1
    assert sample(registry, "agentfleet_agent_model_calls_total", outcome="ok", **model) == 1


async def test_responses_are_counted_per_pool_with_the_rate_limit_headroom(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    registry: CollectorRegistry,
) -> None:
    """The autoscaler's rate-limit signal: 429/529 answers counted per (namespace, pool),
    and the budget share the anthropic-ratelimit-* headers report."""
    now = [1_000.0]
    metrics = AgentMetrics(registry, clock=lambda: now[0])
    fake_anthropic.add_script("busy", scripted(say("ok")))
    fake_anthropic.report_rate_limit("tokens", limit=80_000, remaining=4_000)
    fake_anthropic.report_rate_limit("requests", limit=50, remaining=45)
    fake_anthropic.fail_next(1, status=429, retry_after=0)
    fake_anthropic.fail_next(1, status=529, retry_after=0)
    pooled = AgentRunner(client, settings, redactor, metrics=metrics, pool=("team-a", "dev"))
    assert (await pooled.run("busy", "go", [])).finished

    pool = {"namespace": "team-a", "pool": "dev", "model": MODEL}
    responses = "agentfleet_agent_model_responses_total"
    assert sample(registry, responses, status="rate_limited", **pool) == 1
    assert sample(registry, responses, status="overloaded", **pool) == 1
    assert sample(registry, responses, status="ok", **pool) == 1
    # The lowest budget: 4,000 of 80,000 tokens left.
    headroom = "agentfleet_agent_ratelimit_headroom"
    assert sample(registry, headroom, **pool) == pytest.approx(0.05)
    # Once the window the headers named has reset, the old reading no longer holds.
    now[0] = time.time() + 120
    assert sample(registry, headroom, **pool) == 1.0


async def test_without_rate_limit_headers_there_is_no_headroom_reading(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
    registry: CollectorRegistry,
) -> None:
    fake_anthropic.add_script("plain", scripted(say("ok")))
    await runner(client, settings, redactor, metrics).run("plain", "go", [])
    labels = {"namespace": "", "pool": "", "model": MODEL}
    assert sample(registry, "agentfleet_agent_model_responses_total", status="ok", **labels) == 1
    assert registry.get_sample_value("agentfleet_agent_ratelimit_headroom", labels) is None


async def test_a_retry_after_beyond_the_allowed_wait_fails_the_call_at_once(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
) -> None:
    fake_anthropic.add_script("slow", scripted(say("never")))
    fake_anthropic.fail_next(1, status=529, retry_after=600)
    patient = settings.model_copy(update={"max_retry_wait_seconds": 30})
    with pytest.raises(AgentError, match="overloaded"):
        await runner(client, patient, redactor, metrics).run("slow", "go", [])
    assert len(fake_anthropic.calls) == 1


async def test_errors_that_retrying_cannot_fix_are_not_retried(
    fake_anthropic: FakeAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
) -> None:
    wrong_key = anthropic.AsyncAnthropic(
        api_key="sk-ant-wrong-key", base_url=fake_anthropic.base_url, max_retries=0
    )
    with pytest.raises(AgentError, match="refused"):
        await runner(wrong_key, settings, redactor, metrics).run("x", "go", [])
    assert [c.status for c in fake_anthropic.calls] == [401]


async def test_token_budget_ends_the_run(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    redactor: Redactor,
    metrics: AgentMetrics,
    workspace: Workspace,
) -> None:
    turn = Turn(tool_calls=(ToolCall("list_files", {}),), input_tokens=600, output_tokens=100)
    fake_anthropic.add_script("budget", lambda conversation: turn)
    settings = AgentSettings(model=MODEL, token_budget=1500, max_tokens=4096)
    result = await runner(client, settings, redactor, metrics).run(
        "budget", "go", WorkspaceTools(workspace, settings).tools()
    )
    assert result.stop_reason == "token_budget" and not result.finished
    assert result.turns == 3
    assert result.usage.total == 2100
    # The last call could only ask for what was left of the budget.
    assert [c.request["max_tokens"] for c in fake_anthropic.calls] == [1500, 800, 100]


async def test_a_cost_cap_ends_the_run_before_the_call_that_would_pass_it(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    redactor: Redactor,
    metrics: AgentMetrics,
    registry: CollectorRegistry,
    workspace: Workspace,
) -> None:
    # claude-sonnet-4-6 at list prices: 600 input + 100 output tokens cost $0.0033.
    turn = Turn(tool_calls=(ToolCall("list_files", {}),), input_tokens=600, output_tokens=100)
    fake_anthropic.add_script("cost", lambda conversation: turn)
    settings = AgentSettings(model=MODEL, token_budget=100_000).with_budget_cap(None, 0.005)
    result = await runner(client, settings, redactor, metrics).run(
        "cost", "go", WorkspaceTools(workspace, settings).tools()
    )
    assert result.stop_reason == "cost_budget" and result.budget_exhausted
    assert (result.turns, len(fake_anthropic.calls)) == (2, 2)
    assert result.cost_usd == pytest.approx(0.0066)
    assert sample(registry, "agentfleet_agent_runs_total", model=MODEL,
                  stop_reason="cost_budget") == 1  # fmt: skip


async def test_max_turns_ends_the_run(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    redactor: Redactor,
    metrics: AgentMetrics,
    workspace: Workspace,
) -> None:
    fake_anthropic.add_script("forever", lambda conversation: call("list_files"))
    settings = AgentSettings(model=MODEL, max_turns=3)
    result = await runner(client, settings, redactor, metrics).run(
        "forever", "go", WorkspaceTools(workspace, settings).tools()
    )
    assert (result.stop_reason, result.turns, len(fake_anthropic.calls)) == ("max_turns", 3, 3)


async def test_a_submit_tool_ends_the_run_with_its_input(
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
    workspace: Workspace,
) -> None:
    plan: dict[str, Any] = {"summary": "two parts", "tasks": [{"title": "a"}, {"title": "b"}]}
    fake_anthropic.add_script(
        "planner", scripted(call("list_files", text="looking"), call("submit_plan", **plan))
    )
    submit = submit_tool(
        "submit_plan",
        "Submit the plan.",
        {"type": "object", "properties": {"summary": {"type": "string"}}},
    )
    tools = [*WorkspaceTools(workspace, settings, read_only=True).tools(), submit]
    result = await runner(client, settings, redactor, metrics).run("planner", "plan", tools)
    assert result.stop_reason == "submitted"
    assert result.submission == plan
    assert len(fake_anthropic.calls) == 2
    assert [tool["name"] for tool in fake_anthropic.calls[0].request["tools"]] == [
        "read_file",
        "list_files",
        "search",
        "submit_plan",
    ]
