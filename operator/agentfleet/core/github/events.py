"""Which GitHub events become work items (pure), and polling a repository for them.

An issue is enqueued under a deterministic id, `<namespace>/<project>/issue-<n>/<stage>`
(made by `agentfleet.core.pipeline`, the one home of ids, payloads and branch names), and the
queue's enqueue is idempotent on ids, so an issue seen by polling, by several webhook
deliveries and by redeliveries is still one work item.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field

from agentfleet.core.api import Stage
from agentfleet.core.api.project import ProjectSpec
from agentfleet.core.github.client import IssueInfo, PullInfo, RepoClient
from agentfleet.core.github.credentials import repository_endpoint
from agentfleet.core.pipeline import (
    BRANCH_PREFIX,
    IssuePayload,
    Lane,
    QualifierKind,
    WorkItem,
    is_work_branch,
    issue_item,
    project_lane,
    pull_item,
)

MASTER_LABEL = "agentfleet:master"
"""An issue whose checklist is fanned out in parallel (taken in even without an intake
label)."""
DRY_RUN_LABEL = "agentfleet:dry-run"
"""With MASTER_LABEL: only validate the checklist and report; create nothing."""
SUB_TASK_LABEL = "agentfleet:sub-task"
DIAGNOSTIC_LABEL = "agentfleet:diagnostic"
DOCS_LABEL = "agentfleet:docs"
GENERATED_LABELS = (SUB_TASK_LABEL, DIAGNOSTIC_LABEL, DOCS_LABEL)
"""Labels of issues agentfleet opens itself; intake never takes those in again."""

Enqueue = Callable[[Sequence[WorkItem]], Awaitable[list[str]]]


class ProjectIntake(BaseModel):
    """What intake needs to know about one Project (an `agentfleet.core.pipeline.ProjectSettings`:
    its items inherit the repository, API URL, token budget, lane and stages)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str
    name: str
    repository: str
    """`spec.repository` as written (owner/name or an HTTPS URL)."""
    api_url: str | None = None
    """`spec.githubApiUrl`: None derives the API from the repository."""
    labels: tuple[str, ...] = ("agentfleet",)
    stages: tuple[Stage, ...] = (Stage.GENESIS, Stage.DEVELOPMENT, Stage.CONTENT)
    lane: Lane = Lane.NORMAL
    paused: bool = False
    parallelism: dict[str, float] = Field(default_factory=dict)
    """`spec.parallelism` (camelCase), handed to master issues' items."""
    tokens_per_item: int | None = None
    cost_per_item_usd: float | None = None
    """`spec.budgets.tokensPerItem`, handed to every item as `token_budget`."""
    draft_pulls: bool = False
    """`spec.pullRequests.draft`, handed to every item."""
    request_review: bool = True
    """`spec.pullRequests.requestReview`: items record who asked (`requested_by`)."""
    max_fix_rounds: int = 3
    """`spec.pullRequests.maxFixRounds`: the loop guard of pull-request feedback."""
    allowed_bots: tuple[str, ...] = ()
    """`spec.intake.allowedBots`: bots that may trigger (`agentfleet.core.github.triggers`)."""

    @property
    def full_name(self) -> str:
        return repository_endpoint(self.repository)[1]

    @classmethod
    def from_spec(cls, namespace: str, name: str, spec: ProjectSpec) -> ProjectIntake:
        return cls(
            namespace=namespace,
            name=name,
            repository=spec.repository,
            api_url=spec.github_api_url,
            labels=tuple(spec.intake.labels),
            stages=tuple(spec.pipeline.stages),
            lane=project_lane(spec.priority),
            paused=spec.paused,
            parallelism=spec.parallelism.model_dump(by_alias=True),
            tokens_per_item=spec.budgets.tokens_per_item,
            cost_per_item_usd=spec.budgets.cost_per_item_usd,
            allowed_bots=tuple(spec.intake.allowed_bots),
            draft_pulls=spec.pull_requests.draft,
            request_review=spec.pull_requests.request_review,
            max_fix_rounds=spec.pull_requests.max_fix_rounds,
        )

    def asker(self, login: str | None, is_bot: bool = False) -> str | None:
        """Whom the work's pull requests ask to review: the person who asked, when known
        and this Project requests reviews (never a bot)."""
        if not self.request_review or not login or is_bot or login.lower().endswith("[bot]"):
            return None
        return login


class IssueFacts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    number: int
    title: str
    labels: tuple[str, ...] = ()
    state: str = "open"
    is_pull: bool = False

    @classmethod
    def of(cls, issue: IssueInfo) -> IssueFacts:
        return cls(
            number=issue.number,
            title=issue.title,
            labels=issue.labels,
            state=issue.state,
            is_pull=issue.is_pull,
        )


def issue_work(
    project: ProjectIntake, issue: IssueFacts, requested_by: str | None = None
) -> WorkItem | None:
    """The first-stage item for an open issue carrying an intake (or master) label
    (`requested_by`: who labelled it, when a webhook says)."""
    if issue.is_pull or issue.state != "open" or project.paused:
        return None
    if any(label in GENERATED_LABELS for label in issue.labels):
        return None
    if not any(label in (*project.labels, MASTER_LABEL) for label in issue.labels):
        return None
    parallelism = project.parallelism if MASTER_LABEL in issue.labels else None
    payload = IssuePayload(issue=issue.number, title=issue.title, parallelism=parallelism or None)
    return issue_item(project, project.stages[0], payload, requested_by=requested_by)


