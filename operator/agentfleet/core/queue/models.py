"""The data that flows through the work queue: claims, outcomes and counts.

These are plain pydantic models with no I/O; the Redis adapter (`agentfleet.core.queue.workqueue`)
stores `WorkItem`s as JSON and hands `Claim`s to workers. The work item itself, its lanes
and its id grammar live in `agentfleet.core.pipeline` and are re-exported here for the queue's
callers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentfleet.core.api import ApiModel, Stage
from agentfleet.core.pipeline.items import ItemId, Name, TraceEntry, WorkItem, utcnow
from agentfleet.core.pipeline.lanes import GENERAL_SPECIALTY, LANES_BY_PRIORITY, Lane

__all__ = [
    "GENERAL_SPECIALTY",
    "LANES_BY_PRIORITY",
    "Arrival",
    "ChildState",
    "Claim",
    "CompleteResult",
    "CompletionOutcome",
    "CompletionRecord",
    "FailOutcome",
    "FailResult",
    "Family",
    "FanOut",
    "FanOutResult",
    "InFlight",
    "ItemId",
    "JoinChild",
    "JoinState",
    "Lane",
    "Name",
    "ProjectQueueStats",
    "RetryPolicy",
    "StageQueueStats",
    "Subscription",
    "TraceEntry",
    "WorkItem",
    "utcnow",
]


class Subscription(BaseModel):
    """What one worker pulls: a stage of a namespace, optionally narrowed.

    Specialty lanes are read before the general lane, which every worker falls back to;
    an empty `projects` means every project of the namespace, including new ones.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: Name
    stage: Stage
    consumer: str = Field(min_length=1)
    """The worker's identity in the consumer group (its pod name)."""
    specialties: tuple[Name, ...] = ()
    projects: tuple[Name, ...] = ()


class Arrival(BaseModel):
    """An item became deliverable on a lane (enqueued, due for retry, or released): what
    `WorkQueue.arrivals` reports, so scaling from zero need not wait for a poll."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str
    project: str
    stage: Stage
    specialty: str


class Claim(BaseModel):
    """An item delivered to one worker, with the handle needed to settle it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item: WorkItem
    stream: str
    entry_id: str
    consumer: str
    wait_seconds: float
    """From the moment the item became deliverable (enqueue or retry) to this claim."""
    reclaimed: bool = False
    """Taken over from a worker that missed its heartbeats (or released on drain)."""


class InFlight(BaseModel):
    """An item a worker holds now (delivered, not finished, not handed back), and when
    the worker last renewed its claim (`WorkQueue.in_flight`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    worker: str
    """The consumer: the worker's pod name."""
    item_id: str
    project: str
    stage: Stage
    specialty: str
    lane: Lane
    heartbeat_at: datetime
    """The claim's last renewal (delivery or heartbeat)."""
    deliveries: int
    """Times Redis delivered this entry (more than one: it was reclaimed)."""


class RetryPolicy(BaseModel):
    """Exponential backoff with jitter, bounded by per-stage maximum attempts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: dict[Stage, int] = Field(default_factory=dict)
    """Per-stage overrides of `default_max_attempts`."""
    default_max_attempts: int = Field(default=3, ge=1)
    base_delay_seconds: float = Field(default=5.0, ge=0)
    max_delay_seconds: float = Field(default=300.0, ge=0)

    def attempts_for(self, stage: Stage) -> int:
        return self.max_attempts.get(stage, self.default_max_attempts)


class CompletionOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    DEAD_LETTERED = "dead_lettered"


class CompleteResult(BaseModel):
    """What `WorkQueue.complete` did."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    recorded: bool
    """False when the item had already been completed (by this or another worker)."""
    follow_ups: tuple[str, ...] = ()
    """Ids of follow-up items newly enqueued (existing ids are not enqueued again)."""


class CompletionRecord(BaseModel):
    """The one record of an item's completion; side effects can key on the item id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: CompletionOutcome
    worker: str
    completed_at: datetime
    attempts: int = 1
    """Deliveries it took, including those lost with a crashed worker."""
    error: str | None = None
    follow_ups: tuple[str, ...] = ()
    """Ids of the follow-up items requested with the completion (review item included)."""


class FailOutcome(StrEnum):
    RETRY_SCHEDULED = "retry_scheduled"
    DEAD_LETTERED = "dead_lettered"
    STALE = "stale"
    """The claim was no longer this worker's (reclaimed or completed): nothing changed."""


class FailResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: FailOutcome
    retry_at: datetime | None = None
    review_item_id: str | None = None


