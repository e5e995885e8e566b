"""The `Project` custom resource: one GitHub repository whose issues flow through the
pipeline stages (genesis -> development -> content, review for failures).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from agentfleet.core.api.base import DEFAULT_PIPELINE, ApiModel, Stage
from agentfleet.core.api.conditions import Condition
from agentfleet.core.api.grammar import (
    DNS_SUBDOMAIN_PATTERN,
    GITHUB_API_URL_PATTERN,
    GITHUB_LOGIN_PATTERN,
    REPOSITORY_PATTERN,
    SINGLE_LINE_PATTERN,
    matches_rule,
)

# A nested object with `default: {}` in the schema is created by the API server with all
# its field defaults, so a minimal Project reads back complete.
_EMPTY_OBJECT_DEFAULT: JsonDict = {"default": {}}

CREDENTIAL_TOKEN_KEY = "token"
CREDENTIAL_APP_KEYS = ("app-id", "private-key")


class Priority(StrEnum):
    """Queue lane of a project's work items; higher lanes are served first."""

    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class SecretReference(ApiModel):
    """A Secret in the Project's namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Name of the Secret."""


class SecretKeyReference(ApiModel):
    """One key of a Secret in the same namespace."""

    name: str = Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Name of the Secret."""

    key: str = Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")
    """Key inside the Secret's data."""


