"""Genesis: analyse an issue, plan it, scaffold an empty repository, create sub-issues.

The plan is made once and kept (in a comment on the issue, with its state hidden in it):
a redelivered item reuses it instead of asking the model again, so the sub-issues it
creates are the same ones, found by their markers. An issue that already lists its
sub-tasks as a checklist is planned from the checklist. The plan's sub-issues are
recorded in the queue as the issue's family (`WorkQueue.record_family`), which the
content stage reads. A master issue (label `agentfleet:master`) is fanned out instead, as
a join in the queue (`agentfleet.worker.stages.master`), and its master-summary item, enqueued by
the last sub-task to finish, is handled here too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError

from agentfleet.core.api import Stage
from agentfleet.core.github import MASTER_LABEL, SCAFFOLD_PERMISSIONS, SUB_TASK_LABEL, RepoClient
from agentfleet.core.github.events import GENERATED_LABELS
from agentfleet.core.github.markers import embed_state, extract_state
from agentfleet.core.pipeline import (
    MasterSummaryPayload,
    WorkItem,
    cost_cap,
    genesis_payload,
    stage_item,
    token_cap,
)
from agentfleet.core.queue import WorkQueue
from agentfleet.worker.agents import Workspace, submit_tool, untrusted
from agentfleet.worker.agents.instructions import repository_instructions
from agentfleet.worker.handlers import HandlerContext, HandlerResult
from agentfleet.worker.stages import prompts
from agentfleet.worker.stages.base import StageHandler
from agentfleet.worker.stages.master import (
    ParallelSettings,
    SubTask,
    ValidationReport,
    fan_out_master,
    normalise_path,
    parse_subtasks,
    sub_issue_body,
    summarise_master,
    validate,
)

MAX_PLANNED_TASKS = 10
PLAN = "plan"

SUBMIT_PLAN = submit_tool(
    "submit_plan",
    "Submit the plan (once, at the end).",
    {
        "type": "object",
        "properties": {
            "summary": {"type": "string"},
            "tasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_PLANNED_TASKS,
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "description": {"type": "string"},
                        "files": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["title"],
                },
            },
        },
        "required": ["summary", "tasks"],
    },
)


class PlanError(ValueError):
    pass


def plan_from_submission(submission: dict[str, Any]) -> tuple[str, list[SubTask]]:
    """The model's `submit_plan` input as sub-tasks; PlanError when it is unusable."""
    raw_tasks = submission.get("tasks")
    if not isinstance(raw_tasks, list) or not raw_tasks:
        raise PlanError("the plan has no tasks")
    tasks = []
    for index, raw in enumerate(raw_tasks[:MAX_PLANNED_TASKS], 1):
        if not isinstance(raw, dict) or not str(raw.get("title", "")).strip():
            raise PlanError(f"task {index} of the plan has no title")
        files = [normalise_path(str(f)) for f in raw.get("files") or [] if str(f).strip()]
        tasks.append(
            SubTask(
                index=index,
                title=" ".join(str(raw["title"]).split())[:200],
                description=str(raw.get("description") or "").strip(),
                files=tuple(dict.fromkeys(files)),
            )
        )
    return str(submission.get("summary") or "").strip(), tasks


def render_plan(number: int, summary: str, report: ValidationReport) -> str:
    lines = [f"## agentfleet plan for #{number}", "", summary or "(no summary)", ""]
    lines += [f"{task.index}. {task.title}" for task in report.tasks]
    if report.conflicts:
        lines += ["", "Overlapping sub-tasks (their pull requests may conflict):"]
        lines += [
            f"- {c.first} and {c.second}: " + ", ".join(f"`{s}`" for s in c.shared)
            for c in report.conflicts
        ]
    return "\n".join(lines)


def _restore_plan(state: Any) -> tuple[str, list[SubTask]] | None:
    if not isinstance(state, dict) or not isinstance(state.get("tasks"), list):
        return None
    try:
        tasks = [SubTask.model_validate(raw) for raw in state["tasks"]]
    except ValidationError:
        return None
    return str(state.get("summary", "")), tasks


