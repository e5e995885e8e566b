"""Content: documentation and a changelog entry, in one pull request, for merged work.

A merged agentfleet pull request queues a content item. Work that came from a planned
issue is documented once for the whole issue, when the last of its sub-issues is closed;
until then the item succeeds without doing anything. Which issue a sub-issue came from,
and its siblings, is the family genesis recorded in the queue (`WorkQueue.family`, written
by genesis' plan and by a master issue's fan-out), not read back from GitHub. The docs branch
`agentfleet/docs-issue-<n>` (`agentfleet.core.pipeline.docs_branch`) and its pull request are
looked up before they are created.
"""

from __future__ import annotations

import asyncio
import logging

from agentfleet.core.api import Stage
from agentfleet.core.github import RepoClient, marker
from agentfleet.core.pipeline import (
    PullPayload,
    WorkItem,
    cost_cap,
    docs_branch,
    issue_branch,
    issue_of_branch,
    token_cap,
)
from agentfleet.core.queue import Family
from agentfleet.worker.agents import Workspace, untrusted
from agentfleet.worker.agents.instructions import repository_instructions
from agentfleet.worker.handlers import HandlerContext, HandlerResult
from agentfleet.worker.stages import prompts
from agentfleet.worker.stages.base import StageHandler


def _documented_issue(
    repo: RepoClient, number: int, family: Family | None
) -> tuple[int, list[int], list[int]]:
    """(issue to document, its sub-issues, the ones still open) for merged work on
    `number`, whose recorded family is `family`."""
    if family is None:
        return number, [number], []
    parts = sorted(set(family.children) | {number})
    still_open = [n for n in parts if repo.issue(n).state == "open"]
    return family.parent, parts, still_open


class ContentHandler(StageHandler):
    stage = Stage.CONTENT

    async def process(
        self,
        item: WorkItem,
        context: HandlerContext,
        log: logging.LoggerAdapter[logging.Logger],
        repo: RepoClient,
    ) -> HandlerResult:
        merged = await asyncio.to_thread(repo.pull, PullPayload.of(item).pull)
        worked_on = issue_of_branch(merged.head)
        if not merged.merged or worked_on is None:
            return HandlerResult.succeeded({"skipped": "not merged agentfleet work"}, follow_ups=())
        if self.env.queue is None:
            raise RuntimeError("content needs the work queue (the recorded sub-issues)")
        family = await self.env.queue.family(item.namespace, item.project, worked_on)
        target, parts, still_open = await asyncio.to_thread(
            _documented_issue, repo, worked_on, family
        )
        if still_open:
            log.info("#%d: waiting for sub-issues %s before documenting", target, still_open)
            return HandlerResult.succeeded({"waiting_for": still_open}, follow_ups=())
        branch = docs_branch(target)
        existing = await asyncio.to_thread(repo.find_pull, branch)
        if existing is not None:
            return HandlerResult.succeeded({"pull": existing.number}, follow_ups=())

        issue = await asyncio.to_thread(repo.issue, target)
        pulls = [await asyncio.to_thread(repo.find_pull, issue_branch(n)) for n in parts]
        merged_pulls = [p for p in pulls if p is not None and p.merged]
        default = await asyncio.to_thread(lambda: repo.default_branch)
        checkout = self.env.checkout(repo, context.workspace / "repo", context.private / "repo.git")
        await checkout.clone()
        await checkout.start_branch(branch, default)
        listing = "\n".join(f"- #{p.number} {p.title}" for p in merged_pulls)
        task = (
            f"Document the work merged for issue #{target} of {repo.full_name}.\n\n"
            + untrusted(f"issue #{target}", f"{issue.title}\n\n{issue.body}", self.env.redactor)
            + "\n\nMerged pull requests:\n"
            + untrusted("pull request titles", listing, self.env.redactor)
            + repository_instructions(checkout.path, self.env.redactor)
        )
        runner = self.env.runner(log, token_cap(item), context.budget, cost_cap(item))
        result = await runner.run(
            prompts.CONTENT, task, self.env.tools(Workspace(checkout.path), runner.settings)
        )
        if result.budget_exhausted:
            return await self.stopped_by_budget(item, repo, log, result, target)
        if not result.finished:
            return HandlerResult.failed(f"agent stopped before finishing: {result.stop_reason}")
        await checkout.commit_all(f"Document {issue.title} (#{target})")
        changed = await checkout.changed_files(default)
        if "CHANGELOG.md" not in changed or not any(p.startswith("docs/") for p in changed):
            return HandlerResult.failed("content must update docs/ and CHANGELOG.md")
        await checkout.push(branch)
        body = (
            f"Documentation and changelog for #{target}, covering "
            + ", ".join(f"#{p.number}" for p in merged_pulls)
            + f".\n\n{self.env.redactor.redact(result.final_text).strip()}\n\n"
            + "\n".join(f"- `{path}`" for path in changed)
            + f"\n\n{marker('docs', issue=target)}"
        )
        pull, _ = await self.open_pull(
            item, repo, log, branch, default, f"Docs: {issue.title} (#{target})", body
        )
        return HandlerResult.succeeded({"pull": pull.number, "issue": target}, follow_ups=())
