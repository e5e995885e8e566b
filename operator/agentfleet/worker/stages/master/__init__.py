"""Master issues, a mode of the genesis stage: parse, validate, fan out as a join in the
queue, and summarise when the last sub-task finishes.

`parse`, `validate` and `aggregate` are pure; `fanout` (the master item) and `summary`
(the master-summary item) are the thin I/O around them.
"""

from agentfleet.worker.stages.master.aggregate import (
    TaskRecord,
    TaskState,
    Verdict,
    apply_join,
    render_summary,
    tasks_to_run,
    verdict,
)
from agentfleet.worker.stages.master.fanout import (
    ParallelSettings,
    development_item,
    fan_out_master,
    sub_issue_body,
)
from agentfleet.worker.stages.master.parse import SubTask, normalise_path, parse_subtasks
from agentfleet.worker.stages.master.summary import diagnostic_body, summarise_master
from agentfleet.worker.stages.master.validate import (
    Conflict,
    ValidationReport,
    overlaps,
    render_report,
    validate,
)

__all__ = [
    "Conflict",
    "ParallelSettings",
    "SubTask",
    "TaskRecord",
    "TaskState",
    "ValidationReport",
    "Verdict",
    "apply_join",
    "development_item",
    "diagnostic_body",
    "fan_out_master",
    "normalise_path",
    "overlaps",
    "parse_subtasks",
    "render_report",
    "render_summary",
    "sub_issue_body",
    "summarise_master",
    "tasks_to_run",
    "validate",
    "verdict",
]
