"""The `claude-code` runtime: Claude Code's agent loop (`claude-agent-sdk`), agentfleet's tools.

Claude Code (Anthropic's proprietary CLI, bundled in the SDK's wheel and used under
Anthropic's terms) runs as a subprocess per agent run, with:

- **no built-in tool** (`tools=[]`: no Bash, Read, Write, Edit, web or agent tools) and
  permission mode `dontAsk` (whatever is not allowed is refused without a prompt), and
  agentfleet's workspace tools served to it in-process as the MCP server `agentfleet`
  (`mcp__agentfleet__read_file`, `..._write_file`, `..._run_command`, ...), the stage's
  tools only (planning and review get the read-only ones), all allowed. So the
  confinement is the builtin runtime's, tool for tool: paths resolve inside the checkout
  and commands run through the sandbox boundary (`agentfleet.worker.sandbox`);
- the stage's `submit_*` tool as **structured output** (`output_format`, a JSON schema;
  the model answers through Claude Code's `StructuredOutput` tool);
- no settings, hooks, `CLAUDE.md` or MCP configuration from anywhere (`setting_sources=[]`,
  an empty private config directory, a private working directory): repository instructions
  reach the model in the task text, from the base branch, as in the builtin runtime;
- `max_turns` and the cost cap (`max_budget_usd`) enforced by Claude Code itself, the token
  budget and the project's daily budget enforced here on every assistant message (the run
  is stopped at the next one once either is spent);
- `ANTHROPIC_BASE_URL` and the API key of the worker's client, and
  `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1` (no telemetry, update checks or probes).

The result is the builtin runtime's `AgentResult`, so stage handlers do not know which
runtime ran.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from typing import Any

import anthropic
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ClaudeSDKError,
    ResultMessage,
    SdkMcpTool,
    ToolUseBlock,
    create_sdk_mcp_server,
)

from agentfleet.core.podenv import AgentSettings
from agentfleet.core.redaction import RedactingLogger, Redactor
from agentfleet.worker.agents.loop import (
    AgentError,
    AgentResult,
    SpendGate,
    StopReason,
    ToolCallRecord,
    Usage,
)
from agentfleet.worker.agents.metrics import AgentMetrics, PoolLabels, default_metrics
from agentfleet.worker.agents.pricing import cost_usd
from agentfleet.worker.agents.tools import TOOL_ERRORS, Tool

SERVER = "agentfleet"
"""The in-process MCP server's name: tools are offered as `mcp__agentfleet__<name>`."""
TOOL_PREFIX = f"mcp__{SERVER}__"

_RESULT_STOPS: dict[str, StopReason] = {
    "error_max_turns": "max_turns",
    "error_max_budget_usd": "cost_budget",
}


class _Stop(Exception):
    """The token budget is spent: end the run at this message."""


