"""What every stage handler shares: error handling that never leaks a secret.

Item ids, payloads and branch names are `agentfleet.core.pipeline`'s."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import PurePosixPath
from typing import ClassVar

from agentfleet.core.api import Stage
from agentfleet.core.github import PullInfo, RepoClient, stage_permissions
from agentfleet.core.pipeline import ProjectCarried, WorkItem, utcnow
from agentfleet.core.pipeline.tracking import RunState, StageRun, Tracking
from agentfleet.core.queue import BudgetExhausted
from agentfleet.worker.agents import RedactingLogger
from agentfleet.worker.agents.loop import AgentResult
from agentfleet.worker.handlers import HandlerContext, HandlerResult
from agentfleet.worker.stages.environment import StageEnvironment
from agentfleet.worker.stages.tracking import Tally, update_tracking

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


def _issue_of(item: WorkItem) -> int | None:
    issue = item.payload.get("issue")
    return issue if isinstance(issue, int) and not isinstance(issue, bool) else None


def _tracked(stage: Stage, number: int | None, result: HandlerResult) -> int | None:
    """The issue whose tracking comment this run's end goes on, if any: genesis on the
    issue it planned into sub-issues (a master issue has its own summary), development on
    its issue, content on the issue it documented (`issue` in its output); nothing for
    runs that only skipped or waited."""
    output = result.output
    if "skipped" in output or "waiting_for" in output:
        return None
    if stage is Stage.GENESIS:
        return number if result.outcome == "failed" or "sub_issues" in output else None
    if stage is Stage.DEVELOPMENT:
        return number
    if stage is Stage.CONTENT:
        issue = output.get("issue")
        return issue if isinstance(issue, int) else None
    return None


def _finished(
    run: StageRun, result: HandlerResult, tally: Tally, attempt: int, max_attempts: int
) -> StageRun:
    output = result.output
    pull = output.get("pull")
    subs = output.get("sub_issues")
    error = result.error or ""
    state: RunState = "succeeded"
    if result.outcome == "failed":
        state = "budget_exhausted" if error.startswith("budget exhausted") else "failed"
    return run.model_copy(
        update={
            "state": state,
            "finished_at": utcnow(),
            "turns": tally.turns,
            "tokens": tally.tokens,
            "cost_usd": round(tally.cost_usd, 6),
            "pull": pull if isinstance(pull, int) else None,
            "sub_issues": tuple(n for n in subs if isinstance(n, int))
            if isinstance(subs, list)
            else (),
            "error": error or None,
            "retried": state == "failed" and result.retryable and attempt < max_attempts,
        }
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
        tally = Tally(context.budget)
        context = dataclasses.replace(context, budget=tally)
        try:
            async with self.env.github(item, stage_permissions(self.stage)) as repo:
                run = StageRun(
                    item=item.id,
                    stage=self.stage,
                    worker=context.settings.pod_name,
                    started_at=utcnow(),
                )
                number = _issue_of(item)
                parent = item.payload.get("parent")
                planned_in = parent if isinstance(parent, int) else None

                def started(tracking: Tracking) -> Tracking:
                    if planned_in is not None:
                        tracking = tracking.model_copy(update={"planned_in": planned_in})
                    return tracking.with_run(run)

                if self.stage is Stage.DEVELOPMENT and number is not None:
                    await update_tracking(repo, number, started, log)
                try:
                    result = await self.process(item, context, log, repo)
                except BudgetExhausted:
                    raise  # not a failure: the runtime releases the item until the day turns
                except Exception as exc:
                    result = HandlerResult.failed(self._message(exc))
                    log.warning("%s failed: %s", item.id, result.error)
                target = _tracked(self.stage, number, result)
                if target is not None:
                    finished = _finished(run, result, tally, item.attempts, context.max_attempts)
                    await update_tracking(repo, target, lambda t: t.with_run(finished), log)
                return result
        except BudgetExhausted:
            raise
        except Exception as exc:
            message = self._message(exc)
            log.warning("%s failed: %s", item.id, message)
            return HandlerResult.failed(message)

    def _message(self, exc: Exception) -> str:
        # The runtime would record repr(exc); errors from git, GitHub or the model can
        # quote credentials, so the text is redacted here first.
        return self.env.redactor.redact(f"{type(exc).__name__}: {exc}")[:_ERROR_LIMIT]

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