class WebhookSpec(ApiModel):
    """GitHub webhook deliveries (issues, comments, merged pull requests) as an intake path
    that reacts faster than polling."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!self.enabled || has(self.secretRef)",
                    "message": "webhook.secretRef is required when webhook.enabled is true "
                    "(deliveries are verified with its HMAC secret)",
                    "fieldPath": ".secretRef",
                    "reason": "FieldValueRequired",
                }
            ]
        }
    )

    enabled: bool = False
    """Accept webhook deliveries for this repository."""

    secret_ref: SecretKeyReference | None = None
    """Secret key holding the webhook's shared secret; deliveries whose
    X-Hub-Signature-256 does not verify against it are rejected."""

    @model_validator(mode="after")
    def _secret_when_enabled(self) -> WebhookSpec:
        if self.enabled and self.secret_ref is None:
            raise ValueError("webhook.secretRef is required when webhook.enabled is true")
        return self


class IntakeSpec(ApiModel):
    """Which issues become work, and how they are discovered."""

    labels: list[
        Annotated[str, Field(min_length=1, max_length=50, pattern=SINGLE_LINE_PATTERN)]
    ] = Field(
        default=["agentfleet"],
        min_length=1,
        max_length=20,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """Issues carrying any of these labels are taken in (GitHub label names)."""

    poll_interval_seconds: int = Field(default=300, ge=30, le=86400)
    """Seconds between two polls of the repository's issues."""

    webhook: WebhookSpec = Field(
        default_factory=WebhookSpec, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Webhook intake, in addition to polling."""

    allowed_bots: list[
        Annotated[str, Field(min_length=1, max_length=44, pattern=GITHUB_LOGIN_PATTERN)]
    ] = Field(
        default_factory=list, max_length=20, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """Bot accounts (such as `dependabot[bot]`) whose `@agentfleet` mentions, `/agentfleet`
    commands and assignments are taken; every other bot is refused. People need write
    access to the repository instead."""


class StageAttempts(ApiModel):
    """Deliveries of one work item per stage before it is dead-lettered to the failure
    stage."""

    genesis: int = Field(default=3, ge=1, le=20)
    """Attempts for genesis (analyse, plan, scaffold, create issues)."""

    development: int = Field(default=3, ge=1, le=20)
    """Attempts for development (tests first, implement, open a pull request)."""

    content: int = Field(default=3, ge=1, le=20)
    """Attempts for content (docs, changelog, release notes)."""

    review: int = Field(default=1, ge=1, le=20)
    """Attempts for review (failed or low-quality work)."""


class PipelineSpec(ApiModel):
    """The stages an issue goes through, in order; finishing one queues the next."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!(self.failureStage in self.stages)",
                    "message": "pipeline.failureStage must not be one of pipeline.stages "
                    "(failed work would loop back into the pipeline)",
                    "fieldPath": ".failureStage",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    )

    stages: list[Stage] = Field(
        default=list(DEFAULT_PIPELINE),
        min_length=1,
        max_length=4,
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    """Ordered stages; each must appear once."""

    failure_stage: Stage = Stage.REVIEW
    """Where failed or low-quality work goes once it has used its attempts."""

    max_attempts: StageAttempts = Field(
        default_factory=StageAttempts, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Per-stage attempts before an item is dead-lettered to the failure stage."""

    @model_validator(mode="after")
    def _well_formed(self) -> PipelineSpec:
        if len(set(self.stages)) != len(self.stages):
            raise ValueError("pipeline.stages must not repeat a stage")
        if self.failure_stage in self.stages:
            raise ValueError("pipeline.failureStage must not be one of pipeline.stages")
        return self


class ParallelismSpec(ApiModel):
    """Fan-out of a master issue's checklist into parallel sub-tasks."""

    max_workers: int = Field(default=5, ge=1, le=100)
    """Sub-tasks of one master issue running at the same time."""

    success_threshold: float = Field(default=0.8, gt=0, le=1)
    """Fraction of sub-tasks that must succeed for the master issue to count as done."""

    task_timeout_seconds: int = Field(default=1800, ge=60, le=86400)
    """Seconds one sub-task may run before it is failed."""


class BudgetSpec(ApiModel):
    """Spending limits for the Claude agents working on this project. Unset: no limit."""

    tokens_per_item: int | None = Field(default=None, ge=1)
    """Input plus output tokens one work item may use across all its agent turns."""

    cost_per_item_usd: float | None = Field(default=None, gt=0)
    """Estimated model cost in US dollars (list prices) one work item may incur across all
    its agent turns. The run stops there: the item ends as budget exhausted (not retried:
    it goes to review), with a comment on its issue saying what was spent."""

    tokens_per_day: int | None = Field(default=None, ge=1)
    """Tokens the whole project's agents may use per UTC day, across every worker. Once
    spent, no item of the project is delivered until 00:00 UTC (queued work waits, none is
    lost), running items stop at their next model call and wait too, and the Project's
    BudgetExhausted condition says so."""

    cost_per_day_usd: float | None = Field(default=None, gt=0)
    """Estimated model cost in US dollars (list prices) the project's agents may incur per
    UTC day; enforced like tokensPerDay."""


class PullRequestSpec(ApiModel):
    """How agentfleet's pull requests are opened."""

    draft: bool = False
    """Open pull requests (code and docs) as drafts: a person marks them ready for review."""

    request_review: bool = True
    """Request a review from the person who asked for the work (their `@agentfleet`
    mention, `/agentfleet` command, assignment, or a label added while webhooks are on).
    Work taken in by polling has no known asker and requests no review."""

    max_fix_rounds: int = Field(default=3, ge=1, le=20)
    """Feedback rounds (review comments, mentions, failing checks) agentfleet works on one
    pull request before it stops and asks a person instead."""


class ProjectSpec(ApiModel):
    """Desired state of a Project."""

    repository: str = Field(
        min_length=3,
        max_length=400,
        pattern=REPOSITORY_PATTERN,
        json_schema_extra=matches_rule(
            REPOSITORY_PATTERN,
            "repository must be owner/name (for example acme/widgets) or the https:// URL "
            "of a repository, without spaces or control characters",
        ),
    )
    """GitHub repository: `owner/name`, or its HTTPS URL (GitHub Enterprise too)."""

    github_api_url: str | None = Field(
        default=None,
        min_length=8,
        max_length=400,
        pattern=GITHUB_API_URL_PATTERN,
        json_schema_extra=matches_rule(
            GITHUB_API_URL_PATTERN,
            "githubApiUrl must be an http:// or https:// URL without credentials, query or "
            "fragment, for example https://github.example.com/api/v3",
        ),
    )
    """GitHub REST API base URL for this repository. Unset: derived from `repository`,
    which is https://api.github.com for `owner/name` and github.com URLs, and
    https://<host>/api/v3 for a GitHub Enterprise Server URL. Set it for an Enterprise
    Server whose API lives elsewhere, or a local GitHub API (tests)."""

    credentials_secret_ref: SecretReference
    """Secret with the GitHub credentials: key `token` (a personal access or installation
    token), or keys `app-id` and `private-key` (plus optional `installation-id`) for a
    GitHub App."""

    intake: IntakeSpec = Field(default_factory=IntakeSpec, json_schema_extra=_EMPTY_OBJECT_DEFAULT)
    """Which issues become work and how they are discovered."""

    pipeline: PipelineSpec = Field(
        default_factory=PipelineSpec, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Stages, failure route and attempts."""

    priority: Priority = Priority.NORMAL
    """Queue lane of this project's work: urgent, high, normal or low."""

    paused: bool = False
    """Emergency stop: intake stops, queued work is held (never dropped) and the WorkerPools
    dedicated to this project scale to zero. Set back to false to resume where it stopped."""

    parallelism: ParallelismSpec = Field(
        default_factory=ParallelismSpec, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Parallel fan-out of master issues."""

    budgets: BudgetSpec = Field(default_factory=BudgetSpec, json_schema_extra=_EMPTY_OBJECT_DEFAULT)
    """Token and cost limits."""

    pull_requests: PullRequestSpec = Field(
        default_factory=PullRequestSpec, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Draft pull requests, and review requests to whoever asked for the work."""


class ProjectPhase(StrEnum):
    """Summary of a Project's state for `kubectl get`."""

    PENDING = "Pending"
    ACTIVE = "Active"
    PAUSED = "Paused"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class StageCounts(ApiModel):
    """Where this project's work items of one stage are right now."""

    pending: int = Field(default=0, ge=0)
    """Waiting to be claimed by a worker."""

    in_flight: int = Field(default=0, ge=0)
    """Claimed by a worker that is still heartbeating."""

    held: int = Field(default=0, ge=0)
    """Waiting, but held because the project is paused."""

    retrying: int = Field(default=0, ge=0)
    """Failed and waiting out the backoff before the next attempt."""

    completed: int = Field(default=0, ge=0)
    """Completed successfully."""

    dead_lettered: int = Field(default=0, ge=0)
    """Sent to the failure stage after exhausting their attempts."""


class ProjectStatus(ApiModel):
    """Observed state of a Project, written by the operator."""

    phase: ProjectPhase | None = None
    """Pending, Active, Paused, Degraded or Failed."""

    observed_generation: int | None = Field(default=None, ge=0)
    """metadata.generation the operator last acted on."""

    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    """Ready (valid and served), Paused (emergency stop), Degraded (queue unreachable
    or a stage without a WorkerPool) and Intake (issues are being taken in, or why not)."""

    queued: int | None = Field(default=None, ge=0)
    """Items waiting or held across all stages."""

    stages: dict[Stage, StageCounts] = Field(default_factory=dict)
    """Per-stage item counts from the work queue, keyed by stage."""

    pools: list[str] = Field(default_factory=list)
    """WorkerPools currently serving this project."""
