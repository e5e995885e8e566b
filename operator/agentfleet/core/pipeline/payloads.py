"""What a work item carries: the Project's settings every item inherits, and the payload
each stage reads.

An item is made from these models (`agentfleet.core.pipeline.making`), so what a maker puts in
is checked where the item is made; a stage handler reads its item through the model of its
stage (`stage_payload`), so an item that does not fit (an old one, or one enqueued by
hand) is a `PayloadError` naming the item and the field, not a KeyError halfway through.
The payload itself stays a JSON object in the queue: a follow-up carries its parent's
payload forward with the handler's output merged in, so readers ignore keys they do not
know.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agentfleet.core.api import Stage
from agentfleet.core.pipeline.items import WorkItem

REPOSITORY_KEY = "repository"
"""`spec.repository` of the item's Project, as written."""
API_URL_KEY = "github_api_url"
"""The Project's `spec.githubApiUrl`, when it sets one: workers talk to that API for the
item."""
TOKEN_BUDGET_KEY = "token_budget"
"""The Project's `spec.budgets.tokensPerItem`, when it sets one."""
COST_BUDGET_KEY = "cost_budget_usd"
"""The Project's `spec.budgets.costPerItemUsd`, when it sets one."""
DRAFT_PULLS_KEY = "draft_pulls"
"""The Project's `spec.pullRequests.draft`, when true: pull requests open as drafts."""
REQUESTED_BY_KEY = "requested_by"
"""The login of the person whose trigger took the issue in, when intake knows it and the
Project's `spec.pullRequests.requestReview` is on: its pull requests ask them to review."""
INHERITED_PAYLOAD_KEYS = (
    REPOSITORY_KEY,
    API_URL_KEY,
    TOKEN_BUDGET_KEY,
    COST_BUDGET_KEY,
    DRAFT_PULLS_KEY,
    REQUESTED_BY_KEY,
)
"""Payload keys every item made from another one (follow-ups, sub-tasks) keeps."""
DEAD_LETTER_KEY = "dead_letter"
MASTER_SUMMARY_KEY = "master_summary"


class PayloadError(ValueError):
    """A work item's payload does not fit what its stage reads."""


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'payload'}: {error['msg']}"
        for error in exc.errors()
    )


