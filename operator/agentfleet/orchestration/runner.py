"""A master issue's parallel run: the thin I/O around the pure parse/validate/aggregate.

Sub-issues `[Master #N] <title>` are created once (found again by their markers); each
sub-task is fanned out to the development pool as a work item on the real queue, at most
`max_workers` at a time, and followed until its completion record appears or its timeout
passes. One summary comment on the master issue is kept up to date in place and carries
the run's state, so a redelivery resumes and `/agentfleet retry` reruns only failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentfleet.core.github import (
    DIAGNOSTIC_LABEL,
    DRY_RUN_LABEL,
    SUB_TASK_LABEL,
    IssueInfo,
    RepoClient,
)
from agentfleet.core.github.events import GENERATED_LABELS
from agentfleet.core.github.markers import embed_state, extract_state, find_markers
from agentfleet.core.pipeline import IssuePayload, WorkItem, issue_branch, sub_task_item
from agentfleet.core.queue import CompletionOutcome, WorkQueue
from agentfleet.orchestration.aggregate import (
    TaskRecord,
    TaskState,
    render_summary,
    tasks_to_run,
    verdict,
)
from agentfleet.orchestration.parse import SubTask, parse_subtasks
from agentfleet.orchestration.validate import render_report, validate
from agentfleet.worker.handlers import HandlerResult

SUMMARY = "summary"
DRY_RUN = "dry-run"


class ParallelSettings(BaseModel):
    """A Project's `spec.parallelism` as the master item carries it (camelCase keys)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    max_workers: int = Field(default=5, ge=1, alias="maxWorkers")
    success_threshold: float = Field(default=0.8, gt=0, le=1, alias="successThreshold")
    task_timeout_seconds: float = Field(default=1800.0, gt=0, alias="taskTimeoutSeconds")


def sub_issue_body(master: int, task: SubTask, total: int) -> str:
    lines = [f"Part of #{master} (sub-task {task.index} of {total}).", ""]
    if task.description:
        lines += [task.description, ""]
    declared = [*task.files, *task.modules]
    if declared:
        lines.append("Files: " + ", ".join(f"`{path}`" for path in declared))
    return "\n".join(lines).rstrip()


def diagnostic_body(master: int, record: TaskRecord) -> str:
    return (
        f"Sub-task {record.index} of #{master} ({record.title}, issue #{record.issue}) did not "
        f"succeed on attempt {record.attempt}: **{record.state.value.replace('_', ' ')}**.\n\n"
        "```\n"
        f"{(record.error or 'no error recorded').strip()[:3000]}\n"
        "```\n\n"
        f"Comment `/agentfleet retry` on #{master} to run the failed sub-tasks again."
    )


def development_item(parent: WorkItem, record: TaskRecord, master: int) -> WorkItem:
    """The development item of a sub-task whose sub-issue is open (`record.issue`)."""
    if record.issue is None:
        raise ValueError(f"sub-task {record.index} has no sub-issue: it is made before its item")
    return sub_task_item(parent, record.issue, master, record.index, record.attempt)


class QueueDispatcher:
    """Runs a sub-task on the development pool and waits for its completion record."""

    def __init__(
        self,
        queue: WorkQueue,
        repo: RepoClient,
        parent: WorkItem,
        master: int,
        timeout: float,
        poll_seconds: float,
    ) -> None:
        self.queue = queue
        self.repo = repo
        self.parent = parent
        self.master = master
        self.timeout = timeout
        self.poll_seconds = poll_seconds

    async def run(self, record: TaskRecord) -> None:
        item = development_item(self.parent, record, self.master)
        await self.queue.enqueue(item)
        deadline = time.monotonic() + self.timeout
        while (done := await self.queue.completion(item.namespace, item.id)) is None:
            if time.monotonic() >= deadline:
                record.state = TaskState.TIMED_OUT
                record.error = f"no result within the task timeout of {self.timeout:g}s"
                return
            await asyncio.sleep(self.poll_seconds)
        if done.outcome is CompletionOutcome.SUCCEEDED:
            record.state = TaskState.SUCCEEDED
            branch = issue_branch(IssuePayload.of(item).issue)
            pull = await asyncio.to_thread(self.repo.find_pull, branch)
            if pull is not None:
                record.pull, record.pull_url = pull.number, pull.html_url
        else:
            record.state = TaskState.FAILED
            record.error = done.error


