"""A project's daily budget (`spec.budgets.tokensPerDay`, `costPerDayUsd`) as one worker
sees it: every model call is added to the project's UTC day in the queue's store, shared
by all workers, and checked before the next call. A spent day raises `BudgetExhausted`;
the runtime then releases the item (it is not failed), and the queue delivers none of the
project's items until 00:00 UTC."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agentfleet.core.queue import BudgetExhausted, WorkQueue

log = logging.getLogger("agentfleet.worker.budget")


@dataclass(frozen=True)
class ProjectBudget:
    queue: WorkQueue
    namespace: str
    project: str

    async def check(self) -> None:
        spent = (await self.queue.day_spend(self.namespace, self.project)).exhausted
        if spent is not None:
            raise BudgetExhausted(f"project {self.project}'s daily budget is spent: {spent}")

    async def record(self, tokens: int, cost_usd: float, turns: int = 1) -> None:
        day = await self.queue.spend(self.namespace, self.project, tokens, cost_usd)
        if day.exhausted is not None:
            log.info("project %s: %s; its items wait until 00:00 UTC", self.project, day.exhausted)
