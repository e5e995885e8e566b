"""Review: a pull request's diff, or a dead-lettered item's error, examined by the model and
answered with one comment (edited in place on redelivery, never duplicated)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from agentfleet.core.api import Stage
from agentfleet.core.github import RepoClient
from agentfleet.core.pipeline import (
    DeadLetterReview,
    WorkItem,
    cost_cap,
    issue_branch,
    review_payload,
    token_cap,
)
from agentfleet.worker.agents import Workspace, submit_tool, untrusted
from agentfleet.worker.agents.instructions import repository_instructions
from agentfleet.worker.handlers import HandlerContext, HandlerResult
from agentfleet.worker.stages import prompts
from agentfleet.worker.stages.base import StageHandler

SUBMIT_REVIEW = submit_tool(
    "submit_review",
    "Submit the review (once, at the end).",
    {
        "type": "object",
        "properties": {
            "verdict": {"type": "string", "enum": ["approve", "changes_requested", "diagnosis"]},
            "summary": {"type": "string"},
            "findings": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["verdict", "summary"],
    },
)
_PATCH_LIMIT = 40_000


def render_review(submission: dict[str, Any], subject: str) -> str:
    verdict = str(submission.get("verdict", "diagnosis")).replace("_", " ")
    lines = [
        f"## agentfleet review of {subject}: {verdict}",
        "",
        str(submission.get("summary", "")),
    ]
    findings = [str(f) for f in submission.get("findings") or []]
    if findings:
        lines += ["", "### Findings", *[f"- {finding}" for finding in findings]]
    return "\n".join(lines)


class ReviewHandler(StageHandler):
    stage = Stage.REVIEW

    async def process(
        self,
        item: WorkItem,
        context: HandlerContext,
        log: logging.LoggerAdapter[logging.Logger],
        repo: RepoClient,
    ) -> HandlerResult:
        payload = review_payload(item)
        default = await asyncio.to_thread(lambda: repo.default_branch)
        checkout = self.env.checkout(repo, context.workspace / "repo", context.private / "repo.git")
        await checkout.clone()
        redactor = self.env.redactor
        if isinstance(payload, DeadLetterReview):
            failure, number = payload.dead_letter, payload.issue
            await checkout.start_branch(issue_branch(number), default)
            issue = await asyncio.to_thread(repo.issue, number)
            subject = f"the failed {failure.stage} work on #{number}"
            task = (
                f"Work item {failure.item_id} failed {failure.attempts} time(s) "
                f"and was given up. Diagnose why and say what a person should do next.\n\n"
                + untrusted(f"issue #{number}", f"{issue.title}\n\n{issue.body}", redactor)
                + "\n\n"
                + untrusted("last error", failure.error, redactor)
            )
            target, key = number, f"item-{failure.item_id}"
        else:
            number = payload.pull
            pull = await asyncio.to_thread(repo.pull, number)
            await checkout.start_branch(pull.head, default)
            files = await asyncio.to_thread(repo.pull_files, number)
            diff = "\n\n".join(f"--- {f.filename} ({f.status})\n{f.patch}" for f in files)
            subject = f"pull request #{number}"
            task = (
                f"Review pull request #{number}.\n\n"
                + untrusted(f"title of #{number}", pull.title, redactor)
                + "\n\n"
                + untrusted(f"diff of #{number}", diff[:_PATCH_LIMIT], redactor)
            )
            target, key = number, f"pull-{number}"
        task += repository_instructions(checkout.path, redactor)
        runner = self.env.runner(log, token_cap(item), context.budget, cost_cap(item))
        tools = self.env.tools(Workspace(checkout.path), runner.settings, read_only=True)
        result = await runner.run(prompts.REVIEW, task, [*tools, SUBMIT_REVIEW])
        if result.submission is None and result.budget_exhausted:
            return await self.stopped_by_budget(item, repo, log, result, target)
        if result.submission is None:
            return HandlerResult.failed(f"no review submitted ({result.stop_reason})")
        text = redactor.redact(render_review(result.submission, subject))
        comment, _ = await asyncio.to_thread(repo.upsert_comment, target, text, "review", key=key)
        return HandlerResult.succeeded({"comment": comment.id}, follow_ups=())
