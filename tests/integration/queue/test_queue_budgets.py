"""Daily budgets across every worker, in the queue's store (real Redis, a manual clock):
what the agents spent adds up per project and UTC day, a project that has spent either
limit gets no more deliveries (its items wait, none is lost), other projects are not
affected, and the next UTC day delivers again."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.queue import ManualClock, Subscription, WorkItem, WorkQueue

pytestmark = pytest.mark.integration

NAMESPACE = "team-a"
DEV = Subscription(namespace=NAMESPACE, stage=Stage.DEVELOPMENT, consumer="dev-1")


def item(project: str, number: int) -> WorkItem:
    return WorkItem(
        id=f"{project}/issue-{number}/development",
        namespace=NAMESPACE,
        project=project,
        stage=Stage.DEVELOPMENT,
        payload={"issue": number},
    )


async def test_spend_adds_up_per_project_and_day(queue: WorkQueue, clock: ManualClock) -> None:
    await queue.set_budget(NAMESPACE, "shop", tokens_per_day=1000, cost_per_day_usd=None)

    await queue.spend(NAMESPACE, "shop", 400, 0.25)
    both = await asyncio.gather(
        queue.spend(NAMESPACE, "shop", 300, 0.5), queue.spend(NAMESPACE, "blog", 50, 0.01)
    )
    today = await queue.day_spend(NAMESPACE, "shop")

    assert (today.tokens, today.cost_usd, today.tokens_per_day) == (700, 0.75, 1000)
    assert today.day == clock().date() and today.exhausted is None
    assert today.resets_at == datetime(2030, 1, 2, tzinfo=UTC)
    assert (both[1].tokens, both[1].tokens_per_day) == (50, None)
    clock.advance(86400)
    assert (await queue.day_spend(NAMESPACE, "shop")).tokens == 0


async def test_a_spent_project_waits_until_the_day_turns_and_others_go_on(
    queue: WorkQueue, clock: ManualClock
) -> None:
    await queue.set_budget(NAMESPACE, "shop", tokens_per_day=None, cost_per_day_usd=2.0)
    await queue.enqueue(item("shop", 1), item("shop", 2))
    shop = await queue.claim(DEV)
    assert shop is not None and shop.item.project == "shop"

    spent = await queue.spend(NAMESPACE, "shop", 90_000, 2.5)
    assert spent.exhausted == "$2.50 spent today, budgets.costPerDayUsd=2"
    # The running item stops at its next model call and is handed back, not lost.
    assert await queue.release(shop)
    assert await queue.claim(DEV) is None
    stats = await queue.stats(NAMESPACE, "shop")
    assert stats.stages[Stage.DEVELOPMENT].pending == 2
    # Another project's work goes on.
    await queue.enqueue(item("blog", 1))
    blog = await queue.claim(DEV)
    assert blog is not None and blog.item.project == "blog"
    await queue.complete(blog, follow_ups=[])

    # 00:00 UTC: a new day with nothing spent, and the waiting items are delivered.
    clock.advance((spent.resets_at - clock()).total_seconds())
    again = await queue.claim(DEV)
    assert again is not None and again.item.id == shop.item.id


async def test_limits_can_be_lifted_and_tokens_count_too(queue: WorkQueue) -> None:
    await queue.set_budget(NAMESPACE, "shop", tokens_per_day=100, cost_per_day_usd=None)
    await queue.enqueue(item("shop", 1))
    spent = await queue.spend(NAMESPACE, "shop", 100, 0.0)

    assert spent.exhausted == "100 tokens used today, budgets.tokensPerDay=100"
    assert await queue.claim(DEV) is None
    await queue.set_budget(NAMESPACE, "shop", tokens_per_day=None, cost_per_day_usd=None)
    lifted = await queue.claim(DEV)
    assert lifted is not None
    assert (await queue.day_spend(NAMESPACE, "shop")).day == date(2030, 1, 1)
