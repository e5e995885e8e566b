"""The tool-use loop: ask the model, run the tools it calls, answer, repeat.

A run ends when the model stops calling tools, calls a terminal `submit_*` tool, or runs
out of turns or tokens. Every model call is retried on 429, 529/overloaded, 5xx and
connection errors, waiting at least what the server's `retry-after` asks for. The SDK's
own retries are switched off (`max_retries=0` on the client) so that each retry is
counted and a long retry-after gives the item back to the queue instead of blocking a
worker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anthropic

from agentfleet.core.podenv import AgentSettings
from agentfleet.core.redaction import RedactingLogger, Redactor
from agentfleet.worker.agents.metrics import AgentMetrics, PoolLabels, default_metrics
from agentfleet.worker.agents.pricing import cost_usd
from agentfleet.worker.agents.retry import RETRYABLE_STATUS, response_status, retry_delay
from agentfleet.worker.agents.tools import TOOL_ERRORS, Tool

StopReason = Literal[
    "end_turn", "submitted", "max_turns", "token_budget", "cost_budget", "max_tokens"
]
BUDGET_STOPS = frozenset({"token_budget", "cost_budget"})
"""The item's own budget ended the run: a retry would spend as much again."""


class AgentError(RuntimeError):
    """The model could not be reached or refused the request; the item should be retried."""


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    @property
    def total(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
        )


@dataclass(frozen=True)
class ToolCallRecord:
    name: str
    input: dict[str, Any]
    ok: bool


@dataclass
class AgentResult:
    stop_reason: StopReason
    turns: int
    usage: Usage
    final_text: str = ""
    submission: dict[str, Any] | None = None
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    cost_usd: float = 0.0
    """Estimated at list prices (0 for a model without a known price)."""

    @property
    def finished(self) -> bool:
        """The model ended the work itself (rather than running out of turns or tokens)."""
        return self.stop_reason in {"end_turn", "submitted"}

    @property
    def budget_exhausted(self) -> bool:
        return self.stop_reason in BUDGET_STOPS


def _reason(status: int | None) -> str:
    if status is None:
        return "connection"
    if status == 429:
        return "rate_limited"
    if status == 529:
        return "overloaded"
    return "server_error"


class SpendGate(Protocol):
    """The project's daily budget across every worker (`agentfleet.worker.budget`)."""

    async def check(self) -> None:
        """Raise `BudgetExhausted` once the project's day is spent."""

    async def record(self, tokens: int, cost_usd: float, turns: int = 1) -> None:
        """Add one model call's tokens and estimated cost to the project's day (`turns`:
        the model calls they come from; 0 for a correction of earlier figures)."""


class ModelRunner(Protocol):
    """One agent run per call: `AgentRunner` (builtin) or `ClaudeCodeRunner`."""

    settings: AgentSettings

    async def run(self, system: str, task: str, tools: Sequence[Tool]) -> AgentResult: ...


