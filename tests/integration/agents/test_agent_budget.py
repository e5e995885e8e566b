"""A project's daily budget held across workers: the agent runner adds every model call's
tokens and cost to the project's day in the queue's store (real Redis) and checks it
before the next call; the worker runtime releases an item whose project's day is spent
(not failed, not lost), and another worker takes it once the day turns."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import pytest

from agentfleet.core.api import Stage
from agentfleet.core.podenv import WorkerSettings
from agentfleet.core.queue import BudgetExhausted, ManualClock, WorkItem, WorkQueue
from agentfleet.dev.localenv import RedisServer
from agentfleet.dev.testing import FakeAnthropic, call, scripted
from agentfleet.worker.agents import AgentMetrics, AgentRunner, AgentSettings, Redactor
from agentfleet.worker.agents.tools import Tool
from agentfleet.worker.budget import ProjectBudget
from agentfleet.worker.handlers import HandlerContext, HandlerResult
from agentfleet.worker.metrics import WorkerMetrics
from agentfleet.worker.runtime import Worker

pytestmark = pytest.mark.integration

NAMESPACE = "team-a"


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[WorkQueue]:
    made = WorkQueue.from_url(
        redis_server.url,
        prefix=f"t{uuid.uuid4().hex[:10]}",
        clock=ManualClock(),
        poll_interval=0.05,
    )
    yield made
    await made.close()


async def test_the_runner_stops_before_the_call_that_would_exceed_the_day(
    queue: WorkQueue,
    fake_anthropic: FakeAnthropic,
    client: anthropic.AsyncAnthropic,
    settings: AgentSettings,
    redactor: Redactor,
    metrics: AgentMetrics,
) -> None:
    # Two workers' agents of one project share the day: the first call's tokens are
    # counted, and the budget (lower than one call's use) is spent for both.
    fake_anthropic.add_script(
        "budget", scripted(call("list_files", path="."), call("list_files", path="."))
    )
    await queue.set_budget(NAMESPACE, "shop", tokens_per_day=10, cost_per_day_usd=None)
    budget = ProjectBudget(queue, NAMESPACE, "shop")
    runner = AgentRunner(client, settings, redactor, metrics=metrics, budget=budget)
    tools: list[Tool] = []

    with pytest.raises(BudgetExhausted, match=r"shop's daily budget is spent: \d+ tokens used"):
        await runner.run("You keep a budget.", "budget: list the files", tools)

    assert len(fake_anthropic.calls) == 1
    day = await queue.day_spend(NAMESPACE, "shop")
    assert day.tokens > 10 and day.cost_usd > 0
    other = AgentRunner(client, settings, redactor, metrics=metrics, budget=budget)
    with pytest.raises(BudgetExhausted):
        await other.run("You keep a budget.", "budget: again", tools)
    assert len(fake_anthropic.calls) == 1  # the second run never called the model


class SpendingHandler:
    """Stands in for a stage: spends the project's day through its context, as the agent
    runner does, and finds it spent at its next check."""

    def __init__(self) -> None:
        self.calls = 0
        self.called = asyncio.Event()

    async def handle(self, item: WorkItem, context: HandlerContext) -> HandlerResult:
        self.calls += 1
        self.called.set()
        if context.budget is None:
            raise RuntimeError("the runtime gave the handler no budget")
        await context.budget.check()
        await context.budget.record(5_000, 1.0)
        await context.budget.check()
        return HandlerResult.succeeded()


def worker(queue: WorkQueue, tmp_path: Path, name: str, handler: SpendingHandler) -> Worker:
    settings = WorkerSettings(
        namespace=NAMESPACE,
        pool="devs",
        stage=Stage.DEVELOPMENT,
        pod_name=name,
        metrics_port=0,
        heartbeat_interval=2.0,
        heartbeat_timeout=60.0,
        workspace_root=tmp_path / name,
    )
    metrics = WorkerMetrics(NAMESPACE, "devs", name, Stage.DEVELOPMENT)
    return Worker(settings, queue, handler, metrics)


async def test_a_spent_item_is_released_and_runs_again_the_next_day(
    queue: WorkQueue, tmp_path: Path
) -> None:
    await queue.set_budget(NAMESPACE, "shop", tokens_per_day=None, cost_per_day_usd=0.5)
    item = WorkItem(
        id="shop/issue-1/development",
        namespace=NAMESPACE,
        project="shop",
        stage=Stage.DEVELOPMENT,
        payload={"issue": 1},
    )
    await queue.enqueue(item)
    handler = SpendingHandler()
    first = worker(queue, tmp_path, "dev-1", handler)
    task = asyncio.create_task(first.run())
    try:
        async with asyncio.timeout(10):
            await handler.called.wait()
            while (await queue.stats(NAMESPACE, "shop")).stages[Stage.DEVELOPMENT].in_flight:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        # Released, not failed: waiting again, no attempt used, nothing completed.
        stage = (await queue.stats(NAMESPACE, "shop")).stages[Stage.DEVELOPMENT]
        assert (stage.pending, stage.retrying, stage.completed) == (1, 0, 0)
        assert await queue.completion(NAMESPACE, item.id) is None
        assert (
            first.metrics.registry.get_sample_value(
                "agentfleet_worker_items_processed_total",
                {
                    "namespace": NAMESPACE,
                    "pool": "devs",
                    "stage": "development",
                    "outcome": "budget_exhausted",
                },
            )
            == 1
        )
        await asyncio.sleep(0.3)
        assert handler.calls == 1  # the queue delivers none of the project's items today
    finally:
        first.request_stop()
        await task

    clock = queue.clock
    assert isinstance(clock, ManualClock)
    clock.advance(86400)
    fresh = SpendingHandler()
    second = worker(queue, tmp_path, "dev-2", fresh)
    task = asyncio.create_task(second.run())
    try:
        async with asyncio.timeout(10):
            await fresh.called.wait()
    finally:
        second.request_stop()
        await task
    assert fresh.calls == 1