def merged_pull_work(
    project: ProjectIntake, pull: PullInfo, requested_by: str | None = None
) -> WorkItem | None:
    """A content item for merged agentfleet work (docs pull requests excluded;
    `requested_by`: who merged it, when a webhook says)."""
    if Stage.CONTENT not in project.stages or project.paused or not pull.merged:
        return None
    if not is_work_branch(pull.head):
        return None
    return pull_item(project, Stage.CONTENT, pull.number, requested_by)


def command_work(
    project: ProjectIntake,
    issue: IssueFacts,
    comment_id: int,
    kind: QualifierKind,
    requested_by: str | None = None,
) -> WorkItem:
    """The item of a `/agentfleet retry` or `/agentfleet dry-run` comment on a master issue:
    one per comment (who may command is `agentfleet.core.github.triggers.decide`'s call)."""
    payload = IssuePayload(
        issue=issue.number,
        title=issue.title,
        retry_failed=kind is QualifierKind.RETRY_FAILED,
        dry_run=kind is QualifierKind.DRY_RUN,
        parallelism=project.parallelism or None,
    )
    return issue_item(project, project.stages[0], payload, kind, comment_id, requested_by)


# ---- webhook payloads ----------------------------------------------------------------


class _Payload(BaseModel):
    """GitHub adds fields to its payloads over time; only the ones read here matter."""

    model_config = ConfigDict(extra="ignore")


class _Named(_Payload):
    name: str


class _User(_Payload):
    login: str
    type: str = "User"


class _Issue(_Payload):
    number: int
    title: str
    state: str
    labels: list[_Named] = Field(default_factory=list)
    pull_request: dict[str, object] | None = None

    def facts(self) -> IssueFacts:
        return IssueFacts(
            number=self.number,
            title=self.title,
            labels=tuple(label.name for label in self.labels),
            state=self.state,
            is_pull=self.pull_request is not None,
        )


class _Repository(_Payload):
    full_name: str


class _Comment(_Payload):
    id: int
    body: str
    user: _User


class _Ref(_Payload):
    ref: str


class _Pull(_Payload):
    number: int
    title: str
    state: str
    merged: bool = False
    merged_at: str | None = None
    head: _Ref
    base: _Ref
    html_url: str = ""
    user: _User


class IssuesEvent(_Payload):
    action: str
    issue: _Issue
    repository: _Repository
    assignee: _User | None = None
    sender: _User | None = None


class IssueCommentEvent(_Payload):
    action: str
    issue: _Issue
    comment: _Comment
    repository: _Repository


class PullRequestEvent(_Payload):
    action: str
    pull_request: _Pull
    repository: _Repository
    sender: _User | None = None


class DeliveryError(ValueError):
    """A signed delivery whose content cannot be used (wrong repository, bad shape)."""


class _Delivery(_Payload):
    repository: _Repository


def check_repository(project: ProjectIntake, payload: object) -> None:
    """Raise DeliveryError unless the delivery is about the Project's repository (every
    event agentfleet reads names it)."""
    if not isinstance(payload, dict) or "repository" not in payload:
        return
    delivery = _Delivery.model_validate(payload)
    if delivery.repository.full_name.lower() != project.full_name.lower():
        raise DeliveryError(
            f"delivery for {delivery.repository.full_name}, project is {project.full_name}"
        )


def webhook_work(project: ProjectIntake, event: str, payload: object) -> list[WorkItem]:
    """The items one (verified) delivery asks for; raises pydantic's ValidationError or
    DeliveryError for a payload that does not fit its event."""
    parsed: IssuesEvent | IssueCommentEvent | PullRequestEvent
    if event == "issues":
        parsed = IssuesEvent.model_validate(payload)
    elif event == "issue_comment":
        parsed = IssueCommentEvent.model_validate(payload)
    elif event == "pull_request":
        parsed = PullRequestEvent.model_validate(payload)
    else:
        return []
    if parsed.repository.full_name.lower() != project.full_name.lower():
        raise DeliveryError(
            f"delivery for {parsed.repository.full_name}, project is {project.full_name}"
        )
    item: WorkItem | None = None
    if isinstance(parsed, IssuesEvent) and parsed.action in {"opened", "labeled", "reopened"}:
        sender = parsed.sender
        asker = project.asker(sender.login, sender.type == "Bot") if sender else None
        item = issue_work(project, parsed.issue.facts(), asker)
    elif isinstance(parsed, PullRequestEvent) and parsed.action == "closed":
        pull = parsed.pull_request
        merged = pull.merged or pull.merged_at is not None
        info = PullInfo(
            number=pull.number,
            title=pull.title,
            body="",
            state=pull.state,
            merged=merged,
            head=pull.head.ref,
            base=pull.base.ref,
            html_url=pull.html_url,
            author=pull.user.login,
        )
        sender = parsed.sender
        asker = project.asker(sender.login, sender.type == "Bot") if sender else None
        item = merged_pull_work(project, info, asker)
    return [item] if item is not None else []


# ---- polling -------------------------------------------------------------------------


async def poll_project(project: ProjectIntake, repo: RepoClient, enqueue: Enqueue) -> list[str]:
    """One poll: open issues with an intake or master label, and merged agentfleet pull
    requests; returns the ids that were new to the queue."""
    if project.paused:
        return []
    seen: dict[int, IssueFacts] = {}
    for label in dict.fromkeys((*project.labels, MASTER_LABEL)):
        for issue in await asyncio.to_thread(repo.open_issues_labelled, label):
            seen[issue.number] = IssueFacts.of(issue)
    items = [item for facts in seen.values() if (item := issue_work(project, facts))]
    if Stage.CONTENT in project.stages:
        for pull in await asyncio.to_thread(repo.merged_pulls, BRANCH_PREFIX):
            if (item := merged_pull_work(project, pull)) is not None:
                items.append(item)
    return await enqueue(items) if items else []
