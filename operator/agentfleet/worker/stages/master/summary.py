"""A master issue's summary: the genesis mode that closes a fan-out.

The queue enqueues the master-summary item when the join's last sub-task has finished
(succeeded, dead-lettered, or timed out). Its handler reads the join, writes the summary
comment on the master issue, files a diagnostic issue per failed sub-task and applies the
Project's success threshold: below it, the item fails without retry and goes to review.
Everything it writes is found again before it is written, so a redelivery repeats
nothing.
"""

from __future__ import annotations

import asyncio
import logging

from agentfleet.core.github import DIAGNOSTIC_LABEL, RepoClient
from agentfleet.core.pipeline import MasterSummaryPayload, WorkItem, issue_branch
from agentfleet.core.queue import WorkQueue
from agentfleet.worker.handlers import HandlerResult
from agentfleet.worker.stages.master.aggregate import TaskRecord, TaskState, apply_join, verdict
from agentfleet.worker.stages.master.fanout import SUMMARY, development_item, summary_comment
from agentfleet.worker.stages.master.validate import Conflict


def diagnostic_body(master: int, record: TaskRecord) -> str:
    return (
        f"Sub-task {record.index} of #{master} ({record.title}, issue #{record.issue}) did not "
        f"succeed on attempt {record.attempt}: **{record.state.value.replace('_', ' ')}**.\n\n"
        "```\n"
        f"{(record.error or 'no error recorded').strip()[:3000]}\n"
        "```\n\n"
        f"Comment `/agentfleet retry` on #{master} to run the failed sub-tasks again."
    )


async def summarise_master(
    *,
    queue: WorkQueue,
    repo: RepoClient,
    item: WorkItem,
    log: logging.LoggerAdapter[logging.Logger],
) -> HandlerResult:
    payload = MasterSummaryPayload.of(item)
    master, run = payload.issue, payload.master_summary
    join = await queue.join(item.namespace, run.join)
    if join is None:
        raise RuntimeError(f"the join {run.join} of master #{master} is not in the queue")
    records = [TaskRecord.model_validate(raw) for raw in run.records]
    conflicts = tuple(Conflict.model_validate(raw) for raw in run.conflicts)
    child_ids = {
        record.index: development_item(item, record, master).id
        for record in records
        if record.issue is not None
    }
    before = {record.index: record.state for record in records}
    apply_join(records, join.children, child_ids, run.task_timeout_seconds)
    # The pull requests of the sub-tasks that succeeded in this run, looked up together
    # (reads; the writes below stay one after another).
    found = [
        (record, record.issue)
        for record in records
        if record.state is TaskState.SUCCEEDED
        and before[record.index] is not TaskState.SUCCEEDED
        and record.issue is not None
    ]
    pulls = await asyncio.gather(
        *(asyncio.to_thread(repo.find_pull, issue_branch(issue)) for _, issue in found)
    )
    for (record, _), pull in zip(found, pulls, strict=True):
        if pull is not None:
            record.pull, record.pull_url = pull.number, pull.html_url
    finished = join.summarised_at or join.created_at
    elapsed = (finished - join.created_at).total_seconds()
    text = summary_comment(master, records, run.success_threshold, conflicts, elapsed)
    await asyncio.to_thread(repo.upsert_comment, master, text, SUMMARY, master=master)
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
    outcome = verdict(records, run.success_threshold)
    log.info("master #%d: %d/%d sub-tasks succeeded", master, outcome.succeeded, outcome.total)
    output = {
        "succeeded": outcome.succeeded,
        "failed": outcome.failed,
        "total": outcome.total,
        "conflicts": len(conflicts),
    }
    if outcome.success:
        return HandlerResult.succeeded(output, follow_ups=())
    return HandlerResult.failed(
        f"{outcome.succeeded}/{outcome.total} sub-tasks of #{master} succeeded, below the "
        f"{outcome.threshold:.0%} threshold",
        retryable=False,
    )
