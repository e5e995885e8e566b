"""The operator's read API on the wire: what `agentfleet operator` serves on `--api-port`
and the fleet CLI (`agentfleet queues`, `workers`, `metrics`, `alerts`, `retry`) reads.

Pure pydantic models, shared by both ends so the two cannot drift: camelCase on the wire,
unknown keys refused when read back. Nothing here carries a secret: no queue URL, no item
payload, no token.

Paths (each under the Service's proxy path, or a port-forward's root):

| method | path | answer |
| --- | --- | --- |
| GET | `/v1/namespaces/{ns}/queues` | `QueueReport` |
| GET | `/v1/namespaces/{ns}/workers` | `InFlightReport` |
| GET | `/v1/namespaces/{ns}/throughput?windowSeconds=3600` | `ThroughputReport` |
| GET | `/v1/namespaces/{ns}/projects/{project}/deadletters` | `DeadLetterReport` |
| POST | `/v1/namespaces/{ns}/projects/{project}/retry` | `RetryResult` (needs `IDENTITY_HEADER`) |
| POST | `/v1/namespaces/{ns}/projects/{project}/dispatch` | `DispatchResult` (idem) |
| GET | `/v1/alerts` | `AlertReport` |
| GET | `/v1/scope` | `Scope`: which namespaces the operator serves |

An error is `ApiError` with a 4xx or 5xx status.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from agentfleet.core.api.base import Stage
from agentfleet.core.pipeline.lanes import Lane

API_PREFIX = "/v1"
IDENTITY_HEADER = "X-Agentfleet-Token"
"""The caller's bearer token, for actions: the operator asks the API server who it belongs
to (TokenReview) and whether that identity may act (SubjectAccessReview). Not
`Authorization`: the API server consumes that header and strips it before proxying."""
DEFAULT_WINDOW_SECONDS = 3600


class WireModel(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )

    def wire(self) -> dict[str, object]:
        return self.model_dump(mode="json", by_alias=True)


class LaneReport(WireModel):
    """One lane of the work queue: a project's stage, specialty and priority lane."""

    project: str
    stage: Stage
    specialty: str
    lane: Lane
    waiting: int
    """Deliverable (or held, when the project is paused) and not yet taken; includes items
    of workers that stopped heartbeating."""
    held: bool
    """The project is on emergency stop: its waiting items are not delivered."""
    in_flight: int
    retrying: int
    """Failed, waiting out the backoff before going back to this lane."""
    oldest_wait_seconds: float | None


class StageTotals(WireModel):
    """A project's finished items of one stage since the queue was created."""

    project: str
    stage: Stage
    completed: int
    dead_lettered: int
    """Dead letters not retried (`agentfleet retry` takes them back)."""


class QueueReport(WireModel):
    namespace: str
    lanes: list[LaneReport]
    stages: list[StageTotals]


class HeldItem(WireModel):
    """An item a worker holds now."""

    worker: str
    """The worker's Pod name."""
    item_id: str
    project: str
    stage: Stage
    specialty: str
    lane: Lane
    heartbeat_age_seconds: float
    """Since the worker last renewed its claim (past the heartbeat timeout: presumed
    dead, its item goes to the next claim)."""
    deliveries: int


class InFlightReport(WireModel):
    namespace: str
    heartbeat_timeout_seconds: float
    items: list[HeldItem]


class StageThroughput(WireModel):
    """What a project's stage finished within the window (the completion log)."""

    project: str
    stage: Stage
    finished: int
    succeeded: int
    dead_lettered: int
    retried: int
    """Finished items that needed more than one attempt (rework)."""
    per_hour: float
    """Finished items per hour over the window."""
    success_rate: float | None
    """Succeeded / finished; None when nothing finished."""
    rework_rate: float | None
    """Retried / finished; None when nothing finished."""
    stage_seconds: float | None = None
    """Mean seconds from queueing to success in this stage (waiting, attempts and
    retries); None when no success of the window recorded its times."""
    pipeline_seconds: float | None = None
    """Mean seconds from the work entering the pipeline to its success in this stage: at
    the last stage, the pipeline time; None when no success recorded its times."""


class ThroughputReport(WireModel):
    namespace: str
    window_seconds: float
    stages: list[StageThroughput]


class DeadLetter(WireModel):
    item_id: str
    stage: Stage | None
    """None: the stored item could not be read (it cannot be retried)."""
    attempts: int
    error: str | None


class DeadLetterReport(WireModel):
    namespace: str
    project: str
    items: list[DeadLetter]


class RetryRequest(WireModel):
    item_ids: list[str] | None = None
    """Only these dead letters; None: all of the project's."""


class RetryResult(WireModel):
    namespace: str
    project: str
    requeued: list[str]
    user: str
    """Who asked (the TokenReview's username), as the operator logged it."""


class Requirement(WireModel):
    """Work described in text: becomes a GitHub issue with the Project's intake label."""

    title: str = Field(min_length=1, max_length=256)
    body: str = Field(default="", max_length=65536)


class DispatchRequest(WireModel):
    """Genesis work to start now: existing issues by number, and new ones from text."""

    issues: list[int] = Field(default_factory=list, max_length=100)
    requirements: list[Requirement] = Field(default_factory=list, max_length=100)


class Dispatched(WireModel):
    """One issue of a dispatch: its first-stage item, or why there is none."""

    issue: int | None = None
    title: str
    created: bool = False
    """The issue was opened by this dispatch (from a requirement)."""
    item_id: str | None = None
    new: bool = False
    """The item was new to the queue (False: it was queued or done before)."""
    error: str | None = None


class DispatchResult(WireModel):
    namespace: str
    project: str
    user: str
    dispatched: list[Dispatched]


class Alert(WireModel):
    """A Prometheus alert that is firing (or pending)."""

    name: str
    state: str
    severity: str | None
    namespace: str | None
    summary: str
    active_at: str | None
    labels: dict[str, str] = Field(default_factory=dict)


class AlertReport(WireModel):
    prometheus: bool
    """False: the operator has no Prometheus URL, so no alerts can be read."""
    alerts: list[Alert]


class Scope(WireModel):
    """The namespaces the operator serves: every one, or those matching its patterns."""

    all_namespaces: bool
    namespaces: list[str]
    """Names or globs (`team-*`), as given to `--namespace`."""

    def serves(self, namespace: str) -> bool:
        return self.all_namespaces or any(fnmatchcase(namespace, p) for p in self.namespaces)


class ApiError(WireModel):
    """The body of every error the read API answers with."""

    error: str
