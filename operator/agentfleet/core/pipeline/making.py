"""Making work items: ids, payloads and the Project's settings put together in one place.

Intake makes an issue's or a merged pull request's first item from its Project; genesis
makes an item per sub-issue, a master issue one per sub-task, each from the item it came
from. Every item made from a Project carries the Project's repository, API URL and token
budget (`project_payload`), and every item made from another one keeps them
(`inherited_payload`), with its lane, pipeline and trace. The queue's own follow-ups
(next stage, review) are made in `agentfleet.core.queue.routing` with `follow_up_id`.
"""

from __future__ import annotations

from typing import Any, Protocol

from agentfleet.core.api import Stage
from agentfleet.core.pipeline.ids import (
    Qualifier,
    QualifierKind,
    attempt_qualifier,
    issue_item_id,
    master_summary_id,
    pull_item_id,
)
from agentfleet.core.pipeline.items import WorkItem
from agentfleet.core.pipeline.lanes import Lane
from agentfleet.core.pipeline.payloads import (
    API_URL_KEY,
    COST_BUDGET_KEY,
    DRAFT_PULLS_KEY,
    INHERITED_PAYLOAD_KEYS,
    REPOSITORY_KEY,
    REQUESTED_BY_KEY,
    TOKEN_BUDGET_KEY,
    FeedbackPayload,
    IssuePayload,
    MasterSummary,
    MasterSummaryPayload,
    PullPayload,
    StagePayload,
)


class ProjectSettings(Protocol):
    """What an item takes from its Project (`agentfleet.core.github.ProjectIntake` is one)."""

    @property
    def namespace(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def repository(self) -> str: ...
    @property
    def api_url(self) -> str | None: ...
    @property
    def tokens_per_item(self) -> int | None: ...
    @property
    def cost_per_item_usd(self) -> float | None: ...
    @property
    def draft_pulls(self) -> bool: ...
    @property
    def lane(self) -> Lane: ...
    @property
    def stages(self) -> tuple[Stage, ...]: ...


def project_payload(project: ProjectSettings) -> dict[str, Any]:
    """The Project's settings every one of its items carries."""
    carried: dict[str, Any] = {REPOSITORY_KEY: project.repository}
    if project.api_url:
        carried[API_URL_KEY] = project.api_url
    if project.tokens_per_item:
        carried[TOKEN_BUDGET_KEY] = project.tokens_per_item
    if project.cost_per_item_usd:
        carried[COST_BUDGET_KEY] = project.cost_per_item_usd
    if project.draft_pulls:
        carried[DRAFT_PULLS_KEY] = True
    return carried


def inherited_payload(parent: WorkItem) -> dict[str, Any]:
    """The Project's settings as `parent` carries them, for an item made from it."""
    return {k: v for k, v in parent.payload.items() if k in INHERITED_PAYLOAD_KEYS}


def _project_item(
    project: ProjectSettings,
    item_id: str,
    stage: Stage,
    payload: StagePayload,
    requested_by: str | None = None,
) -> WorkItem:
    asked = {REQUESTED_BY_KEY: requested_by} if requested_by else {}
    return WorkItem(
        id=item_id,
        namespace=project.namespace,
        project=project.name,
        stage=stage,
        lane=project.lane,
        payload={**project_payload(project), **asked, **payload.dump()},
        pipeline=project.stages,
    )


def issue_item(
    project: ProjectSettings,
    stage: Stage,
    payload: IssuePayload,
    command: QualifierKind | None = None,
    comment_id: int = 0,
    requested_by: str | None = None,
) -> WorkItem:
    """An issue's item for `stage` of its Project; with a `command`, the one item of that
    command in comment `comment_id`; `requested_by` is who asked for it, when known."""
    qualifier = Qualifier(kind=command, number=comment_id) if command is not None else None
    item_id = issue_item_id(project.namespace, project.name, payload.issue, stage, qualifier)
    return _project_item(project, item_id, stage, payload, requested_by)


def pull_item(
    project: ProjectSettings, stage: Stage, pull: int, requested_by: str | None = None
) -> WorkItem:
    """A merged pull request's item for `stage` of its Project (`requested_by`: who merged
    it, when known)."""
    item_id = pull_item_id(project.namespace, project.name, pull, stage)
    return _project_item(project, item_id, stage, PullPayload(pull=pull), requested_by)


def feedback_item(
    project: ProjectSettings,
    pull: int,
    branch: str,
    round_number: int,
    max_rounds: int,
    requested_by: str | None = None,
) -> WorkItem:
    """Feedback round `round_number` on pull request `pull` (a development item that
    pushes to `branch`): one id per round, so feedback that arrives while the round is
    queued is coalesced into it."""
    qualifier = Qualifier(kind=QualifierKind.ROUND, number=round_number)
    item_id = pull_item_id(project.namespace, project.name, pull, Stage.DEVELOPMENT, qualifier)
    payload = FeedbackPayload(pull=pull, branch=branch, round=round_number, max_rounds=max_rounds)
    return _project_item(project, item_id, Stage.DEVELOPMENT, payload, requested_by)


def next_round_item(parent: WorkItem) -> WorkItem:
    """The round after `parent`'s (feedback that arrived while it ran)."""
    payload = FeedbackPayload.of(parent)
    following = payload.model_copy(update={"round": payload.round + 1})
    qualifier = Qualifier(kind=QualifierKind.ROUND, number=following.round)
    item_id = pull_item_id(parent.namespace, parent.project, payload.pull, parent.stage, qualifier)
    return _derived_item(parent, item_id, parent.stage, following)


def _derived_item(parent: WorkItem, item_id: str, stage: Stage, payload: StagePayload) -> WorkItem:
    return WorkItem(
        id=item_id,
        namespace=parent.namespace,
        project=parent.project,
        stage=stage,
        lane=parent.lane,
        payload={**inherited_payload(parent), **payload.dump()},
        pipeline=parent.pipeline,
        trace=parent.trace,
    )


def stage_item(
    parent: WorkItem, stage: Stage, issue: int, planned_from: int | None = None
) -> WorkItem:
    """A follow-up item for one issue of the parent's project, keyed as intake keys it
    (genesis: one per sub-issue, `planned_from` the planned issue)."""
    item_id = issue_item_id(parent.namespace, parent.project, issue, stage)
    return _derived_item(parent, item_id, stage, IssuePayload(issue=issue, parent=planned_from))


def sub_task_item(parent: WorkItem, issue: int, master: int, task: int, attempt: int) -> WorkItem:
    """A master issue's sub-task `task` (sub-issue `issue`) for the development stage; a
    later `attempt` is a new item (`/attempt-<k>`), the first keeps intake's id."""
    stage = Stage.DEVELOPMENT
    item_id = issue_item_id(
        parent.namespace, parent.project, issue, stage, attempt_qualifier(attempt)
    )
    payload = IssuePayload(issue=issue, parent=master, task=task)
    return _derived_item(parent, item_id, stage, payload)


def master_summary_item(fanned_out: WorkItem, master: int, summary: MasterSummary) -> WorkItem:
    """The summary of the fan-out item `fanned_out` made for master issue `master`: a
    genesis item, keyed `<fanned-out id>/master-summary`, in the same lane."""
    payload = MasterSummaryPayload(issue=master, master_summary=summary)
    return _derived_item(fanned_out, master_summary_id(fanned_out.id), Stage.GENESIS, payload)