class GenesisHandler(StageHandler):
    stage = Stage.GENESIS

    def _queue(self) -> WorkQueue:
        if self.env.queue is None:
            raise RuntimeError("genesis needs the work queue (master issues, sub-issue families)")
        return self.env.queue

    async def process(
        self,
        item: WorkItem,
        context: HandlerContext,
        log: logging.LoggerAdapter[logging.Logger],
        repo: RepoClient,
    ) -> HandlerResult:
        payload = genesis_payload(item)
        if isinstance(payload, MasterSummaryPayload):
            return await summarise_master(queue=self._queue(), repo=repo, item=item, log=log)
        number = payload.issue
        issue = await asyncio.to_thread(repo.issue, number)
        if issue.state != "open":
            return HandlerResult.succeeded({"skipped": "issue closed"}, follow_ups=())
        if MASTER_LABEL in issue.labels:
            config = self.env.config
            defaults = {
                "maxWorkers": config.max_workers,
                "successThreshold": config.success_threshold,
                "taskTimeoutSeconds": config.task_timeout_seconds,
            }
            settings = ParallelSettings.model_validate({**defaults, **(payload.parallelism or {})})
            return await fan_out_master(
                queue=self._queue(), repo=repo, item=item, issue=issue, settings=settings, log=log
            )

        await asyncio.to_thread(repo.ensure_labels, list(GENERATED_LABELS))
        default = await asyncio.to_thread(lambda: repo.default_branch)
        checkout = self.env.checkout(repo, context.workspace / "repo", context.private / "repo.git")
        await checkout.clone()
        runner = self.env.runner(log, token_cap(item), context.budget, cost_cap(item))
        described = untrusted(
            f"issue #{number}", f"{issue.title}\n\n{issue.body}", self.env.redactor
        )
        scaffolded = False
        if not await checkout.remote_branches():
            await checkout.start_branch(default, default)
            writable = self.env.tools(Workspace(checkout.path), runner.settings)
            request = f"Scaffold {repo.full_name} for this issue.\n\n{described}"
            result = await runner.run(prompts.GENESIS_SCAFFOLD, request, writable)
            if result.budget_exhausted:
                return await self.stopped_by_budget(item, repo, log, result, number)
            if not result.finished:
                return HandlerResult.failed(f"scaffolding stopped: {result.stop_reason}")
            if not await checkout.commit_all(f"Scaffold the repository (#{number})"):
                return HandlerResult.failed("scaffolding produced no files")
            # The stage's own token only reads code; the first commit of an empty
            # repository is pushed with a token minted for this push alone.
            async with self.env.github(item, SCAFFOLD_PERMISSIONS) as pusher:
                await checkout.with_token(pusher.git_token).push(default)
            scaffolded = True
            log.info("scaffolded the empty repository %s", repo.full_name)

        existing = await asyncio.to_thread(repo.find_own_comment, number, PLAN, issue=number)
        restored = _restore_plan(extract_state(existing.body)) if existing else None
        if restored is not None:
            summary, tasks = restored
        else:
            tasks = parse_subtasks(issue.body)
            summary = "Planned from the checklist in the issue."
            if not tasks:
                readable = self.env.tools(Workspace(checkout.path), runner.settings, read_only=True)
                request = f"Plan issue #{number} of {repo.full_name}.\n\n{described}"
                request += repository_instructions(checkout.path, self.env.redactor)
                result = await runner.run(prompts.GENESIS_PLAN, request, [*readable, SUBMIT_PLAN])
                if result.submission is None and result.budget_exhausted:
                    return await self.stopped_by_budget(item, repo, log, result, number)
                if result.submission is None:
                    return HandlerResult.failed(f"no plan submitted ({result.stop_reason})")
                summary, tasks = plan_from_submission(result.submission)
            summary = self.env.redactor.redact(summary)
            report = validate(tasks)
            state = embed_state(
                {"summary": summary, "tasks": [t.model_dump(mode="json") for t in tasks]}
            )
            text = f"{render_plan(number, summary, report)}\n\n{state}"
            await asyncio.to_thread(repo.upsert_comment, number, text, PLAN, issue=number)

        sub_issues = []
        for task in tasks:
            sub, _ = await asyncio.to_thread(
                repo.ensure_issue,
                f"[#{number}] {task.title}",
                sub_issue_body(number, task, len(tasks)),
                [SUB_TASK_LABEL],
                "sub-task",
                parent=number,
                task=task.index,
            )
            sub_issues.append(sub)
        await self._queue().record_family(
            item.namespace, item.project, number, [sub.number for sub in sub_issues]
        )
        follow_ups = (
            [
                stage_item(item, context.next_stage, sub.number, planned_from=number)
                for sub in sub_issues
            ]
            if context.next_stage is not None
            else []
        )
        return HandlerResult.succeeded(
            {"sub_issues": [sub.number for sub in sub_issues], "scaffolded": scaffolded},
            follow_ups=follow_ups,
        )