class StageQueueStats(ApiModel):
    """Where one project's items of one stage are right now."""

    pending: int = 0
    """Waiting and deliverable (including items reclaimable from dead workers)."""
    in_flight: int = 0
    """Claimed by a worker that is still heartbeating."""
    held: int = 0
    """Waiting, but the project is on emergency stop."""
    retrying: int = 0
    """Failed and waiting out the backoff before the next attempt."""
    completed: int = 0
    """Completed successfully since the queue was created."""
    dead_lettered: int = 0
    """Sent to review after exhausting retries or a permanent failure."""


class ProjectQueueStats(ApiModel):
    namespace: str
    project: str
    held: bool = False
    """The project is on emergency stop."""
    stages: dict[Stage, StageQueueStats] = Field(default_factory=dict)


class FanOut(BaseModel):
    """A join: children registered in one atomic step with the summary item their last one
    enqueues (`WorkQueue.fan_out`).

    At most `window` children are in the queue or running at a time: the rest are held in
    the join, in order, and released by the step that finishes an earlier one. A child
    released `timeout_seconds` ago and still unfinished is timed out by the next claim of
    any worker of the namespace, which frees its place in the window the same way.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    join_id: ItemId
    """The join's key: the id of the item that fans out, so registering it again (a
    redelivery) changes nothing."""
    children: tuple[WorkItem, ...]
    summary: WorkItem
    window: int = Field(ge=1)
    timeout_seconds: float = Field(gt=0)
    parent: int = Field(ge=0)
    """The issue the children were fanned out from."""
    family: tuple[int, ...] = ()
    """All of the parent's sub-issues (not only this fan-out's): the relation the content
    stage reads (`WorkQueue.family`)."""


class FanOutResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    registered: bool
    """False when the join already existed (nothing changed)."""
    released: tuple[str, ...] = ()
    """Children put in the queue at once (the first `window`)."""


class ChildState(StrEnum):
    HELD = "held"
    """Registered, waiting for a place in the window."""
    RUNNING = "running"
    """In the queue or at work."""
    SUCCEEDED = "succeeded"
    DEAD_LETTERED = "dead_lettered"
    TIMED_OUT = "timed_out"

    @property
    def finished(self) -> bool:
        return self not in {ChildState.HELD, ChildState.RUNNING}


class JoinChild(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    state: ChildState
    released_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    attempts: int | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.released_at is None or self.finished_at is None:
            return None
        return round((self.finished_at - self.released_at).total_seconds(), 3)


class JoinState(BaseModel):
    """A join as the queue holds it (`WorkQueue.join`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: int
    timeout_seconds: float
    open: int
    """Children not finished yet."""
    running: int
    created_at: datetime
    summarised_at: datetime | None = None
    """When the last child finished and the summary item was enqueued."""
    children: dict[str, JoinChild]


class Family(BaseModel):
    """An issue's parent and the parent's sub-issues, as genesis recorded them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parent: int
    children: tuple[int, ...]


class PendingFeedback(BaseModel):
    """A pull request's feedback not yet addressed by a finished round."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: int
    """Position of the first entry (rounds finish up to `end`)."""
    rounds: int
    """Rounds finished so far."""
    entries: tuple[dict[str, Any], ...] = ()

    @property
    def end(self) -> int:
        return self.start + len(self.entries)


class BudgetExhausted(Exception):
    """A project's daily budget is spent: the item stops at its next model call and is
    released, not failed (the queue delivers it again when the day turns)."""


class DaySpend(BaseModel):
    """A project's daily limits (`spec.budgets`) and what its agents spent on one UTC day,
    across every worker (the queue's store keeps the count)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    day: date
    tokens: int = 0
    cost_usd: float = 0.0
    tokens_per_day: int | None = None
    cost_per_day_usd: float | None = None

    @property
    def exhausted(self) -> str | None:
        """Why the day's budget is spent (one line), or None while it is not."""
        if self.tokens_per_day is not None and self.tokens >= self.tokens_per_day:
            return f"{self.tokens} tokens used today, budgets.tokensPerDay={self.tokens_per_day}"
        if self.cost_per_day_usd is not None and self.cost_usd >= self.cost_per_day_usd:
            return (
                f"${self.cost_usd:.2f} spent today, budgets.costPerDayUsd={self.cost_per_day_usd:g}"
            )
        return None

    @property
    def resets_at(self) -> datetime:
        """00:00 UTC after `day`, when a new day starts with nothing spent."""
        return datetime.combine(self.day + timedelta(days=1), time(0), tzinfo=UTC)
