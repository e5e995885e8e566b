"""The work item: one unit of work for one stage of one project, as the queue stores it.

`WorkItem` is what the queue stores (as JSON) and hands to workers; its id is made by
`agentfleet.core.pipeline.ids`, its payload by `agentfleet.core.pipeline.payloads`, and the items
themselves by `agentfleet.core.pipeline.making`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from agentfleet.core.api import DEFAULT_PIPELINE, Stage
from agentfleet.core.pipeline.lanes import GENERAL_SPECIALTY, Lane

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# Namespaces, projects and specialties become parts of Redis keys (separated by ':' and
# wrapped in '{}' hash tags), so they are restricted to Kubernetes DNS-label characters.
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=253)]
ItemId = Annotated[str, StringConstraints(pattern=r"^\S+$", min_length=1, max_length=512)]


def utcnow() -> datetime:
    return datetime.now(UTC)


class TraceEntry(BaseModel):
    """One finished stage of an item's journey through the pipeline."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str
    stage: Stage
    outcome: str
    """`succeeded` or `dead_lettered`."""
    worker: str
    attempts: int
    finished_at: datetime
    error: str | None = None
    enqueued_at: datetime | None = None
    """When the stage's item was queued (None in traces recorded before it was kept)."""


class WorkItem(BaseModel):
    """A unit of work for one stage of one project.

    The id is the idempotency key: enqueueing an id that is already waiting, in flight,
    retrying or completed stores nothing new, and follow-up ids are derived from it, so a
    retried completion can never fan out twice.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: ItemId
    namespace: Name
    project: Name
    stage: Stage
    specialty: Name | None = None
    """None routes the item to the general lane of its stage."""
    lane: Lane = Lane.NORMAL
    payload: dict[str, Any] = Field(default_factory=dict)
    """The stage's input; the stage handlers read it through the models of
    `agentfleet.core.pipeline.payloads`."""
    attempts: int = Field(default=0, ge=0)
    """Deliveries so far, counting the current one once claimed."""
    enqueued_at: datetime = Field(default_factory=utcnow)
    trace: tuple[TraceEntry, ...] = ()
    """The stages this work has already been through, oldest first."""
    last_error: str | None = None
    pipeline: tuple[Stage, ...] = DEFAULT_PIPELINE
    """The project's stages in order; the default follow-up goes to the next one."""

    @property
    def pipeline_started_at(self) -> datetime:
        """When this work entered its pipeline: the queueing of its first traced stage,
        or its own when it has none (or an old trace without the time)."""
        first = self.trace[0].enqueued_at if self.trace else None
        return first or self.enqueued_at

    @property
    def routing_specialty(self) -> str:
        return self.specialty or GENERAL_SPECIALTY
