"""Parallel orchestration of a master issue: parse, validate, fan out, aggregate."""

from agentfleet.orchestration.aggregate import (
    TaskRecord,
    TaskState,
    Verdict,
    render_summary,
    tasks_to_run,
    verdict,
)
from agentfleet.orchestration.parse import SubTask, parse_subtasks
from agentfleet.orchestration.runner import ParallelSettings, QueueDispatcher, run_master
from agentfleet.orchestration.validate import (
    Conflict,
    ValidationReport,
    overlaps,
    render_report,
    validate,
)

__all__ = [
    "Conflict",
    "ParallelSettings",
    "QueueDispatcher",
    "SubTask",
    "TaskRecord",
    "TaskState",
    "ValidationReport",
    "Verdict",
    "overlaps",
    "parse_subtasks",
    "render_report",
    "render_summary",
    "run_master",
    "tasks_to_run",
    "validate",
    "verdict",
]
