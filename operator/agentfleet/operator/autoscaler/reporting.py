"""What the autoscaler says about a decision: the pool it decides for (`pool_target`), its
status fields and conditions, its Events, and the Pods' deletion costs. Pure: the
Kubernetes adapter (`autoscaler.scaler`) carries these out.

Of a WorkerPool's status the autoscaler owns `metrics` and the `MetricsAvailable` and
`ScalingActive` conditions (`logic.POOL_AUTOSCALER_FIELDS`). `scaled_status` also shows
the replicas, time and reason of a change; those fields are the reconciler's, which
records them from the `ScaleNote` the autoscaler hands over when it sets spec.replicas.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agentfleet.core.api.conditions import ConditionStatus, find_condition, set_condition
from agentfleet.core.api.workerpool import (
    ObservedMetrics,
    WorkerPoolConditionType,
    WorkerPoolStatus,
)
from agentfleet.operator.autoscaler.decision import Decision, Direction, Trigger
from agentfleet.operator.autoscaler.pools import PoolTarget
from agentfleet.operator.index import PAUSED_REPLICAS_ANNOTATION, PoolEntry
from agentfleet.operator.logic import (
    POOL_AUTOSCALER_FIELDS,
    ProjectInfo,
    desired_replicas,
    resolve_projects,
)

__all__ = [
    "BUSY_POD_COST",
    "IDLE_POD_COST",
    "METRICS_AVAILABLE",
    "PAUSED_REPLICAS_ANNOTATION",
    "POD_DELETION_COST_ANNOTATION",
    "RATE_LIMITED",
    "SCALING_ACTIVE",
    "ScalingEvent",
    "deletion_costs",
    "observed_metrics",
    "pinned_replicas",
    "pool_target",
    "same_status",
    "scaled_status",
    "scaling_events",
    "status_patch",
]

POD_DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
IDLE_POD_COST = 0
BUSY_POD_COST = 1
METRICS_AVAILABLE = WorkerPoolConditionType.METRICS_AVAILABLE.value
SCALING_ACTIVE = WorkerPoolConditionType.SCALING_ACTIVE.value


# ---------------------------------------------------------------------------- pure


def pinned_replicas(pool: PoolEntry) -> int | None:
    """The replicas the paused-replicas annotation pins the pool at (within the bounds),
    or None: no annotation, or a value that is not a whole number (the pool then holds
    its current replicas, and the ScalingActive condition says why)."""
    if pool.spec is None or pool.paused_replicas is None:
        return None
    try:
        wanted = int(pool.paused_replicas.strip())
    except ValueError:
        return None
    return pool.spec.clamp(max(0, wanted))


def pool_target(pool: PoolEntry, projects: Iterable[ProjectInfo]) -> PoolTarget | None:
    """What the loop needs to decide for `pool`; None when the autoscaler must leave it
    alone: its spec is invalid, its Projects cannot be resolved (the reconciler is not
    applying its Deployment either), or every Project it serves is on emergency stop
    (the reconciler holds it at zero)."""
    spec = pool.spec
    if spec is None:
        return None
    resolution = resolve_projects(spec, projects)
    if resolution.problem is not None or desired_replicas(spec, resolution).paused:
        return None
    autoscaling = spec.autoscaling
    if pool.paused_replicas is not None and not autoscaling.paused:
        autoscaling = autoscaling.model_copy(update={"paused": True})
    last_scale = pool.status.last_scale_time
    last_scale_seconds = None if last_scale is None else last_scale.timestamp()
    return PoolTarget(
        namespace=pool.namespace,
        name=pool.name,
        stage=spec.stage,
        specialties=tuple(spec.specialties),
        projects=None
        if resolution.all_projects
        else tuple(p.name for p in resolution.projects if p.problem is None),
        current_replicas=pool.replicas,
        min_replicas=spec.min_replicas,
        max_replicas=spec.max_replicas,
        autoscaling=autoscaling,
        # Status keeps one time for both directions; both timers count from the last
        # change in either direction, so seeding both with it is exact.
        last_scale_up_time=last_scale_seconds,
        last_scale_down_time=last_scale_seconds,
        generation=pool.generation,
        uid=pool.uid,
    )


RATE_LIMITED = "RateLimited"
"""The ScalingActive reason while the model API's rate limit holds a scale-up: how the next
decision knows whether a hold began or ended (each announced once, by an Event)."""


def _scaling_active(pool: PoolEntry, decision: Decision) -> tuple[bool, str, str]:
    if decision.trigger is Trigger.DISABLED:
        return (
            False,
            "AutoscalingDisabled",
            "spec.autoscaling.enabled is false: replicas are set by hand "
            "(kubectl scale workerpool)",
        )
    if decision.trigger is Trigger.PAUSED:
        current = decision.current_replicas
        if pool.paused_replicas is not None:
            pinned = pinned_replicas(pool)
            how = (
                f"pinned at {pinned} replicas"
                if pinned is not None
                else f"not a number of replicas, holding {current}"
            )
            return (
                False,
                "AutoscalingPaused",
                f"annotation {PAUSED_REPLICAS_ANNOTATION}={pool.paused_replicas!r}: {how}",
            )
        return False, "AutoscalingPaused", f"spec.autoscaling.paused is true: holding {current}"
    if not decision.metrics_available:
        return False, "MetricsUnavailable", decision.reason
    if decision.changed:
        return True, "ScalingFromMetrics", decision.summary
    if decision.blocked_by == "rate_limit":
        return True, RATE_LIMITED, decision.reason
    if decision.blocked_by is not None:
        return True, "ScalingFromMetrics", decision.reason
    return True, "ScalingFromMetrics", f"holding {decision.current_replicas}: {decision.reason}"


def _metrics_condition(decision: Decision) -> tuple[bool, str, str]:
    if decision.metrics_available:
        return True, "MetricsRead", "every signal the decision needs was read from Prometheus"
    missing = ", ".join(decision.missing_signals)
    error = f": {decision.metrics_error}" if decision.metrics_error else ""
    return False, "MetricsUnavailable", f"missing {missing}{error}"


FIRST_METRICS_GRACE_SECONDS = 120
"""How long a new pool's metrics may be missing before it says so."""


