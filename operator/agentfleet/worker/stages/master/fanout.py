"""A master issue's fan-out: the genesis mode that opens sub-issues and registers the join.

Sub-issues `[Master #N] <title>` are created once (found again by their markers); the
sub-tasks to run become development items registered with the queue as one join
(`WorkQueue.fan_out`), in the same atomic step that enqueues the first `max_workers` of
them, together with the master-summary item the last one to finish enqueues
(`agentfleet.worker.stages.master.summary`). The genesis worker then returns: nobody waits for
the sub-tasks. One summary comment on the master issue carries the run's state, so a
redelivery registers the same join again (which changes nothing) and `/agentfleet retry`
reruns only failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentfleet.core.github import DRY_RUN_LABEL, SUB_TASK_LABEL, IssueInfo, RepoClient
from agentfleet.core.github.events import GENERATED_LABELS
from agentfleet.core.github.markers import embed_state, extract_state, find_markers
from agentfleet.core.pipeline import (
    IssuePayload,
    MasterSummary,
    WorkItem,
    master_summary_item,
    sub_task_item,
)
from agentfleet.core.queue import FanOut, WorkQueue
from agentfleet.worker.handlers import HandlerResult
from agentfleet.worker.stages.master.aggregate import (
    TaskRecord,
    TaskState,
    render_summary,
    tasks_to_run,
    verdict,
)
from agentfleet.worker.stages.master.parse import SubTask, parse_subtasks
from agentfleet.worker.stages.master.validate import Conflict, render_report, validate

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


def development_item(parent: WorkItem, record: TaskRecord, master: int) -> WorkItem:
    """The development item of a sub-task whose sub-issue is open (`record.issue`)."""
    if record.issue is None:
        raise ValueError(f"sub-task {record.index} has no sub-issue: it is made before its item")
    return sub_task_item(parent, record.issue, master, record.index, record.attempt)


def restore_records(state: Any, tasks: list[SubTask]) -> list[TaskRecord]:
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


def summary_comment(
    master: int,
    records: list[TaskRecord],
    threshold: float,
    conflicts: tuple[Conflict, ...],
    elapsed: float | None,
) -> str:
    """The summary comment's text with the run's state hidden in it."""
    text = render_summary(master, records, verdict(records, threshold), conflicts, elapsed)
    state = embed_state({"records": [r.model_dump(mode="json") for r in records]})
    return f"{text}\n\n{state}"


async def fan_out_master(
    *,
    queue: WorkQueue,
    repo: RepoClient,
    item: WorkItem,
    issue: IssueInfo,
    settings: ParallelSettings,
    log: logging.LoggerAdapter[logging.Logger],
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
    records = restore_records(extract_state(existing.body) if existing else None, tasks)
    running = tasks_to_run(records, payload.retry_failed)
    opened: dict[int, IssueInfo] = {}
    for candidate in await asyncio.to_thread(repo.own_issues, SUB_TASK_LABEL):
        for found in find_markers(candidate.body):
            if found.matches("sub-task", parent=master) and found.fields.get("task", "").isdigit():
                opened.setdefault(int(found.fields["task"]), candidate)
    by_index = {task.index: task for task in tasks}

    # Sub-issues are opened one after another (GitHub wants writes serialised) before the
    # fan-out, so that opening them does not compete with running work.
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
    # The queue releases the first `max_workers` at once and the rest in order.
    for position, record in enumerate(running):
        record.state = TaskState.RUNNING if position < settings.max_workers else TaskState.PENDING
    summary = MasterSummary(
        join=item.id,
        records=[r.model_dump(mode="json") for r in records],
        conflicts=[c.model_dump(mode="json") for c in report.conflicts],
        success_threshold=settings.success_threshold,
        task_timeout_seconds=settings.task_timeout_seconds,
    )
    result = await queue.fan_out(
        FanOut(
            join_id=item.id,
            children=tuple(development_item(item, record, master) for record in running),
            summary=master_summary_item(item, master, summary),
            window=settings.max_workers,
            timeout_seconds=settings.task_timeout_seconds,
            parent=master,
            family=tuple(r.issue for r in records if r.issue is not None),
        )
    )
    join = None if result.registered else await queue.join(item.namespace, item.id)
    if join is None or join.summarised_at is None:
        # Not once the summary may have written the final comment (a late redelivery).
        text = summary_comment(master, records, settings.success_threshold, report.conflicts, None)
        await asyncio.to_thread(repo.upsert_comment, master, text, SUMMARY, master=master)
    log.info(
        "master #%d: %d sub-tasks, %d fanned out (%s), %d conflicts, max %d at a time",
        master,
        len(records),
        len(running),
        "registered" if result.registered else "already registered",
        len(report.conflicts),
        settings.max_workers,
    )
    return HandlerResult.succeeded(
        {
            "fanned_out": len(running),
            "total": len(records),
            "conflicts": len(report.conflicts),
        },
        follow_ups=(),
    )
