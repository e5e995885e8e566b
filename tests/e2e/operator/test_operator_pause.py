"""Emergency stop: `paused: true` holds the Project's queued work in the real Redis queue
(nothing delivered, nothing dropped), scales its pools to zero, and undoing it brings
both back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.queue import Subscription, WorkItem, WorkQueue
from agentfleet.dev.localenv import RedisServer
from agentfleet.dev.localenv.waiting import wait_for

if TYPE_CHECKING:
    from .conftest import Kubectl, Objects

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
RUNNING_REPLICAS = {
    "widgets-genesis": 1,
    "widgets-dev-tdd": 1,
    "widgets-content": 0,
    "platform-review": 1,
}


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[WorkQueue]:
    work_queue = WorkQueue.from_url(redis_server.url)
    yield work_queue
    await work_queue.close()


def _replicas(objects: Objects) -> dict[str, Any]:
    return {name: d["spec"]["replicas"] for name, d in objects.deployments().items()}


def _phase(objects: Objects, phase: str) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (p := objects.project("widgets"))
            and (p.get("status") or {}).get("phase") == phase
            and p
        ),
        20,
        f"Project widgets {phase}",
    )


async def test_pause_holds_work_and_scales_pools_to_zero(
    objects: Objects, kubectl: Kubectl, queue: WorkQueue
) -> None:
    ns = objects.namespace
    for name in ("secrets.yaml", "project.yaml", "workerpools.yaml"):
        kubectl("apply", "-n", ns, "-f", str(EXAMPLES / name))
    wait_for(lambda: _replicas(objects) == RUNNING_REPLICAS, 30, "the example Deployments")
    items = [
        WorkItem(id=f"issue-{n}", namespace=ns, project="widgets", stage=Stage.DEVELOPMENT)
        for n in range(5)
    ]
    await queue.enqueue(*items)
    _phase(objects, "Active")
    wait_for(
        lambda: (objects.project("widgets") or {})["status"].get("queued") == 5,
        20,
        "5 queued items in the Project status",
    )

    kubectl("patch", "-n", ns, "project/widgets", "--type=merge", "-p", '{"spec":{"paused":true}}')
    wait_for(
        lambda: _replicas(objects) == dict.fromkeys(RUNNING_REPLICAS, 0),
        20,
        "every pool serving only the paused Project at zero replicas",
    )
    project = _phase(objects, "Paused")
    assert "widgets" in await queue.held_projects(ns)
    stats = await queue.stats(ns, "widgets")
    assert stats.stages[Stage.DEVELOPMENT].held == 5
    assert stats.stages[Stage.DEVELOPMENT].pending == 0
    # Held means not delivered: a worker asking for development work gets nothing.
    subscription = Subscription(namespace=ns, stage=Stage.DEVELOPMENT, consumer="probe")
    assert await queue.claim(subscription) is None
    paused = objects.condition(project, "Paused")
    assert paused is not None
    assert paused["status"] == "True"
    assert paused["reason"] == "EmergencyStop"
    objects.wait_event("widgets", "WorkHeld")
    objects.wait_event("widgets", "Paused")
    pool = objects.pool("widgets-dev-tdd") or {}
    assert pool["status"]["desiredReplicas"] == 0
    assert pool["status"]["lastScaleReason"].startswith("paused")

    kubectl("patch", "-n", ns, "project/widgets", "--type=merge", "-p", '{"spec":{"paused":false}}')
    wait_for(lambda: _replicas(objects) == RUNNING_REPLICAS, 20, "pools back to their size")
    _phase(objects, "Active")
    assert "widgets" not in await queue.held_projects(ns)
    stats = await queue.stats(ns, "widgets")
    assert stats.stages[Stage.DEVELOPMENT].pending == 5
    claim = await queue.claim(subscription)
    assert claim is not None
    assert claim.item.id in {item.id for item in items}
    objects.wait_event("widgets", "WorkReleased")


async def test_a_spent_daily_budget_holds_the_projects_work_until_lifted(
    objects: Objects, kubectl: Kubectl, queue: WorkQueue
) -> None:
    """examples/project.yaml allows 20,000,000 tokens a day. Once the project's agents
    have spent them (counted in the queue, as workers count every model call), its items
    are not delivered and the Project says so; raising the limit delivers them again (the
    day's turn at 00:00 UTC does the same: tests/integration/queue/test_queue_budgets.py)."""
    ns = objects.namespace
    for name in ("secrets.yaml", "project.yaml", "workerpools.yaml"):
        kubectl("apply", "-n", ns, "-f", str(EXAMPLES / name))
    objects.wait_condition("projects", "widgets", "BudgetExhausted", "False", "WithinBudget")
    await queue.enqueue(
        WorkItem(id="issue-1", namespace=ns, project="widgets", stage=Stage.DEVELOPMENT)
    )
    await queue.spend(ns, "widgets", 20_000_000, 41.5)

    project = objects.wait_condition(
        "projects", "widgets", "BudgetExhausted", "True", "DailyBudgetSpent", timeout=40
    )
    message = objects.condition(project, "BudgetExhausted")["message"]  # type: ignore[index]
    assert message.startswith("20000000 tokens used today, budgets.tokensPerDay=20000000")
    assert "no item is delivered until" in message
    objects.wait_event("widgets", "BudgetExhausted")
    worker = Subscription(namespace=ns, stage=Stage.DEVELOPMENT, consumer="dev-0")
    assert await queue.claim(worker) is None  # waiting, not lost

    objects.patch("projects", "widgets", {"spec": {"budgets": {"tokensPerDay": 40_000_000}}})
    objects.wait_condition("projects", "widgets", "BudgetExhausted", "False", "WithinBudget")
    objects.wait_event("widgets", "BudgetRenewed")
    claim = await queue.claim(worker)
    assert claim is not None and claim.item.id == "issue-1"