def awaiting_first_metrics(
    previous: WorkerPoolStatus, pool: PoolEntry, decision: Decision, now: datetime
) -> bool:
    """A pool created less than `FIRST_METRICS_GRACE_SECONDS` ago whose metrics have never
    been read, and a decision that only holds for want of them: Prometheus has not
    scraped the pool's lanes yet (the queue publishes a new lane once the reconciler has
    synced it, and Prometheus sees it a scrape later). Then the autoscaler writes nothing:
    a `MetricsUnavailable` Warning on every new pool, cleared a poll later, would be
    noise, and two status writes where one will do. Past the grace the Warning comes as
    for any pool."""
    return (
        not decision.metrics_available
        and not decision.changed
        and pool.created is not None
        and (now - pool.created).total_seconds() < FIRST_METRICS_GRACE_SECONDS
        and find_condition(previous.conditions, METRICS_AVAILABLE) is None
    )


def observed_metrics(decision: Decision, now: datetime) -> ObservedMetrics:
    signals = decision.signals
    return ObservedMetrics(
        queue_depth=None if signals.queue_depth is None else round(signals.queue_depth),
        oldest_wait_seconds=None
        if signals.oldest_wait_seconds is None
        else round(signals.oldest_wait_seconds, 1),
        utilization=None if signals.utilization is None else round(signals.utilization, 3),
        observed_at=now,
    )


def scaled_status(
    previous: WorkerPoolStatus, pool: PoolEntry, decision: Decision, now: datetime
) -> WorkerPoolStatus:
    """The status after the autoscaler applied `decision`; the fields the reconciler owns
    (replicas, readiness, projects, Ready, Available) are kept as they are."""
    conditions = set_condition(
        previous.conditions, METRICS_AVAILABLE, *_metrics_condition(decision), now, pool.generation
    )
    conditions = set_condition(
        conditions, SCALING_ACTIVE, *_scaling_active(pool, decision), now, pool.generation
    )
    update: dict[str, Any] = {
        "metrics": observed_metrics(decision, now),
        "conditions": conditions,
    }
    if decision.changed:
        update.update(
            desired_replicas=decision.desired_replicas,
            last_scale_time=now,
            last_scale_reason=decision.summary,
        )
    return previous.model_copy(update=update)


