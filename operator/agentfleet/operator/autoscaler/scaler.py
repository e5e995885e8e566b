"""The Kubernetes `Scaler` the operator's `AutoscalerLoop` drives: it carries out what
the loop decided and `autoscaler.reporting` describes, through the operator's one API
client and Event recorder (`OperatorContext`).

- the pool's replicas go to the WorkerPool's scale subresource (`spec.replicas`, what
  `kubectl scale workerpool` writes), only when they change. The reconciler turns that
  into the Deployment's replicas, exactly as it would for a person scaling by hand, so
  there is one path from "replicas wanted" to pods. Before that, the reason goes to the
  reconciler as a `ScaleNote`: it owns desiredReplicas, lastScaleTime and
  lastScaleReason.
- `status`: the observed metrics and the MetricsAvailable and ScalingActive conditions,
  server-side applied as `agentfleet-autoscaler`.
- Events: ScaledUp/ScaledDown ("2→4: queue_depth=14 > 10"), FallbackReplicas,
  MetricsUnavailable and MetricsAvailable (on the transitions of the condition),
  ScalingPaused.
- Before a scale-down, every Pod of the pool gets `controller.kubernetes.io/pod-deletion-cost`
  (0 idle, 1 busy: holding a queue item, or reporting busy) so the ReplicaSet controller
  removes idle workers first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.exceptions import RedisError

from agentfleet.core.queue import CONNECTION_ERRORS
from agentfleet.operator.autoscaler.decision import Decision, Direction
from agentfleet.operator.autoscaler.pools import PoolKey, PoolTarget
from agentfleet.operator.autoscaler.prometheus import MetricsError, PrometheusSource
from agentfleet.operator.autoscaler.reporting import (
    PAUSED_REPLICAS_ANNOTATION,
    POD_DELETION_COST_ANNOTATION,
    awaiting_first_metrics,
    deletion_costs,
    pinned_replicas,
    pool_target,
    same_status,
    scaled_status,
    scaling_events,
    status_patch,
)
from agentfleet.operator.children import selector_labels
from agentfleet.operator.context import OperatorContext
from agentfleet.operator.events import ObjectRef
from agentfleet.operator.index import PoolEntry, PoolIndexKey, parse_pool_status
from agentfleet.operator.kube import AUTOSCALER, KubeError
from agentfleet.operator.logic import (
    POOL_AUTOSCALER_FIELDS,
    ProjectInfo,
    ScaleNote,
    ScalingRecord,
)
from agentfleet.operator.written import Written

log = logging.getLogger("agentfleet.operator.autoscaler")


class PoolDirectory:
    """The pools this operator serves right now, from the operator's WorkerPool and
    Project indexes and the set of pools whose kopf daemon is running."""

    def __init__(
        self,
        pools: Mapping[PoolIndexKey, Iterable[PoolEntry]],
        projects: Mapping[str, Iterable[ProjectInfo]],
        active: set[PoolKey] | None = None,
    ) -> None:
        self.pools = pools
        self.projects = projects
        self.active: set[PoolKey] = set() if active is None else active

    def get(self, key: PoolKey) -> PoolEntry | None:
        return next(iter(self.pools.get(key) or ()), None)

    def targets(self) -> list[PoolTarget]:
        projects_by_namespace: dict[str, list[ProjectInfo]] = {}
        targets = []
        for key in list(self.active):
            pool = self.get(key)
            if pool is None:
                continue
            namespace = pool.namespace
            if namespace not in projects_by_namespace:
                projects_by_namespace[namespace] = list(self.projects.get(namespace) or ())
            target = pool_target(pool, projects_by_namespace[namespace])
            if target is not None:
                targets.append(target)
        return targets


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _ref(pool: PoolEntry) -> ObjectRef:
    return ObjectRef("WorkerPool", pool.namespace, pool.name, pool.uid)


class KubernetesScaler:
    """The `Scaler` of the operator's AutoscalerLoop."""

    def __init__(
        self, context: OperatorContext, prometheus: PrometheusSource, directory: PoolDirectory
    ) -> None:
        self.context = context
        self.kube = context.kube
        self.events = context.events
        self.prometheus = prometheus
        self.directory = directory
        # This autoscaler's fields of each pool's status (wire form) as the API server
        # answered its last write: an unchanged decision is neither written nor its Events
        # posted again while the index lags behind (`written`).
        self._written: Written[dict[str, Any]] = Written()

    async def list_pools(self) -> Sequence[PoolTarget]:
        return self.directory.targets()

    async def apply(self, pool: PoolTarget, decision: Decision) -> None:
        known = self.directory.get(pool.key)
        if known is None:  # deleted since it was listed
            self._written.forget(pool.key)
            return
        now = _now()
        mine = self._written.recall(known.key, known.uid)
        previous = (
            known.status
            if mine is None
            else parse_pool_status(POOL_AUTOSCALER_FIELDS.overlay(known.status.to_wire(), mine))
        )
        if awaiting_first_metrics(previous, known, decision, now):
            return
        updated = scaled_status(previous, known, decision, now)
        if not decision.changed and same_status(previous, updated):
            return
        if decision.direction is Direction.DOWN:
            await self._mark_idle_pods(pool)
        events = scaling_events(previous, decision)
        written = await self.kube.apply_status(
            pool.namespace, "workerpools", pool.name, status_patch(updated), AUTOSCALER
        )
        if written is None:  # deleted meanwhile
            self._written.forget(pool.key)
            return
        self._written.remember(
            pool.key,
            str(written["metadata"]["uid"]),
            POOL_AUTOSCALER_FIELDS.select(written.get("status") or {}),
        )
        if decision.changed:
            await self._scale(known, decision.desired_replicas, decision.summary, now)
            self.context.scaling_log.append(
                ScalingRecord(
                    time=now,
                    namespace=pool.namespace,
                    pool=pool.name,
                    from_replicas=decision.current_replicas,
                    to_replicas=decision.desired_replicas,
                    reason=decision.reason,
                    queue_depth=decision.signals.queue_depth,
                )
            )
        for event in events:
            self.events.post(_ref(known), event.type, event.reason, event.message, AUTOSCALER)

    async def pin(self, pool: PoolEntry) -> None:
        """Hold the pool at what its paused-replicas annotation asks for."""
        target = pinned_replicas(pool)
        if target is None or target == pool.replicas:
            return
        reason = (
            f"Paused {pool.replicas}→{target}: annotation "
            f"{PAUSED_REPLICAS_ANNOTATION}={pool.paused_replicas!r}"
        )
        await self._scale(pool, target, reason, _now())
        self.events.normal(_ref(pool), "ScalingPaused", reason.removeprefix("Paused "), AUTOSCALER)
        log.info("%s/%s %s", pool.namespace, pool.name, reason)

    async def _scale(self, pool: PoolEntry, replicas: int, reason: str, now: datetime) -> None:
        """spec.replicas through the scale subresource, the reason handed to the
        reconciler first (it records both once the Deployment gets them)."""
        self.context.scale_notes[pool.key] = ScaleNote(replicas, reason, now)
        await self.kube.scale(pool.namespace, "workerpools", pool.name, replicas)

    async def _mark_idle_pods(self, pool: PoolTarget) -> None:
        """Give idle Pods the lower deletion cost, so the ReplicaSet controller removes
        them before busy ones. Busy: holds an item in the work queue (what Redis knows
        now), or reports `agentfleet_worker_busy` (a worker between claim and accept, or a
        queue this operator cannot read). Prometheus alone lags a scrape behind, and after
        a Prometheus restart it has no series until the first scrape. Best effort: a busy
        Pod removed anyway drains (finishes or releases its item on SIGTERM), so a failure
        here costs time, never work."""
        busy: dict[str, float] = {}
        if self.context.queue is not None:
            try:
                holders = await self.context.queue.holders(pool.namespace)
                busy.update({pod: float(count) for pod, count in holders.items()})
            except (RedisError, *CONNECTION_ERRORS) as error:
                log.warning("%s/%s: queue holders unknown (%s)", *pool.key, error)
        promql = (
            f'max by (pod) (agentfleet_worker_busy{{namespace="{pool.namespace}",'
            f'pool="{pool.name}"}})'
        )
        try:
            samples = await self.prometheus.query(promql)
        except MetricsError as error:
            log.warning("%s/%s: busy series unknown (%s)", *pool.key, error)
            samples = []
        for sample in samples:
            pod = sample.labels.get("pod", "")
            busy[pod] = max(busy.get(pod, 0.0), sample.value)
        pods = await self.kube.pod_annotations(
            pool.namespace, selector_labels(pool.name), POD_DELETION_COST_ANNOTATION
        )
        for pod, cost in deletion_costs(pods, busy).items():
            try:
                await self.kube.annotate_pod(
                    pool.namespace, pod, POD_DELETION_COST_ANNOTATION, cost
                )
            except KubeError as error:
                log.warning("%s/%s: deletion cost of %s: %s", *pool.key, pod, error)
