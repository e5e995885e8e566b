"""What every stage handler shares: error handling that never leaks a secret.

Item ids, payloads and branch names are `agentfleet.core.pipeline`'s."""

from __future__ import annotations

import asyncio
import logging
from pathlib import PurePosixPath
from typing import ClassVar

from agentfleet.core.api import Stage
from agentfleet.core.github import PullInfo, RepoClient, stage_permissions
from agentfleet.core.pipeline import ProjectCarried, WorkItem
from agentfleet.core.queue import BudgetExhausted
from agentfleet.worker.agents import RedactingLogger
from agentfleet.worker.agents.loop import AgentResult
from agentfleet.worker.handlers import HandlerContext, HandlerResult
from agentfleet.worker.stages.environment import StageEnvironment

_ERROR_LIMIT = 2000


def is_test_path(path: str) -> bool:
    parts = PurePosixPath(path).parts
    name = parts[-1] if parts else ""
    return (
        any(part in {"tests", "test", "__tests__", "spec"} for part in parts[:-1])
        or name.startswith("test_")
        or name.endswith(("_test.py", "_test.go"))
        or ".test." in name
        or ".spec." in name
    )


class StageHandler:
    """Runs `process` with the item's GitHub client; any failure becomes a redacted,
    retryable `failed` result.

    The client acts with `stage`'s GitHub permissions (with a GitHub App, an installation
    token minted for this item's repository and those permissions, revoked when `process`
    returns), whatever stage the item names: the permissions follow the code that runs.
    """

    stage: ClassVar[Stage]

    def __init__(self, env: StageEnvironment) -> None:
        self.env = env

    async def handle(self, item: WorkItem, context: HandlerContext) -> HandlerResult:
        log = RedactingLogger(context.logger, self.env.redactor)
        try:
            async with self.env.github(item, stage_permissions(self.stage)) as repo:
                return await self.process(item, context, log, repo)
        except BudgetExhausted:
            raise  # not a failure: the runtime releases the item until the day turns
        except Exception as exc:
            # The runtime would record repr(exc); errors from git, GitHub or the model can
            # quote credentials, so the text is redacted here first.
            message = self.env.redactor.redact(f"{type(exc).__name__}: {exc}")[:_ERROR_LIMIT]
            log.warning("%s failed: %s", item.id, message)
            return HandlerResult.failed(message)

    async def process(
        self,
        item: WorkItem,
        context: HandlerContext,
        log: logging.LoggerAdapter[logging.Logger],
        repo: RepoClient,
    ) -> HandlerResult:
        raise NotImplementedError

    async def open_pull(
        self,
        item: WorkItem,
        repo: RepoClient,
        log: logging.LoggerAdapter[logging.Logger],
        head: str,
        base: str,
        title: str,
        body: str,
    ) -> tuple[PullInfo, bool]:
        """The pull request from `head` (found, or opened: as a draft when the Project says
        `pullRequests.draft`), with a review requested from whoever asked for the work
        (`requested_by`) when it was opened now. GitHub refuses some reviewers (the
        author, someone without access): that is logged, and the pull request stands."""
        carried = ProjectCarried.of(item)
        pull, created = await asyncio.to_thread(
            repo.ensure_pull, head, base, title, body, carried.draft_pulls
        )
        if created and carried.requested_by:
            refused = await asyncio.to_thread(
                repo.request_review, pull.number, carried.requested_by
            )
            if refused is not None:
                log.warning(
                    "pull request #%d: no review requested from %s: %s",
                    pull.number,
                    carried.requested_by,
                    refused,
                )
        return pull, created

    async def stopped_by_budget(
        self,
        item: WorkItem,
        repo: RepoClient,
        log: logging.LoggerAdapter[logging.Logger],
        result: AgentResult,
        number: int,
    ) -> HandlerResult:
        """The item's own budget (`budgets.tokensPerItem`, `costPerItemUsd` or the pool's
        `agent.tokenBudget`) ended the agent's run. Not retried, since a retry would spend
        as much again: the item is dead-lettered to review, and issue or pull request
        `number` says what was spent (one comment per item, edited in place)."""
        settings = self.env.agent_settings
        limit = (
            f"a cost cap of ${result.cost_usd:.2f} reached (budgets.costPerItemUsd)"
            if result.stop_reason == "cost_budget"
            else "its token budget used up (budgets.tokensPerItem or the pool's agent.tokenBudget)"
        )
        reason = (
            f"budget exhausted: {limit} after {result.turns} turns, {result.usage.total} tokens, "
            f"${result.cost_usd:.2f} (model {settings.model})"
        )
        body = (
            f"agentfleet stopped its {item.stage.value} work on this: {reason}. Nothing is "
            "retried on its own; raise the budget and run it again with `agentfleet retry`."
        )
        await asyncio.to_thread(repo.upsert_comment, number, body, "budget", item=item.id)
        log.warning("%s: %s", item.id, reason)
        return HandlerResult.failed(reason, retryable=False)