def status_patch(status: WorkerPoolStatus) -> dict[str, Any]:
    """The autoscaler's part of `status`, as it is applied (server-side apply as
    `agentfleet-autoscaler`): the observed metrics and its two conditions. A signal that
    went missing is left out, and the API server removes it (a field its only manager
    stops applying goes), so an outage never shows the last queue depth as if current."""
    return POOL_AUTOSCALER_FIELDS.select(status.to_wire())


def same_status(a: WorkerPoolStatus, b: WorkerPoolStatus) -> bool:
    """Equal apart from when the metrics were read: no write is needed."""

    def without_time(status: WorkerPoolStatus) -> WorkerPoolStatus:
        if status.metrics is None:
            return status
        return status.model_copy(
            update={"metrics": status.metrics.model_copy(update={"observed_at": None})}
        )

    return without_time(a) == without_time(b)


@dataclass(frozen=True)
class ScalingEvent:
    type: str
    """Normal or Warning."""
    reason: str
    message: str


def scaling_events(previous: WorkerPoolStatus, decision: Decision) -> list[ScalingEvent]:
    """Events for what changed: the replicas, a scale-up the model API's rate limit holds
    (when the hold begins, `ScaleBlocked`, and when it ends, `RateLimitCleared`), and the
    MetricsAvailable condition of a pool that is being autoscaled (a paused or disabled
    pool does not act on its metrics)."""
    events = []
    change = f"{decision.current_replicas}→{decision.desired_replicas}: {decision.reason}"
    if decision.direction is Direction.UP:
        if decision.trigger is Trigger.FALLBACK:
            events.append(ScalingEvent("Warning", "FallbackReplicas", change))
        else:
            events.append(ScalingEvent("Normal", "ScaledUp", change))
    elif decision.direction is Direction.DOWN:
        events.append(ScalingEvent("Normal", "ScaledDown", change))
    if decision.trigger in (Trigger.PAUSED, Trigger.DISABLED):
        return events
    active = find_condition(previous.conditions, SCALING_ACTIVE)
    was_limited = active is not None and active.reason == RATE_LIMITED
    limited = decision.blocked_by == "rate_limit"
    if limited and not was_limited:
        events.append(
            ScalingEvent(
                "Warning",
                decision.event_reason,
                f"{decision.current_replicas}→{decision.wanted_replicas} wanted, "
                f"{decision.desired_replicas} kept: {decision.reason}",
            )
        )
    elif was_limited and not limited and decision.metrics_available:
        events.append(
            ScalingEvent(
                "Normal",
                "RateLimitCleared",
                f"scale-ups are no longer held by the model API's rate limit: {decision.reason}",
            )
        )
    before = find_condition(previous.conditions, METRICS_AVAILABLE)
    was_available = before is None or before.status is ConditionStatus.TRUE
    if was_available and not decision.metrics_available:
        _, _, message = _metrics_condition(decision)
        events.append(
            ScalingEvent(
                "Warning",
                "MetricsUnavailable",
                f"{message}; holding {decision.desired_replicas} replicas, "
                "never scaling down on missing data",
            )
        )
    elif before is not None and not was_available and decision.metrics_available:
        events.append(
            ScalingEvent(
                "Normal", "MetricsAvailable", "every signal is read again: scaling resumes"
            )
        )
    return events


def deletion_costs(pods: Mapping[str, str | None], busy: Mapping[str, float]) -> dict[str, str]:
    """The pod-deletion-cost each Pod must get, for the Pods whose annotation differs.

    `pods`: Pod name -> its current annotation value (None: none, which counts as 0).
    `busy`: Pod name -> agentfleet_worker_busy; a Pod without a series (still starting)
    is idle.
    """
    wanted = {}
    for pod, current in pods.items():
        cost = str(BUSY_POD_COST if busy.get(pod, 0.0) > 0 else IDLE_POD_COST)
        if (current or str(IDLE_POD_COST)) != cost:
            wanted[pod] = cost
    return wanted
