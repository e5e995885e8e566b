"""A pull request's feedback round: push to its branch what the feedback asks for, answer.

The round reads the feedback no earlier round addressed (kept in the queue by the
operator's webhook receiver, `agentfleet.core.github.feedback`), checks out the pull
request's branch (agent instructions from the base branch), runs the agent on it, runs
the tests, pushes, and answers: in the thread of each review comment, and once on the pull
request for the rest. Then it marks the feedback addressed and, if more arrived while it
ran, asks for the next round (as its follow-up, in the same step as its completion), unless
the Project's `pullRequests.maxFixRounds` is reached: then it asks a person instead.

A redelivered round (the worker died) reads the same feedback again and pushes on top of
what it pushed before; a round that finds nothing left to address finishes at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agentfleet.core.github import RepoClient
from agentfleet.core.github.feedback import LOOP_GUARD_MARKER
from agentfleet.core.pipeline import FeedbackPayload, WorkItem, cost_cap, next_round_item, token_cap
from agentfleet.core.queue import WorkQueue
from agentfleet.worker.agents import Workspace, untrusted
from agentfleet.worker.agents.instructions import repository_instructions
from agentfleet.worker.handlers import HandlerContext, HandlerResult
from agentfleet.worker.sandbox.protocol import cut_tail
from agentfleet.worker.stages import prompts
from agentfleet.worker.stages.base import StageHandler


def describe(entry: dict[str, Any]) -> tuple[str, str]:
    """(where it came from, what it says) of one piece of feedback, for the task."""
    kind = entry.get("kind")
    if kind == "review_comment":
        where = f"review comment by {entry.get('author')} on {entry.get('path')}"
        if entry.get("line"):
            where += f" line {entry.get('line')}"
        return where, f"{entry.get('diff_hunk', '')}\n\n{entry.get('body', '')}"
    if kind == "failing_check":
        where = f"failing check {entry.get('check')} ({entry.get('conclusion')})"
        return where, str(entry.get("output") or "(the check reported no output)")
    return f"comment by {entry.get('author')}", str(entry.get("body", ""))


class FeedbackRound:
    """Runs one round for `StageHandler` (the development stage: it pushes)."""

    def __init__(self, handler: StageHandler, queue: WorkQueue) -> None:
        self.handler = handler
        self.env = handler.env
        self.queue = queue

    async def run(
        self,
        item: WorkItem,
        context: HandlerContext,
        log: logging.LoggerAdapter[logging.Logger],
        repo: RepoClient,
    ) -> HandlerResult:
        payload = FeedbackPayload.of(item)
        pull = payload.pull
        pending = await self.queue.pending_feedback(item.namespace, item.project, pull)
        if not pending.entries:
            return HandlerResult.succeeded({"skipped": "no feedback left"}, follow_ups=())
        info = await asyncio.to_thread(repo.pull, pull)
        if info.state != "open" or info.fork:
            return HandlerResult.succeeded({"skipped": "pull request closed"}, follow_ups=())
        default = await asyncio.to_thread(lambda: repo.default_branch)
        checkout = self.env.checkout(repo, context.workspace / "repo", context.private / "repo.git")
        await checkout.clone()
        await checkout.start_branch(payload.branch, info.base or default)
        redactor = self.env.redactor
        task = f"Address the feedback on pull request #{pull} of {repo.full_name} " + (
            f"(branch {payload.branch}, fix round {payload.round}).\n\n"
        )
        task += untrusted(f"title of #{pull}", info.title, redactor)
        for entry in pending.entries:
            where, text = describe(entry)
            task += "\n\n" + untrusted(where, text, redactor)
        task += repository_instructions(checkout.path, redactor)
        runner = self.env.runner(log, token_cap(item), context.budget, cost_cap(item))
        result = await runner.run(
            prompts.FEEDBACK, task, self.env.tools(Workspace(checkout.path), runner.settings)
        )
        if result.budget_exhausted:
            return await self.handler.stopped_by_budget(item, repo, log, result, pull)
        if not result.finished:
            return HandlerResult.failed(f"agent stopped before finishing: {result.stop_reason}")
        committed = await checkout.commit_all(
            f"Address feedback on #{pull} (round {payload.round})"
        )
        tests = await self.env.run_tests(checkout)
        if tests.exit_code != 0:
            tail = cut_tail(redactor.redact(tests.text()), 3000)
            return HandlerResult.failed(f"tests fail after the feedback round:\n{tail}")
        if committed:
            await checkout.push(payload.branch)
        summary = redactor.redact(result.final_text).strip() or "Addressed."
        pushed = "Pushed to" if committed else "No change was needed on"
        answer = f"{pushed} `{payload.branch}` (round {payload.round}): {summary}"
        for entry in pending.entries:
            if entry.get("kind") == "review_comment" and isinstance(entry.get("comment_id"), int):
                await asyncio.to_thread(
                    repo.reply_to_review_comment, pull, entry["comment_id"], answer
                )
        others = [e for e in pending.entries if e.get("kind") != "review_comment"]
        if others:
            await asyncio.to_thread(
                repo.upsert_comment, pull, answer, "feedback", pull=pull, round=payload.round
            )
        rounds = await self.queue.finish_feedback_round(
            item.namespace, item.project, pull, pending.end
        )
        after = await self.queue.pending_feedback(item.namespace, item.project, pull)
        follow_ups: tuple[WorkItem, ...] = ()
        if after.entries and rounds >= payload.max_rounds:
            body = (
                f"agentfleet has made {rounds} fix round(s) on this pull request, the most "
                "this Project allows (`spec.pullRequests.maxFixRounds`), and more feedback "
                "came in. A person should take it from here."
            )
            await asyncio.to_thread(repo.upsert_comment, pull, body, LOOP_GUARD_MARKER, pull=pull)
        elif after.entries:
            follow_ups = (next_round_item(item),)
        log.info("pull request #%d: fix round %d done", pull, payload.round)
        return HandlerResult.succeeded(
            {"pull": pull, "round": payload.round, "addressed": len(pending.entries)},
            follow_ups=follow_ups,
        )
