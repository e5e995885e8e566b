"""Development: one issue, test first, to one pull request that closes it.

Branch `agentfleet/issue-<n>` (`agentfleet.core.pipeline.issue_branch`); the agent writes
tests before implementation (checked from its tool calls), the handler runs the
repository's tests itself, commits, pushes and opens a pull request with `Closes #<n>`.
A redelivery finds the pull request and stops, or finds the pushed branch and continues
from it: never a second branch or pull request.
"""

from __future__ import annotations

import asyncio
import logging

from agentfleet.core.api import Stage
from agentfleet.core.github import RepoClient, marker
from agentfleet.core.pipeline import IssuePayload, WorkItem, cost_cap, issue_branch, token_cap
from agentfleet.worker.agents import AgentResult, Workspace, untrusted
from agentfleet.worker.agents.instructions import repository_instructions
from agentfleet.worker.handlers import HandlerContext, HandlerResult
from agentfleet.worker.sandbox.protocol import cut_tail
from agentfleet.worker.stages import prompts
from agentfleet.worker.stages.base import StageHandler, is_test_path
from agentfleet.worker.stages.feedback import FeedbackRound

_WRITES = {"write_file", "edit_file"}


def wrote_tests_first(result: AgentResult) -> bool:
    """The first file the agent wrote in this run was a test file."""
    for record in result.tool_calls:
        if record.name in _WRITES and record.ok:
            return is_test_path(str(record.input.get("path", "")))
    return True


class DevelopmentHandler(StageHandler):
    stage = Stage.DEVELOPMENT

    async def process(
        self,
        item: WorkItem,
        context: HandlerContext,
        log: logging.LoggerAdapter[logging.Logger],
        repo: RepoClient,
    ) -> HandlerResult:
        if "round" in item.payload:
            if self.env.queue is None:
                raise RuntimeError("feedback rounds need the work queue")
            return await FeedbackRound(self, self.env.queue).run(item, context, log, repo)
        number = IssuePayload.of(item).issue
        branch = issue_branch(number)
        existing = await asyncio.to_thread(repo.find_pull, branch)
        if existing is not None:
            log.info("issue #%d already has pull request #%d", number, existing.number)
            return HandlerResult.succeeded({"pull": existing.number}, follow_ups=())
        issue = await asyncio.to_thread(repo.issue, number)
        if issue.state != "open":
            return HandlerResult.succeeded({"skipped": "issue closed"}, follow_ups=())
        default = await asyncio.to_thread(lambda: repo.default_branch)

        checkout = self.env.checkout(repo, context.workspace / "repo", context.private / "repo.git")
        await checkout.clone()
        resumed = await checkout.start_branch(branch, default)
        task = f"Resolve issue #{number} of {repo.full_name}.\n\n" + untrusted(
            f"issue #{number}", f"{issue.title}\n\n{issue.body}", self.env.redactor
        )
        if resumed:
            task += (
                f"\n\nThe branch {branch} already holds work from an earlier attempt: "
                "read it and continue from there."
            )
        task += repository_instructions(checkout.path, self.env.redactor)
        workspace = Workspace(checkout.path)
        runner = self.env.runner(log, token_cap(item), context.budget, cost_cap(item))
        result = await runner.run(
            prompts.DEVELOPMENT, task, self.env.tools(workspace, runner.settings)
        )
        if result.budget_exhausted:
            return await self.stopped_by_budget(item, repo, log, result, number)
        if not result.finished:
            return HandlerResult.failed(f"agent stopped before finishing: {result.stop_reason}")
        committed = await checkout.commit_all(f"{issue.title} (#{number})")
        if not committed and not resumed:
            return HandlerResult.failed("the agent finished without changing anything")
        changed = await checkout.changed_files(default)
        if not any(is_test_path(path) for path in changed):
            return HandlerResult.failed("the change has no tests; development is test first")
        if not resumed and not wrote_tests_first(result):
            return HandlerResult.failed("implementation was written before its tests")
        command = list(self.env.config.test_command)
        tests = await self.env.run_tests(checkout)
        # Pushed even when the tests fail, so that the retry continues from this work.
        await checkout.push(branch)
        if tests.exit_code != 0:
            tail = cut_tail(self.env.redactor.redact(tests.text()), 3000)
            return HandlerResult.failed(f"tests fail after the agent finished:\n{tail}")
        body = (
            f"Closes #{number}\n\n{self.env.redactor.redact(result.final_text).strip()}\n\n"
            f"Tests: `{' '.join(command)}` passes.\n\n"
            + "\n".join(f"- `{path}`" for path in changed)
            + f"\n\n{marker('pull', issue=number)}"
        )
        pull, created = await self.open_pull(
            item, repo, log, branch, default, f"{issue.title} (#{number})", body
        )
        log.info(
            "%s pull request #%d for issue #%d",
            "opened" if created else "reused",
            pull.number,
            number,
        )
        return HandlerResult.succeeded(
            {"pull": pull.number, "tokens": result.usage.total}, follow_ups=()
        )