class AgentRunner:
    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        settings: AgentSettings,
        redactor: Redactor,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        metrics: AgentMetrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        pool: PoolLabels = ("", ""),
        budget: SpendGate | None = None,
    ) -> None:
        self.client = client
        self.settings = settings
        self.redactor = redactor
        self.budget = budget
        """Checked before every model call (a spent day stops the run by raising
        `BudgetExhausted`: the worker releases the item) and told what each call used."""
        self.pool = pool
        """(namespace, pool) the responses are counted under, for the autoscaler."""
        self.log = RedactingLogger(logger or logging.getLogger("agentfleet.agents"), redactor)
        self.metrics = metrics or default_metrics()
        self._sleep = sleep
        self._random = random.Random()

    async def run(self, system: str, task: str, tools: Sequence[Tool]) -> AgentResult:
        by_name = {tool.name: tool for tool in tools}
        specs = [tool.spec() for tool in tools]
        system = self.redactor.redact(system)
        messages: list[dict[str, Any]] = [{"role": "user", "content": self.redactor.redact(task)}]
        result = AgentResult(stop_reason="max_turns", turns=0, usage=Usage())
        model = self.settings.model
        while result.turns < self.settings.max_turns:
            remaining = self.settings.token_budget - result.usage.total
            if remaining <= 0:
                result.stop_reason = "token_budget"
                break
            cap = self.settings.cost_budget_usd
            if cap is not None and result.cost_usd >= cap:
                result.stop_reason = "cost_budget"
                break
            if self.budget is not None:
                await self.budget.check()
            response = await self._create(
                system, messages, specs, min(self.settings.max_tokens, remaining)
            )
            result.turns += 1
            tokens, cost = self._account(result.usage, response.usage)
            result.cost_usd += cost
            if self.budget is not None:
                await self.budget.record(tokens, cost)
            content = [_block_dict(block) for block in response.content]
            # The history goes back to the model on every call: a secret the model was
            # somehow given or guessed must not be repeated back to it either.
            messages.append({"role": "assistant", "content": self.redactor.redact_data(content)})
            texts = [block["text"] for block in content if block["type"] == "text"]
            if texts:
                result.final_text = "\n".join(texts)
            calls = [block for block in content if block["type"] == "tool_use"]
            if response.stop_reason == "max_tokens" and not calls:
                result.stop_reason = "max_tokens"
                break
            if not calls:
                result.stop_reason = "end_turn"
                break
            answers = []
            for block in calls:
                answer, submitted = await self._call_tool(by_name, block, result)
                answers.append(answer)
                if submitted:
                    result.submission = block["input"]
            if result.submission is not None:
                result.stop_reason = "submitted"
                break
            messages.append({"role": "user", "content": answers})
        self.metrics.runs.labels(model=model, stop_reason=result.stop_reason).inc()
        self.log.info(
            "agent run ended: %s after %d turns, %d tokens, $%.4f",
            result.stop_reason,
            result.turns,
            result.usage.total,
            result.cost_usd,
        )
        return result

    async def _call_tool(
        self, by_name: dict[str, Tool], block: dict[str, Any], result: AgentResult
    ) -> tuple[dict[str, Any], bool]:
        name, arguments = block["name"], block["input"]
        tool = by_name.get(name)
        ok = False
        if tool is None:
            output = f"unknown tool {name!r}"
        else:
            try:
                output = await tool.run(arguments)
                ok = True
            except TOOL_ERRORS as exc:
                output = str(exc)
        record = ToolCallRecord(name=name, input=self.redactor.redact_data(arguments), ok=ok)
        result.tool_calls.append(record)
        self.log.debug("tool %s(%s) ok=%s", name, json.dumps(record.input)[:500], ok)
        answer: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": block["id"],
            "content": self.redactor.redact(output),
        }
        if not ok:
            answer["is_error"] = True
        return answer, ok and tool is not None and tool.terminal

    def _account(self, total: Usage, usage: Any) -> tuple[int, float]:
        """Add one call's usage to the run's and the metrics; its tokens and estimated
        cost (0 for a model without a known price)."""
        values = {
            "input_tokens": usage.input_tokens or 0,
            "output_tokens": usage.output_tokens or 0,
            "cache_creation_input_tokens": getattr(usage, "cache_creation_input_tokens", 0) or 0,
            "cache_read_input_tokens": getattr(usage, "cache_read_input_tokens", 0) or 0,
        }
        for key, value in values.items():
            setattr(total, key, getattr(total, key) + value)
        self.metrics.record_usage(
            self.settings.model,
            values["input_tokens"],
            values["output_tokens"],
            values["cache_creation_input_tokens"],
            values["cache_read_input_tokens"],
        )
        cost = cost_usd(
            self.settings.model,
            values["input_tokens"],
            values["output_tokens"],
            values["cache_creation_input_tokens"],
            values["cache_read_input_tokens"],
        )
        return sum(values.values()), cost or 0.0

    async def _create(
        self,
        system: str,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        max_tokens: int,
    ) -> Any:
        model = self.settings.model
        retry = 0
        while True:
            started = time.monotonic()
            try:
                # The raw response carries the rate-limit headers as well as the message.
                raw = await self.client.messages.with_raw_response.create(
                    model=model,
                    max_tokens=max_tokens,
                    system=system,
                    messages=messages,  # type: ignore[arg-type]
                    tools=tools,  # type: ignore[arg-type]
                )
                response = await raw.parse()
            except (anthropic.APIStatusError, anthropic.APIConnectionError) as exc:
                status = exc.status_code if isinstance(exc, anthropic.APIStatusError) else None
                headers = (
                    dict(exc.response.headers) if isinstance(exc, anthropic.APIStatusError) else {}
                )
                self.metrics.record_response(self.pool, model, response_status(status), headers)
                if status is not None and status not in RETRYABLE_STATUS:
                    self.metrics.calls.labels(model=model, outcome="failed").inc()
                    raise AgentError(f"model call refused: {exc}") from exc
                delay = retry_delay(
                    retry,
                    headers,
                    time.time(),
                    self.settings.retry_base_delay_seconds,
                    self.settings.max_retry_wait_seconds,
                    self._random.random(),
                )
                if (
                    retry >= self.settings.max_retries
                    or delay > self.settings.max_retry_wait_seconds
                ):
                    self.metrics.calls.labels(model=model, outcome="failed").inc()
                    raise AgentError(
                        f"model call failed after {retry} retries ({_reason(status)}, next wait "
                        f"{delay:.1f}s): {exc}"
                    ) from exc
                self.metrics.calls.labels(model=model, outcome="retried").inc()
                self.metrics.retries.labels(model=model, reason=_reason(status)).inc()
                self.log.warning(
                    "model call %s (%s); retry %d in %.2fs",
                    _reason(status),
                    status,
                    retry + 1,
                    delay,
                )
                await self._sleep(delay)
                retry += 1
                continue
            self.metrics.calls.labels(model=model, outcome="ok").inc()
            self.metrics.call_seconds.labels(model=model).observe(time.monotonic() - started)
            self.metrics.record_response(self.pool, model, "ok", raw.headers)
            return response


def _block_dict(block: Any) -> dict[str, Any]:
    """The request form of a response content block (what goes back in `messages`)."""
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    dumped: dict[str, Any] = block.model_dump(exclude_none=True)
    return dumped
