"""Pure reconciliation decisions: which Projects a pool serves, how many replicas it gets,
what is semantically wrong with a spec, and what the statuses say.

Nothing here does I/O. The handlers gather the inputs (index snapshots, Secret lookups,
queue stats, the Deployment) and write the outputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from agentfleet.core.api.base import Stage
from agentfleet.core.api.conditions import (
    Condition,
    ConditionStatus,
    find_condition,
    is_true,
    set_condition,
)
from agentfleet.core.api.project import (
    CREDENTIAL_APP_KEYS,
    CREDENTIAL_TOKEN_KEY,
    ProjectPhase,
    ProjectSpec,
    ProjectStatus,
    StageCounts,
)
from agentfleet.core.api.workerpool import WorkerPoolSpec, WorkerPoolStatus
from agentfleet.core.queue.models import GENERAL_SPECIALTY, DaySpend

READY = "Ready"
AVAILABLE = "Available"
PAUSED = "Paused"
DEGRADED = "Degraded"
BUDGET_EXHAUSTED = "BudgetExhausted"


@dataclass(frozen=True)
class Problem:
    """Why an object cannot be served as specified (a Ready=False reason and message)."""

    reason: str
    message: str


def validation_problem(error: ValidationError) -> Problem:
    """A spec the models refuse, with every error at its field (`spec.env[0].value`)."""
    details = "; ".join(
        f"{_field_path(e['loc'])}: {e['msg'].removeprefix('Value error, ')}" for e in error.errors()
    )
    return Problem("InvalidSpec", details)


def _field_path(location: Sequence[int | str]) -> str:
    path = "spec"
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


# ------------------------------------------------------------------------- projects


@dataclass(frozen=True)
class ProjectInfo:
    """What pools need to know about a Project (kept in the operator's index)."""

    namespace: str
    name: str
    uid: str
    labels: Mapping[str, str] = field(default_factory=dict)
    paused: bool = False
    stages: tuple[Stage, ...] = ()
    """The pipeline's stages plus its failure stage: every stage that has work for it."""
    credentials_secret: str = ""
    problem: Problem | None = None
    """The spec did not parse; the project is listed but serves no stage."""

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ProjectInfo:
        meta = body.get("metadata", {})
        base = {
            "namespace": meta.get("namespace", ""),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "labels": dict(meta.get("labels") or {}),
        }
        try:
            spec = ProjectSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            return cls(**base, problem=validation_problem(error))
        return cls(
            **base,
            paused=spec.paused,
            stages=(*spec.pipeline.stages, spec.pipeline.failure_stage),
            credentials_secret=spec.credentials_secret_ref.name,
        )


@dataclass(frozen=True)
class SecretLookup:
    """The outcome of reading a Secret: its keys, or why it could not be read."""

    keys: frozenset[str] = frozenset()
    missing: bool = False
    error: str | None = None
    """Set when the Secret exists but cannot be read (for example 403 Forbidden)."""


def credentials_problem(secret: str, lookup: SecretLookup) -> Problem | None:
    if lookup.missing:
        return Problem("CredentialsNotFound", f"credentials Secret {secret} does not exist")
    if lookup.error is not None:
        return Problem(
            "CredentialsUnreadable", f"credentials Secret {secret} cannot be read: {lookup.error}"
        )
    if CREDENTIAL_TOKEN_KEY in lookup.keys or set(CREDENTIAL_APP_KEYS) <= lookup.keys:
        return None
    return Problem(
        "CredentialsIncomplete",
        f"credentials Secret {secret} needs key {CREDENTIAL_TOKEN_KEY!r}, or keys "
        f"{' and '.join(repr(k) for k in CREDENTIAL_APP_KEYS)} for a GitHub App "
        f"(it has: {', '.join(sorted(lookup.keys)) or 'no keys'})",
    )


def webhook_problem(spec: ProjectSpec, lookup: SecretLookup | None) -> Problem | None:
    """Why the Project's webhook cannot verify deliveries, or None (also when the webhook
    is off). `lookup` is the webhook Secret as read; None when the webhook is off."""
    webhook = spec.intake.webhook
    if not webhook.enabled or webhook.secret_ref is None or lookup is None:
        return None
    name, key = webhook.secret_ref.name, webhook.secret_ref.key
    if lookup.missing:
        return Problem(
            "WebhookSecretNotFound",
            f"webhook Secret {name} does not exist: deliveries cannot be verified "
            "(spec.intake.webhook.secretRef)",
        )
    if lookup.error is not None:
        return Problem(
            "WebhookSecretUnreadable", f"webhook Secret {name} cannot be read: {lookup.error}"
        )
    if key not in lookup.keys:
        return Problem(
            "WebhookSecretKeyNotFound",
            f"webhook Secret {name} has no key {key!r} (it has: "
            f"{', '.join(sorted(lookup.keys)) or 'no keys'}): deliveries cannot be verified",
        )
    return None


def project_phase(conditions: Sequence[Condition]) -> ProjectPhase:
    """The phase `kubectl get projects` shows, derived from the conditions alone, so the
    two can never disagree:

    - no Ready condition yet, or Ready=Unknown: Pending;
    - Ready=False (the spec, its credentials or its webhook cannot work): Failed;
    - Ready=True and Paused=True (emergency stop): Paused;
    - Ready=True and Degraded=True (queue unreachable, a stage without a pool): Degraded;
    - otherwise Active.
    """
    ready = find_condition(conditions, READY)
    if ready is None or ready.status is ConditionStatus.UNKNOWN:
        return ProjectPhase.PENDING
    if ready.status is ConditionStatus.FALSE:
        return ProjectPhase.FAILED
    if is_true(conditions, PAUSED):
        return ProjectPhase.PAUSED
    if is_true(conditions, DEGRADED):
        return ProjectPhase.DEGRADED
    return ProjectPhase.ACTIVE


def with_phase(status: ProjectStatus) -> ProjectStatus:
    """`status` with its phase derived from its conditions (every writer calls this)."""
    return status.model_copy(update={"phase": project_phase(status.conditions)})


@dataclass(frozen=True)
class QueueView:
    """What the work queue said about one project during this reconcile."""

    configured: bool
    stages: Mapping[Stage, StageCounts] | None = None
    held: bool = False
    error: str | None = None
    budget: DaySpend | None = None
    """The project's daily limits and what it spent today (None: not read)."""


def declared_routes(spec: ProjectSpec, pools: Iterable[WorkerPoolSpec]) -> list[tuple[Stage, str]]:
    """The (stage, specialty) routes of a Project's lanes: the general lane of every stage
    its work goes through (pipeline and failure stage), and each specialty of every pool
    serving it at that pool's stage. The queue publishes zero for each of their lanes
    until items arrive (`WorkQueue.declare_lanes`)."""
    routes = {
        (stage, GENERAL_SPECIALTY) for stage in (*spec.pipeline.stages, spec.pipeline.failure_stage)
    }
    for pool in pools:
        routes |= {(pool.stage, specialty) for specialty in (*pool.specialties, GENERAL_SPECIALTY)}
    return sorted(routes)


def uncovered_stages(spec: ProjectSpec, pool_stages: Iterable[Stage]) -> list[Stage]:
    served = set(pool_stages)
    wanted = [*spec.pipeline.stages, spec.pipeline.failure_stage]
    return [stage for stage in wanted if stage not in served]


def project_status(
    previous: ProjectStatus,
    *,
    generation: int | None,
    spec: ProjectSpec,
    problem: Problem | None,
    queue: QueueView,
    pools: Sequence[tuple[str, Stage]],
    now: datetime,
) -> ProjectStatus:
    """The whole status the operator owns, from the inputs of one reconcile; the phase is
    derived from the conditions (`project_phase`)."""
    conditions = list(previous.conditions)
    if problem is not None:
        conditions = set_condition(
            conditions, READY, False, problem.reason, problem.message, now, generation
        )
    else:
        webhook = "; webhook Secret present" if spec.intake.webhook.enabled else ""
        conditions = set_condition(
            conditions,
            READY,
            True,
            "Valid",
            f"credentials present{webhook}; served by {len(pools)} WorkerPool(s)",
            now,
            generation,
        )

    held_items = sum(c.held for c in (queue.stages or {}).values())
    if spec.paused:
        if not queue.configured:
            detail = "no work queue is configured, so there is nothing to hold"
        elif queue.error is not None:
            detail = f"holding the queued work failed and is retried: {queue.error}"
        else:
            detail = f"{held_items} queued item(s) held"
        conditions = set_condition(
            conditions,
            PAUSED,
            True,
            "EmergencyStop",
            f"intake stopped, dedicated WorkerPools scaled to zero; {detail}",
            now,
            generation,
        )
    else:
        conditions = set_condition(
            conditions, PAUSED, False, "Running", "work is delivered", now, generation
        )

    missing = uncovered_stages(spec, (stage for _, stage in pools))
    if queue.error is not None:
        conditions = set_condition(
            conditions,
            DEGRADED,
            True,
            "QueueUnavailable",
            f"the work queue cannot be read: {queue.error}",
            now,
            generation,
        )
    elif missing:
        conditions = set_condition(
            conditions,
            DEGRADED,
            True,
            "NoWorkerPool",
            "no WorkerPool serves stage(s): " + ", ".join(s.value for s in missing),
            now,
            generation,
        )
    else:
        conditions = set_condition(
            conditions, DEGRADED, False, "AllStagesServed", "", now, generation
        )

    conditions = _budget_condition(conditions, spec, queue, now, generation)

    stages = dict(queue.stages) if queue.stages is not None else dict(previous.stages)
    queued = (
        sum(c.pending + c.held + c.retrying for c in queue.stages.values())
        if queue.stages is not None
        else previous.queued
    )
    return ProjectStatus(
        phase=project_phase(conditions),
        observed_generation=generation,
        conditions=conditions,
        queued=queued,
        stages=stages,
        pools=sorted(name for name, _ in pools),
    )


def _budget_condition(
    conditions: list[Condition],
    spec: ProjectSpec,
    queue: QueueView,
    now: datetime,
    generation: int | None,
) -> list[Condition]:
    """BudgetExhausted: True once the project's agents have spent `budgets.tokensPerDay` or
    `budgets.costPerDayUsd` today (its queued work then waits until 00:00 UTC)."""
    budgets = spec.budgets
    if budgets is None or (budgets.tokens_per_day is None and budgets.cost_per_day_usd is None):
        return set_condition(
            conditions, BUDGET_EXHAUSTED, False, "NoDailyBudget", "no daily limit", now, generation
        )
    day = queue.budget
    if day is None:  # the queue could not be read (Degraded says why): keep what it was
        return conditions
    spent = day.exhausted
    if spent is not None:
        return set_condition(
            conditions,
            BUDGET_EXHAUSTED,
            True,
            "DailyBudgetSpent",
            f"{spent}: no item is delivered until {day.resets_at:%Y-%m-%dT%H:%MZ}; running "
            "items stop at their next model call and wait in the queue",
            now,
            generation,
        )
    return set_condition(
        conditions,
        BUDGET_EXHAUSTED,
        False,
        "WithinBudget",
        f"{day.tokens} tokens and ${day.cost_usd:.2f} spent today",
        now,
        generation,
    )


# ---------------------------------------------------------------------------- pools


@dataclass(frozen=True)
class Resolution:
    """The Projects a pool serves. `all_projects`: no selector, so new Projects join
    without a change to the pods."""

    projects: tuple[ProjectInfo, ...] = ()
    all_projects: bool = False
    problem: Problem | None = None


def resolve_projects(spec: WorkerPoolSpec, candidates: Iterable[ProjectInfo]) -> Resolution:
    in_namespace = sorted(candidates, key=lambda p: p.name)
    if spec.project is not None:
        chosen = [p for p in in_namespace if p.name == spec.project]
        if not chosen:
            return Resolution(
                problem=Problem(
                    "ProjectNotFound", f"Project {spec.project} does not exist in this namespace"
                )
            )
    elif spec.project_selector is not None:
        chosen = [p for p in in_namespace if spec.project_selector.matches(p.labels)]
        if not chosen:
            selector = spec.project_selector.model_dump(by_alias=True, exclude_defaults=True)
            return Resolution(
                problem=Problem(
                    "NoMatchingProjects",
                    f"projectSelector {selector} matches none of the "
                    f"{len(in_namespace)} Project(s) in this namespace",
                )
            )
    else:
        return _check_stage(spec, Resolution(projects=tuple(in_namespace), all_projects=True))
    return _check_stage(spec, Resolution(projects=tuple(chosen)))


def _check_stage(spec: WorkerPoolSpec, resolution: Resolution) -> Resolution:
    projects = [p for p in resolution.projects if p.problem is None]
    if not projects or any(spec.stage in p.stages for p in projects):
        return resolution
    pipelines = "; ".join(f"{p.name}: {', '.join(s.value for s in p.stages)}" for p in projects)
    return Resolution(
        projects=resolution.projects,
        all_projects=resolution.all_projects,
        problem=Problem(
            "StageNotInPipeline",
            f"stage {spec.stage.value} is in none of the served Projects' pipelines ({pipelines})",
        ),
    )


@dataclass(frozen=True)
class Replicas:
    count: int
    reason: str
    paused: bool = False


def desired_replicas(spec: WorkerPoolSpec, resolution: Resolution) -> Replicas:
    """spec.replicas (autoscaler or `kubectl scale`) within the bounds; zero while every
    Project the pool serves is on emergency stop."""
    served = [p for p in resolution.projects if p.problem is None]
    if served and all(p.paused for p in served):
        names = ", ".join(p.name for p in served)
        return Replicas(0, f"paused: every served Project is on emergency stop ({names})", True)
    if spec.replicas is None:
        return Replicas(spec.min_replicas, f"minReplicas={spec.min_replicas} (spec.replicas unset)")
    clamped = spec.clamp(spec.replicas)
    if clamped != spec.replicas:
        return Replicas(
            clamped,
            f"spec.replicas={spec.replicas} clamped to [{spec.min_replicas}, {spec.max_replicas}]",
        )
    return Replicas(clamped, f"spec.replicas={spec.replicas}")


def secret_names(spec: WorkerPoolSpec) -> list[str]:
    """Secrets the worker pods read; each must exist and be readable."""
    names = list(spec.env_from_secrets)
    names += [v.secret_key_ref.name for v in spec.env if v.secret_key_ref is not None]
    return sorted(set(names))


def secrets_problem(spec: WorkerPoolSpec, lookups: Mapping[str, SecretLookup]) -> Problem | None:
    for name in secret_names(spec):
        lookup = lookups[name]
        if lookup.missing:
            return Problem("SecretNotFound", f"Secret {name} does not exist")
        if lookup.error is not None:
            return Problem("SecretUnreadable", f"Secret {name} cannot be read: {lookup.error}")
    for var in spec.env:
        ref = var.secret_key_ref
        if ref is not None and ref.key not in lookups[ref.name].keys:
            return Problem(
                "SecretKeyNotFound",
                f"Secret {ref.name} has no key {ref.key!r} (needed by env {var.name})",
            )
    return None


def _deployment_condition(
    deployment: Mapping[str, Any], kind: str
) -> tuple[ConditionStatus, str, str] | None:
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return (
                ConditionStatus(condition.get("status", "Unknown")),
                condition.get("reason") or kind,
                condition.get("message") or "",
            )
    return None


def mirror_deployment(
    status: WorkerPoolStatus,
    deployment: Mapping[str, Any] | None,
    generation: int | None,
    now: datetime,
) -> WorkerPoolStatus:
    """Replicas, readiness and availability as the Deployment reports them."""
    if deployment is None:
        return status.model_copy(update={"replicas": 0, "ready_replicas": 0})
    observed = deployment.get("status") or {}
    conditions = status.conditions
    available = _deployment_condition(deployment, "Available")
    if available is not None:
        conditions = set_condition(conditions, AVAILABLE, *available, now, generation)
    return status.model_copy(
        update={
            "replicas": observed.get("replicas", 0),
            "ready_replicas": observed.get("readyReplicas", 0),
            "conditions": conditions,
        }
    )


@dataclass(frozen=True)
class ScaleNote:
    """Why the autoscaler asked for `replicas` (through spec.replicas), handed to the
    reconciler in the operator process: the reconciler owns lastScaleTime and
    lastScaleReason and writes them when the Deployment gets those replicas."""

    replicas: int
    reason: str
    time: datetime


@dataclass(frozen=True)
class ScalingRecord:
    """One replica change the autoscaler asked for, with the queue behind it: the status
    page's timeline (kept in the operator's memory, `OperatorContext.scaling_log`)."""

    time: datetime
    namespace: str
    pool: str
    from_replicas: int
    to_replicas: int
    reason: str
    queue_depth: float | None


def pool_status(
    previous: WorkerPoolStatus,
    *,
    name: str,
    generation: int | None,
    spec: WorkerPoolSpec | None,
    selector: str,
    resolution: Resolution | None,
    replicas: Replicas | None,
    problem: Problem | None,
    deployment: Mapping[str, Any] | None,
    now: datetime,
    scale_note: ScaleNote | None = None,
) -> WorkerPoolStatus:
    """The status after one reconcile. Problems leave the children (and the replicas
    reported for them) as they were. `scale_note`: the autoscaler's explanation of the
    replicas it last asked for (used when they are what the Deployment now gets)."""
    status = previous.model_copy(update={"observed_generation": generation, "selector": selector})
    if resolution is not None:
        status = status.model_copy(update={"projects": [p.name for p in resolution.projects]})
    if problem is not None or replicas is None or spec is None:
        reason, message = (problem.reason, problem.message) if problem else ("Unknown", "")
        return status.model_copy(
            update={
                "conditions": set_condition(
                    status.conditions, READY, False, reason, message, now, generation
                )
            }
        )
    update: dict[str, Any] = {"desired_replicas": replicas.count}
    changed = previous.desired_replicas != replicas.count
    # With autoscaling on, the autoscaler explains the replica changes it asks for through
    # spec.replicas; the operator explains only the ones it decides itself.
    explains = replicas.paused or not spec.autoscaling.enabled or previous.desired_replicas is None
    if changed and explains:
        update["last_scale_time"] = now
        update["last_scale_reason"] = replicas.reason
    elif changed and scale_note is not None and scale_note.replicas == replicas.count:
        update["last_scale_time"] = scale_note.time
        update["last_scale_reason"] = scale_note.reason
    status = mirror_deployment(status.model_copy(update=update), deployment, generation, now)
    ready = status.ready_replicas or 0
    return status.model_copy(
        update={
            "conditions": set_condition(
                status.conditions,
                READY,
                True,
                "Reconciled",
                f"Deployment {name}: {replicas.count} desired ({replicas.reason}), {ready} ready",
                now,
                generation,
            )
        }
    )


def contains(actual: Any, desired: Any) -> bool:
    """Whether `actual` (an object as stored) already has every field of `desired` (what
    the operator would apply) with the same value.

    Fields the API server or others added are ignored; lists must match element by
    element. A False is never wrong to act on: applying an unchanged manifest is a no-op,
    so this only saves requests.
    """
    if isinstance(desired, dict):
        return isinstance(actual, dict) and all(
            key in actual and contains(actual[key], value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(desired)
            and all(contains(a, d) for a, d in zip(actual, desired, strict=True))
        )
    return bool(actual == desired)


# ----------------------------------------------------------------- status ownership


@dataclass(frozen=True)
class StatusOwnership:
    """The status fields (wire names) and conditions (types) one writer owns. Each writer
    applies exactly these with server-side apply under its own field manager; no two
    writers share a field (tests/unit/controller/test_status_ownership.py)."""

    fields: frozenset[str]
    conditions: frozenset[str]

    def select(self, wire: Mapping[str, Any]) -> dict[str, Any]:
        """The part of a status (in wire form) this writer applies. A field absent here
        that the writer applied before is removed by the API server."""
        owned = {key: value for key, value in wire.items() if key in self.fields}
        owned["conditions"] = [
            c for c in wire.get("conditions") or [] if c.get("type") in self.conditions
        ]
        return owned

    def overlay(self, wire: Mapping[str, Any], owned: Mapping[str, Any]) -> dict[str, Any]:
        """`wire` with this writer's part replaced by `owned` (what `select` gave for a
        newer status): its fields as in `owned`, its conditions where they were (new ones
        last), every other field and condition as in `wire`."""
        merged = {key: value for key, value in wire.items() if key not in self.fields}
        merged.update((key, value) for key, value in owned.items() if key in self.fields)
        mine = {c.get("type"): c for c in owned.get("conditions") or []}
        conditions = [
            mine.pop(c.get("type"), c) if c.get("type") in self.conditions else c
            for c in wire.get("conditions") or []
            if c.get("type") not in self.conditions or c.get("type") in mine
        ]
        merged["conditions"] = conditions + list(mine.values())
        return merged


POOL_RECONCILER_FIELDS = StatusOwnership(
    fields=frozenset(
        {
            "observedGeneration",
            "selector",
            "projects",
            "desiredReplicas",
            "replicas",
            "readyReplicas",
            "lastScaleTime",
            "lastScaleReason",
        }
    ),
    conditions=frozenset({READY, AVAILABLE}),
)
POOL_AUTOSCALER_FIELDS = StatusOwnership(
    fields=frozenset({"metrics"}),
    conditions=frozenset({"MetricsAvailable", "ScalingActive"}),
)
PROJECT_RECONCILER_FIELDS = StatusOwnership(
    fields=frozenset({"phase", "observedGeneration", "queued", "stages", "pools"}),
    conditions=frozenset({READY, PAUSED, DEGRADED, BUDGET_EXHAUSTED}),
)
PROJECT_INTAKE_FIELDS = StatusOwnership(fields=frozenset(), conditions=frozenset({"Intake"}))
