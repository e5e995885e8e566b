"""Sub-task state, the partial-success verdict and the master issue's summary (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from agentfleet.core.queue.models import ChildState, JoinChild
from agentfleet.worker.stages.master.validate import Conflict

DEFAULT_SUCCESS_THRESHOLD = 0.8


class TaskState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"

    @property
    def terminal(self) -> bool:
        return self in {TaskState.SUCCEEDED, TaskState.FAILED, TaskState.TIMED_OUT}


class TaskRecord(BaseModel):
    """One sub-task's journey; stored in the summary comment between deliveries."""

    model_config = ConfigDict(extra="forbid")

    index: int
    title: str
    issue: int | None = None
    state: TaskState = TaskState.PENDING
    attempt: int = 1
    """Incremented by each retry request; part of the development item's id."""
    pull: int | None = None
    pull_url: str | None = None
    error: str | None = None
    duration_seconds: float | None = None


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    total: int
    succeeded: int
    failed: int
    unfinished: int
    threshold: float

    @property
    def ratio(self) -> float:
        return self.succeeded / self.total if self.total else 0.0

    @property
    def complete(self) -> bool:
        return self.unfinished == 0

    @property
    def success(self) -> bool:
        """Every task has finished and at least `threshold` of them succeeded."""
        return self.complete and self.total > 0 and self.ratio >= self.threshold - 1e-9


def verdict(records: list[TaskRecord], threshold: float = DEFAULT_SUCCESS_THRESHOLD) -> Verdict:
    return Verdict(
        total=len(records),
        succeeded=sum(r.state is TaskState.SUCCEEDED for r in records),
        failed=sum(r.state in {TaskState.FAILED, TaskState.TIMED_OUT} for r in records),
        unfinished=sum(not r.state.terminal for r in records),
        threshold=threshold,
    )


def tasks_to_run(records: list[TaskRecord], retry_failed: bool) -> list[TaskRecord]:
    """What a delivery of the master item runs, updating retried records in place.

    A redelivery continues unfinished tasks (their development items are idempotent, so
    finished ones report back at once). A retry request also runs the failed and timed-out
    ones again under a new attempt number; succeeded tasks are never rerun.
    """
    chosen = []
    for record in records:
        if retry_failed and record.state in {TaskState.FAILED, TaskState.TIMED_OUT}:
            record.attempt += 1
            record.state = TaskState.PENDING
            record.error = None
            record.duration_seconds = None
        if not record.state.terminal:
            chosen.append(record)
    return chosen


def apply_join(
    records: list[TaskRecord],
    children: Mapping[str, JoinChild],
    child_ids: Mapping[int, str],
    timeout_seconds: float,
) -> None:
    """Update the records in place from the join's children (`child_ids`: task index ->
    the id of its development item in this run). Records of tasks the run did not include
    (succeeded earlier) are left as they are."""
    for record in records:
        child = children.get(child_ids.get(record.index, ""))
        if child is None:
            continue
        record.duration_seconds = child.duration_seconds
        if child.state is ChildState.SUCCEEDED:
            record.state, record.error = TaskState.SUCCEEDED, None
        elif child.state is ChildState.DEAD_LETTERED:
            record.state, record.error = TaskState.FAILED, child.error
        elif child.state is ChildState.TIMED_OUT:
            record.state = TaskState.TIMED_OUT
            record.error = f"no result within the task timeout of {timeout_seconds:g}s"
        elif child.state is ChildState.RUNNING:
            record.state = TaskState.RUNNING
        else:
            record.state = TaskState.PENDING


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{seconds:.1f}s"


_ICONS = {
    TaskState.PENDING: "⏳ pending",
    TaskState.RUNNING: "🔄 running",
    TaskState.SUCCEEDED: "✅ succeeded",
    TaskState.FAILED: "❌ failed",
    TaskState.TIMED_OUT: "⌛ timed out",
}


def render_summary(
    master: int,
    records: list[TaskRecord],
    outcome: Verdict,
    conflicts: tuple[Conflict, ...] = (),
    elapsed_seconds: float | None = None,
) -> str:
    if not outcome.complete:
        headline = f"in progress: {outcome.succeeded + outcome.failed}/{outcome.total} finished"
    elif outcome.success:
        headline = f"succeeded: {outcome.succeeded}/{outcome.total} sub-tasks"
    else:
        headline = f"failed: {outcome.succeeded}/{outcome.total} sub-tasks"
    lines = [
        f"## agentfleet parallel run for #{master}: {headline}",
        "",
        f"Success threshold {outcome.threshold:.0%}; "
        f"{outcome.succeeded} succeeded, {outcome.failed} failed, {outcome.unfinished} unfinished"
        + (f"; wall time {_duration(elapsed_seconds)}." if elapsed_seconds is not None else "."),
        "",
        "| # | Sub-task | Issue | State | Pull request | Duration | Attempt |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for record in records:
        issue = f"#{record.issue}" if record.issue else ""
        pull = f"#{record.pull}" if record.pull else ""
        title = record.title.replace("|", "\\|")
        lines.append(
            f"| {record.index} | {title} | {issue} | {_ICONS[record.state]} | {pull} "
            f"| {_duration(record.duration_seconds)} | {record.attempt} |"
        )
    failures = [r for r in records if r.state in {TaskState.FAILED, TaskState.TIMED_OUT}]
    if failures:
        lines += ["", "### Failures"]
        for record in failures:
            error = (record.error or "no error recorded").strip().splitlines()[0][:300]
            lines.append(f"- {record.index}. {record.title}: {error}")
        lines += ["", "Comment `/agentfleet retry` to run only the failed sub-tasks again."]
    if conflicts:
        lines += ["", "### Overlapping sub-tasks (review their pull requests together)"]
        for conflict in conflicts:
            shared = ", ".join(f"`{s}`" for s in conflict.shared)
            lines.append(f"- {conflict.first} and {conflict.second}: {shared}")
    return "\n".join(lines)
