"""The one home of work items: what an item is, its id, its payload, its lane, what it
inherits from its Project, and the branch its work is pushed to.

- `items`: `WorkItem` and its trace, as the queue stores them.
- `ids`: the id grammar (`ItemKey`, `issue_item_id`, `pull_item_id`, `follow_up_id`):
  the queue's idempotency keys.
- `payloads`: the Project's settings every item carries and the payload model each stage
  reads (`stage_payload`); a payload that does not fit is a `PayloadError`.
- `lanes`: priority lanes and the general specialty lane.
- `making`: items made from a Project (intake) or from another item (genesis, a master
  issue's sub-tasks and its summary).
- `branches`: `agentfleet/issue-<n>` and `agentfleet/docs-issue-<n>`.

This package imports nothing of agentfleet but `agentfleet.core.api`; the queue, intake and
the stages build on it.
"""

from agentfleet.core.pipeline.branches import (
    BRANCH_PREFIX,
    DOCS_BRANCH_PREFIX,
    docs_branch,
    is_work_branch,
    issue_branch,
    issue_of_branch,
)
from agentfleet.core.pipeline.ids import (
    MASTER_SUMMARY,
    ItemIdError,
    ItemKey,
    Qualifier,
    QualifierKind,
    Subject,
    attempt_qualifier,
    follow_up_id,
    issue_item_id,
    master_summary_id,
    pull_item_id,
)
from agentfleet.core.pipeline.items import ItemId, Name, TraceEntry, WorkItem, utcnow
from agentfleet.core.pipeline.lanes import GENERAL_SPECIALTY, LANES_BY_PRIORITY, Lane, project_lane
from agentfleet.core.pipeline.making import (
    ProjectSettings,
    feedback_item,
    inherited_payload,
    issue_item,
    master_summary_item,
    next_round_item,
    project_payload,
    pull_item,
    stage_item,
    sub_task_item,
)
from agentfleet.core.pipeline.payloads import (
    API_URL_KEY,
    INHERITED_PAYLOAD_KEYS,
    STAGE_PAYLOADS,
    DeadLetter,
    DeadLetterReview,
    FeedbackPayload,
    GenesisPayload,
    IssuePayload,
    MasterSummary,
    MasterSummaryPayload,
    PayloadError,
    ProjectCarried,
    PullPayload,
    ReviewPayload,
    StagePayload,
    cost_cap,
    genesis_payload,
    review_payload,
    stage_payload,
    token_cap,
)

__all__ = [
    "API_URL_KEY",
    "BRANCH_PREFIX",
    "DOCS_BRANCH_PREFIX",
    "GENERAL_SPECIALTY",
    "INHERITED_PAYLOAD_KEYS",
    "LANES_BY_PRIORITY",
    "MASTER_SUMMARY",
    "STAGE_PAYLOADS",
    "DeadLetter",
    "DeadLetterReview",
    "FeedbackPayload",
    "GenesisPayload",
    "IssuePayload",
    "ItemId",
    "ItemIdError",
    "ItemKey",
    "Lane",
    "MasterSummary",
    "MasterSummaryPayload",
    "Name",
    "PayloadError",
    "ProjectCarried",
    "ProjectSettings",
    "PullPayload",
    "Qualifier",
    "QualifierKind",
    "ReviewPayload",
    "StagePayload",
    "Subject",
    "TraceEntry",
    "WorkItem",
    "attempt_qualifier",
    "cost_cap",
    "docs_branch",
    "feedback_item",
    "follow_up_id",
    "genesis_payload",
    "inherited_payload",
    "is_work_branch",
    "issue_branch",
    "issue_item",
    "issue_item_id",
    "issue_of_branch",
    "master_summary_id",
    "master_summary_item",
    "next_round_item",
    "project_lane",
    "project_payload",
    "pull_item",
    "pull_item_id",
    "review_payload",
    "stage_item",
    "stage_payload",
    "sub_task_item",
    "token_cap",
    "utcnow",
]