class _Publisher:
    """Keeps the summary comment current without making sub-tasks wait for GitHub.

    Changes are coalesced and written at most once per `min_interval` seconds, so ten
    sub-tasks finishing together cost one comment edit, not ten.
    """

    def __init__(self, publish: Any, min_interval: float) -> None:
        self._publish = publish
        self._min_interval = min_interval
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    def changed(self) -> None:
        self._dirty.set()

    async def _loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            await self._publish(None)
            await asyncio.sleep(self._min_interval)

    async def finish(self, elapsed: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._publish(elapsed)


def _restore(state: Any, tasks: list[SubTask]) -> list[TaskRecord]:
    """Records from an earlier summary, for the tasks that are still the same."""
    previous: dict[int, TaskRecord] = {}
    if isinstance(state, dict):
        for raw in state.get("records", []):
            with contextlib.suppress(ValidationError):
                record = TaskRecord.model_validate(raw)
                previous[record.index] = record
    records = []
    for task in tasks:
        old = previous.get(task.index)
        if old is not None and old.title == task.title:
            records.append(old)
        else:
            records.append(TaskRecord(index=task.index, title=task.title))
    return records


async def run_master(
    *,
    queue: WorkQueue,
    repo: RepoClient,
    item: WorkItem,
    issue: IssueInfo,
    settings: ParallelSettings,
    poll_seconds: float,
    log: logging.LoggerAdapter[logging.Logger],
    publish_interval: float = 1.0,
) -> HandlerResult:
    master = issue.number
    payload = IssuePayload.of(item)
    tasks = parse_subtasks(issue.body)
    report = validate(tasks)
    if payload.dry_run or DRY_RUN_LABEL in issue.labels or not tasks:
        text = render_report(report, master)
        await asyncio.to_thread(repo.upsert_comment, master, text, DRY_RUN, master=master)
        return HandlerResult.succeeded(
            {"dry_run": True, "tasks": len(tasks), "conflicts": len(report.conflicts)},
            follow_ups=(),
        )
    await asyncio.to_thread(repo.ensure_labels, list(GENERATED_LABELS))
    existing = await asyncio.to_thread(repo.find_own_comment, master, SUMMARY, master=master)
    records = _restore(extract_state(existing.body) if existing else None, tasks)
    running = {id(r) for r in tasks_to_run(records, payload.retry_failed)}
    opened: dict[int, IssueInfo] = {}
    for candidate in await asyncio.to_thread(repo.own_issues, SUB_TASK_LABEL):
        for found in find_markers(candidate.body):
            if found.matches("sub-task", parent=master) and found.fields.get("task", "").isdigit():
                opened.setdefault(int(found.fields["task"]), candidate)
    by_index = {task.index: task for task in tasks}

    async def publish(elapsed: float | None) -> None:
        outcome = verdict(records, settings.success_threshold)
        text = render_summary(master, records, outcome, report.conflicts, elapsed)
        state = embed_state({"records": [r.model_dump(mode="json") for r in records]})
        await asyncio.to_thread(
            repo.upsert_comment, master, f"{text}\n\n{state}", SUMMARY, master=master
        )

    dispatcher = QueueDispatcher(
        queue, repo, item, master, settings.task_timeout_seconds, poll_seconds
    )
    publisher = _Publisher(publish, publish_interval)
    limit = asyncio.Semaphore(settings.max_workers)
    started = time.monotonic()
    log.info(
        "master #%d: %d sub-tasks, %d to run, %d conflicts, max %d at a time",
        master,
        len(records),
        len(running),
        len(report.conflicts),
        settings.max_workers,
    )

    async def run_one(record: TaskRecord) -> None:
        async with limit:
            record.state = TaskState.RUNNING
            publisher.changed()
            began = time.monotonic()
            await dispatcher.run(record)
            record.duration_seconds = round(time.monotonic() - began, 3)
            publisher.changed()

    # Sub-issues are opened one after another (GitHub wants writes serialised) before
    # anything is dispatched, so that opening them does not compete with running work.
    for record in records:
        task = by_index[record.index]
        sub = opened.get(task.index)
        if sub is None:
            sub = await asyncio.to_thread(
                repo.create_marked_issue,
                f"[Master #{master}] {task.title}",
                sub_issue_body(master, task, len(tasks)),
                [SUB_TASK_LABEL],
                "sub-task",
                parent=master,
                task=task.index,
            )
        record.issue = sub.number
    publisher.start()
    try:
        await asyncio.gather(*(run_one(record) for record in records if id(record) in running))
    finally:
        await publisher.finish(time.monotonic() - started)
    outcome = verdict(records, settings.success_threshold)
    for record in records:
        if record.state in {TaskState.FAILED, TaskState.TIMED_OUT}:
            await asyncio.to_thread(
                repo.ensure_issue,
                f"[Master #{master}] Diagnostic: {record.title}",
                diagnostic_body(master, record),
                [DIAGNOSTIC_LABEL],
                "diagnostic",
                parent=master,
                task=record.index,
                attempt=record.attempt,
            )
    output = {
        "succeeded": outcome.succeeded,
        "failed": outcome.failed,
        "total": outcome.total,
        "conflicts": len(report.conflicts),
    }
    if outcome.success:
        return HandlerResult.succeeded(output, follow_ups=())
    return HandlerResult.failed(
        f"{outcome.succeeded}/{outcome.total} sub-tasks of #{master} succeeded, below the "
        f"{outcome.threshold:.0%} threshold",
        retryable=False,
    )