class StagePayload(BaseModel):
    """A payload model: `of(item)` reads an item's payload, `dump()` writes one."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def of(cls, item: WorkItem) -> Self:
        try:
            return cls.model_validate(item.payload)
        except ValidationError as exc:
            raise PayloadError(
                f"work item {item.id} ({item.stage.value}): malformed payload for "
                f"{cls.__name__}: {_describe(exc)}"
            ) from exc

    def dump(self) -> dict[str, Any]:
        """The keys this model sets (defaults left out, as the item's JSON payload)."""
        return self.model_dump(mode="json", exclude_defaults=True)


class ProjectCarried(BaseModel):
    """The Project's settings an item carries (`INHERITED_PAYLOAD_KEYS`), read leniently
    as they always were: a budget that is not a whole number is no budget."""

    model_config = ConfigDict(frozen=True)

    repository: str
    api_url: str | None = None
    token_budget: int | None = None
    cost_budget_usd: float | None = None
    draft_pulls: bool = False
    requested_by: str | None = None

    @classmethod
    def of(cls, item: WorkItem) -> ProjectCarried:
        payload = item.payload
        if REPOSITORY_KEY not in payload:
            raise PayloadError(
                f"work item {item.id} ({item.stage.value}): malformed payload: "
                f"`{REPOSITORY_KEY}` is missing (intake puts the Project's repository there)"
            )
        return cls(
            repository=str(payload[REPOSITORY_KEY]),
            api_url=str(payload.get(API_URL_KEY) or "") or None,
            token_budget=_budget(payload.get(TOKEN_BUDGET_KEY)),
            cost_budget_usd=cost_cap(item),
            draft_pulls=payload.get(DRAFT_PULLS_KEY) is True,
            requested_by=_login(payload.get(REQUESTED_BY_KEY)),
        )


def _login(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _budget(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def token_cap(item: WorkItem) -> int | None:
    """The Project's per-item token budget, when intake put it in the payload."""
    return _budget(item.payload.get(TOKEN_BUDGET_KEY))


def cost_cap(item: WorkItem) -> float | None:
    """The Project's per-item cost budget (USD), when intake put it in the payload; a value
    that is not a positive number is no budget."""
    value = item.payload.get(COST_BUDGET_KEY)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        cap = float(value)
    except ValueError:
        return None
    return cap if math.isfinite(cap) and cap > 0 else None


class FeedbackPayload(StagePayload):
    """A feedback round on a pull request: development pushes to its branch what the
    round's feedback asks for (the feedback itself is kept in the queue, not here)."""

    pull: int
    branch: str
    round: int = Field(ge=1)
    max_rounds: int = Field(default=3, ge=1)
    """The Project's `spec.pullRequests.maxFixRounds`."""


class IssuePayload(StagePayload):
    """An issue's work: what genesis and development read.

    Intake makes it for an issue (`title`, and for a master issue `parallelism` and the
    command flags); genesis makes it for each sub-issue (`parent`); a master issue makes
    it for each sub-task (`parent`, `task`).
    """

    issue: int
    title: str | None = None
    retry_failed: bool = False
    """`/agentfleet retry` on a master issue: run the failed sub-tasks again."""
    dry_run: bool = False
    """`/agentfleet dry-run` on a master issue: validate the checklist only."""
    parallelism: dict[str, Any] | None = None
    """The Project's `spec.parallelism` (camelCase keys), for master issues."""
    parent: int | None = None
    """The issue this one was planned or fanned out from."""
    task: int | None = None
    """The sub-task's index in its master issue's checklist."""

    # Flags were always read for their truth, and a `parallelism` that is not an object
    # was always ignored; reading them the same way keeps old items working.
    @field_validator("retry_failed", "dry_run", mode="before")
    @classmethod
    def _truth(cls, value: object) -> bool:
        return bool(value)

    @field_validator("parallelism", mode="before")
    @classmethod
    def _object_or_nothing(cls, value: object) -> object:
        return value if isinstance(value, dict) else None


class MasterSummary(BaseModel):
    """What a master issue's fan-out hands to its summary: which join, and the run's
    sub-tasks as they stood when it was registered (their records and the overlapping
    pairs, as `agentfleet.worker.stages.master` dumps them)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    join: str
    """The join's id: the id of the item that fanned out."""
    records: list[dict[str, Any]]
    conflicts: list[dict[str, Any]] = []
    success_threshold: float
    task_timeout_seconds: float


class MasterSummaryPayload(StagePayload):
    """A master issue's summary (genesis): made once per fan-out, enqueued by the queue
    when the fan-out's last sub-task finishes or times out."""

    issue: int
    """The master issue."""
    master_summary: MasterSummary


GenesisPayload = MasterSummaryPayload | IssuePayload
"""Genesis reads an issue to plan (or a master issue to fan out), or a fan-out to sum up."""


def genesis_payload(item: WorkItem) -> GenesisPayload:
    """A master summary when the payload carries one (an object), else an issue."""
    if isinstance(item.payload.get(MASTER_SUMMARY_KEY), dict):
        return MasterSummaryPayload.of(item)
    return IssuePayload.of(item)


class PullPayload(StagePayload):
    """A merged pull request: what content reads."""

    pull: int


class DeadLetter(BaseModel):
    """Why an item was given up: what the queue puts in a review item's payload."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    item_id: str | None = None
    stage: str | None = None
    specialty: str | None = None
    attempts: int | None = None
    error: str = ""


class DeadLetterReview(StagePayload):
    """What review reads for a dead-lettered item: why it was given up, and its issue."""

    dead_letter: DeadLetter
    issue: int


ReviewPayload = DeadLetterReview | PullPayload
"""Review reads a dead-lettered item's issue, or a pull request to review."""


def review_payload(item: WorkItem) -> ReviewPayload:
    """A dead letter when the payload carries one (an object), else a pull request."""
    if isinstance(item.payload.get(DEAD_LETTER_KEY), dict):
        return DeadLetterReview.of(item)
    return PullPayload.of(item)


STAGE_PAYLOADS: dict[Stage, Callable[[WorkItem], StagePayload]] = {
    Stage.GENESIS: genesis_payload,
    Stage.DEVELOPMENT: IssuePayload.of,
    Stage.CONTENT: PullPayload.of,
    Stage.REVIEW: review_payload,
}
"""How each stage's handler reads its items."""


def stage_payload(item: WorkItem) -> StagePayload:
    """The item's payload as its stage reads it; PayloadError when it does not fit."""
    return STAGE_PAYLOADS[item.stage](item)