class ClaudeCodeRunner:
    """Runs one agent through Claude Code; the same interface as `AgentRunner`."""

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        settings: AgentSettings,
        redactor: Redactor,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        metrics: AgentMetrics | None = None,
        pool: PoolLabels = ("", ""),
        budget: SpendGate | None = None,
        cli_path: str | None = None,
    ) -> None:
        self.client = client
        """Only its API key and base URL are used: Claude Code makes the calls."""
        self.settings = settings
        self.redactor = redactor
        self.budget = budget
        self.pool = pool
        self.metrics = metrics or default_metrics()
        self.log = RedactingLogger(logger or logging.getLogger("agentfleet.agents"), redactor)
        self.cli_path = cli_path
        """None: the CLI bundled in the SDK's wheel."""

    def _mcp_tool(self, tool: Tool, result: AgentResult) -> SdkMcpTool[Any]:
        async def handle(arguments: dict[str, Any]) -> dict[str, Any]:
            ok = False
            try:
                output = await tool.run(arguments)
                ok = True
            except TOOL_ERRORS as exc:
                output = str(exc)
            record = ToolCallRecord(tool.name, self.redactor.redact_data(arguments), ok)
            result.tool_calls.append(record)
            self.log.debug("tool %s(%s) ok=%s", tool.name, json.dumps(record.input)[:500], ok)
            answer: dict[str, Any] = {
                "content": [{"type": "text", "text": self.redactor.redact(output)}]
            }
            if not ok:
                answer["is_error"] = True
            return answer

        return SdkMcpTool(tool.name, tool.description, tool.input_schema, handle)

    def _options(
        self,
        system: str,
        tools: Sequence[Tool],
        submit: Tool | None,
        private: str,
        result: AgentResult,
    ) -> ClaudeAgentOptions:
        server = create_sdk_mcp_server(SERVER, tools=[self._mcp_tool(t, result) for t in tools])
        api_key = self.client.api_key or ""
        env = {
            "ANTHROPIC_API_KEY": api_key,
            "ANTHROPIC_BASE_URL": str(self.client.base_url).rstrip("/"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CONFIG_DIR": private,
            "HOME": private,
        }
        return ClaudeAgentOptions(
            tools=[],
            mcp_servers={SERVER: server},
            strict_mcp_config=True,
            allowed_tools=[TOOL_PREFIX + tool.name for tool in tools],
            # Anything not allowed above is refused without asking (nobody could answer).
            permission_mode="dontAsk",
            system_prompt=system,
            model=self.settings.model,
            max_turns=self.settings.max_turns,
            max_budget_usd=self.settings.cost_budget_usd,
            output_format=(
                {"type": "json_schema", "schema": submit.input_schema} if submit else None
            ),
            setting_sources=[],
            cwd=private,
            env=env,
            cli_path=self.cli_path,
            stderr=lambda line: self.log.debug("claude: %s", line),
        )

    async def run(self, system: str, task: str, tools: Sequence[Tool]) -> AgentResult:
        submit = next((tool for tool in tools if tool.terminal), None)
        working = [tool for tool in tools if not tool.terminal]
        result = AgentResult(stop_reason="max_turns", turns=0, usage=Usage())
        seen: set[str] = set()
        ended: list[ResultMessage] = []
        model = self.settings.model
        with tempfile.TemporaryDirectory(prefix="agentfleet-claude-") as private:
            options = self._options(self.redactor.redact(system), working, submit, private, result)
            if self.budget is not None:
                await self.budget.check()
            try:
                # The client, not `query()`: leaving its context closes the MCP server and
                # waits for the CLI to exit (terminating it after a grace period), however
                # the run ends. Closing `query()`'s generator early (a spent token budget)
                # leaves its inner generator, and so the CLI, to the garbage collector: the
                # CLI was still writing into `private` while it was being removed.
                async with ClaudeSDKClient(options=options) as claude:
                    await claude.query(self.redactor.redact(task))
                    async for message in claude.receive_response():
                        if isinstance(message, AssistantMessage):
                            await self._assistant(message, result, seen)
                        elif isinstance(message, ResultMessage):
                            ended.append(message)
                            await self._finish(message, result, submit is not None)
            except _Stop:
                result.stop_reason = "token_budget"
            except ClaudeSDKError as exc:
                # After an error result (max turns, max budget) the CLI also exits 1, which
                # the SDK may raise: the result already said how the run ended.
                if not ended:
                    raise AgentError(f"Claude Code failed: {exc}") from exc
        self.metrics.runs.labels(model=model, stop_reason=result.stop_reason).inc()
        self.log.info(
            "claude-code run ended: %s after %d turns, %d tokens, $%.4f",
            result.stop_reason,
            result.turns,
            result.usage.total,
            result.cost_usd,
        )
        return result

    async def _assistant(
        self, message: AssistantMessage, result: AgentResult, seen: set[str]
    ) -> None:
        if message.error is not None:
            raise AgentError(f"model call failed in Claude Code: {message.error}")
        texts = [getattr(block, "text", "") for block in message.content]
        if any(texts):
            result.final_text = "\n".join(text for text in texts if text)
        for block in message.content:
            if (
                isinstance(block, ToolUseBlock)
                and not block.name.startswith(TOOL_PREFIX)
                and block.name != "StructuredOutput"
            ):
                # Not ours: Claude Code refuses it (no built-in tools); recorded as failed.
                name, arguments = block.name, self.redactor.redact_data(block.input)
                result.tool_calls.append(ToolCallRecord(name, arguments, False))
        key = message.message_id or str(id(message))
        if key in seen:
            return  # one model response, delivered as several messages (one per block)
        seen.add(key)
        result.turns += 1
        usage = message.usage or {}
        values = {
            name: int(usage.get(name) or 0)
            for name in (
                "input_tokens",
                "output_tokens",
                "cache_creation_input_tokens",
                "cache_read_input_tokens",
            )
        }
        # As streamed, a message's usage may still lack most of its output tokens: the
        # result message's totals replace these figures at the end (`_finish`).
        for name, value in values.items():
            setattr(result.usage, name, getattr(result.usage, name) + value)
        model = self.settings.model
        self.metrics.calls.labels(model=model, outcome="ok").inc()
        cost = cost_usd(model, *values.values()) or 0.0
        result.cost_usd += cost
        if self.budget is not None:
            await self.budget.record(sum(values.values()), cost)
            await self.budget.check()
        if result.usage.total >= self.settings.token_budget:
            raise _Stop

    async def _finish(self, message: ResultMessage, result: AgentResult, submits: bool) -> None:
        """The run's totals from Claude Code's result (what the budget and metrics were told
        on the way is topped up to them), and how it ended."""
        streamed_tokens, streamed_cost = result.usage.total, result.cost_usd
        final = message.usage or {}
        totals = Usage(
            **{
                name: int(final.get(name) or 0)
                for name in (
                    "input_tokens",
                    "output_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                )
            }
        )
        if totals.total >= streamed_tokens:
            result.usage = totals
        if message.total_cost_usd is not None:
            result.cost_usd = max(result.cost_usd, message.total_cost_usd)
        self.metrics.record_usage(
            self.settings.model,
            result.usage.input_tokens,
            result.usage.output_tokens,
            result.usage.cache_creation_input_tokens,
            result.usage.cache_read_input_tokens,
        )
        if self.budget is not None:
            extra_tokens = max(0, result.usage.total - streamed_tokens)
            extra_cost = max(0.0, result.cost_usd - streamed_cost)
            if extra_tokens or extra_cost:
                await self.budget.record(extra_tokens, extra_cost, turns=0)
        if message.result:
            result.final_text = message.result
        stop = _RESULT_STOPS.get(message.subtype)
        if stop is not None:
            result.stop_reason = stop
            return
        if message.is_error:
            status = message.api_error_status
            detail = "; ".join(message.errors or []) or message.result or message.subtype
            raise AgentError(f"Claude Code ended with an error (status {status}): {detail}")
        if submits and isinstance(message.structured_output, dict):
            result.submission = message.structured_output
            result.stop_reason = "submitted"
        else:
            result.stop_reason = "end_turn"
