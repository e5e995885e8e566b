"""The autoscaler inside the operator: the Kubernetes `Scaler` the `AutoscalerLoop` drives,
and the kopf registrations that run the loop in the operator process.

The loop decides; this module makes the decisions visible and effective:

- the pool's replicas are written to the WorkerPool's scale subresource (`spec.replicas`,
  what `kubectl scale workerpool` writes), only when they change. The reconciler turns
  that into the Deployment's replicas, exactly as it would for a person scaling by hand,
  so there is one path from "replicas wanted" to pods.
- `status` gets the decision: desiredReplicas, lastScaleTime and lastScaleReason on a
  change, the observed metrics, and the MetricsAvailable and ScalingActive conditions.
- Events: ScaledUp/ScaledDown ("2→4: queue_depth=14 > 10"), FallbackReplicas,
  MetricsUnavailable and MetricsAvailable (on the transitions of the condition).
- Before a scale-down, every Pod of the pool gets `controller.kubernetes.io/pod-deletion-cost`
  (0 idle, 1 busy) so the ReplicaSet controller removes idle workers first.

Which pools the loop sees: those this operator currently serves. A kopf daemon per
WorkerPool adds the pool to the set while it runs; kopf stops every daemon when the
operator pauses for a peer with a higher priority (and on shutdown and deletion), and
starts them again on resume, so only the active replica of a peered deployment scales.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client
from pydantic import ValidationError
from redis.exceptions import RedisError

from agentfleet.core.api.base import API_GROUP, API_VERSION
from agentfleet.core.api.conditions import ConditionStatus, find_condition, set_condition
from agentfleet.core.api.workerpool import (
    ObservedMetrics,
    WorkerPoolConditionType,
    WorkerPoolSpec,
    WorkerPoolStatus,
)
from agentfleet.core.queue import Arrival, WorkQueue
from agentfleet.operator.autoscaler.decision import Decision, Direction, Trigger
from agentfleet.operator.autoscaler.loop import AutoscalerLoop
from agentfleet.operator.autoscaler.pools import PoolKey, PoolTarget
from agentfleet.operator.autoscaler.prometheus import MetricsError, PrometheusSource
from agentfleet.operator.children import selector_string
from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.kube import MERGE_PATCH, Kube, new_api_client
from agentfleet.operator.logic import ProjectInfo, desired_replicas, resolve_projects

log = logging.getLogger("agentfleet.autoscaler")

WORKERPOOLS = (API_GROUP, API_VERSION, "workerpools")
PAUSED_REPLICAS_ANNOTATION = f"autoscaling.{API_GROUP}/paused-replicas"
"""Like KEDA's `autoscaling.keda.sh/paused-replicas`: pin the pool at this many replicas
and stop autoscaling it until the annotation is removed."""
POD_DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
IDLE_POD_COST = 0
BUSY_POD_COST = 1
EVENT_COMPONENT = "agentfleet-autoscaler"

METRICS_AVAILABLE = WorkerPoolConditionType.METRICS_AVAILABLE.value
SCALING_ACTIVE = WorkerPoolConditionType.SCALING_ACTIVE.value


# ---------------------------------------------------------------------------- pure


@dataclass(frozen=True)
class ScalablePool:
    """A WorkerPool as the autoscaler's kopf index keeps it (parsed once per change)."""

    namespace: str
    name: str
    uid: str
    generation: int | None
    resource_version: str
    spec: WorkerPoolSpec | None
    """None when the spec does not parse; the reconciler reports why, the pool is skipped."""
    status: WorkerPoolStatus
    paused_replicas: str | None
    """The raw value of the paused-replicas annotation; None when absent."""

    @property
    def key(self) -> PoolKey:
        return (self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ScalablePool:
        meta = body.get("metadata") or {}
        try:
            spec: WorkerPoolSpec | None = WorkerPoolSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            spec = None
        return cls(
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            generation=meta.get("generation"),
            resource_version=meta.get("resourceVersion", ""),
            spec=spec,
            status=_parse_status(body.get("status")),
            paused_replicas=(meta.get("annotations") or {}).get(PAUSED_REPLICAS_ANNOTATION),
        )

    @property
    def replicas(self) -> int:
        """What the pool asks for now: spec.replicas, minReplicas while unset."""
        if self.spec is None:
            raise RuntimeError("the pool's spec is read before it is scaled")
        return self.spec.min_replicas if self.spec.replicas is None else self.spec.replicas


def _parse_status(raw: Mapping[str, Any] | None) -> WorkerPoolStatus:
    """The status as stored; one the model cannot read is treated as empty (and is
    rewritten whole by the next status write)."""
    try:
        return WorkerPoolStatus.model_validate(raw or {})
    except ValidationError:
        return WorkerPoolStatus()


def pinned_replicas(pool: ScalablePool) -> int | None:
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


def pool_target(pool: ScalablePool, projects: Iterable[ProjectInfo]) -> PoolTarget | None:
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
    )


def _scaling_active(pool: ScalablePool, decision: Decision) -> tuple[bool, str, str]:
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
    if decision.blocked_by is not None:
        return True, "ScalingFromMetrics", decision.reason
    return True, "ScalingFromMetrics", f"holding {decision.current_replicas}: {decision.reason}"


def _metrics_condition(decision: Decision) -> tuple[bool, str, str]:
    if decision.metrics_available:
        return True, "MetricsRead", "every signal the decision needs was read from Prometheus"
    missing = ", ".join(decision.missing_signals)
    error = f": {decision.metrics_error}" if decision.metrics_error else ""
    return False, "MetricsUnavailable", f"missing {missing}{error}"


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
    previous: WorkerPoolStatus, pool: ScalablePool, decision: Decision, now: datetime
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
    """The merge patch that writes `status`: its wire form, with the observed metrics
    spelled out including nulls, so a signal that went missing is removed from the status
    (and from the QUEUE column) instead of showing its last value as if it were current."""
    wire = status.to_wire()
    if status.metrics is not None:
        wire["metrics"] = status.metrics.model_dump(by_alias=True, mode="json")
    return wire


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
    """Events for what changed: the replicas, and the MetricsAvailable condition of a pool
    that is being autoscaled (a paused or disabled pool does not act on its metrics)."""
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


# ------------------------------------------------------------------------- adapter


class PoolDirectory:
    """The pools this operator serves right now, from the autoscaler's kopf index, the
    operator's Project index and the set of pools whose kopf daemon is running."""

    def __init__(
        self,
        pools: Mapping[PoolKey, Iterable[ScalablePool]],
        projects: Mapping[str, Iterable[ProjectInfo]],
        active: set[PoolKey] | None = None,
    ) -> None:
        self.pools = pools
        self.projects = projects
        self.active: set[PoolKey] = set() if active is None else active

    def get(self, key: PoolKey) -> ScalablePool | None:
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


class KubernetesScaler:
    """The `Scaler` of the operator's AutoscalerLoop."""

    def __init__(self, kube: Kube, prometheus: PrometheusSource, directory: PoolDirectory):
        self.kube = kube
        self.prometheus = prometheus
        self.directory = directory
        self.custom = client.CustomObjectsApi(kube.api_client)
        self.core = client.CoreV1Api(kube.api_client)
        self.instance = socket.gethostname()

    async def list_pools(self) -> Sequence[PoolTarget]:
        return self.directory.targets()

    async def apply(self, pool: PoolTarget, decision: Decision) -> None:
        known = self.directory.get(pool.key)
        if known is None:  # deleted since it was listed
            return
        now = _now()
        if not decision.changed and same_status(
            known.status, scaled_status(known.status, known, decision, now)
        ):
            return
        if decision.direction is Direction.DOWN:
            await self._mark_idle_pods(pool)
        version = known.resource_version
        if decision.changed:
            version = await asyncio.to_thread(
                self._patch_replicas, pool.namespace, pool.name, decision.desired_replicas
            )
        events: list[ScalingEvent] = []

        def compute(previous: WorkerPoolStatus) -> dict[str, Any] | None:
            updated = scaled_status(previous, known, decision, now)
            events[:] = scaling_events(previous, decision)
            return None if updated == previous else status_patch(updated)

        if await asyncio.to_thread(self._write_status, known, version, compute):
            for event in events:
                await asyncio.to_thread(self._post_event, known, event, now)

    async def pin(self, pool: ScalablePool) -> None:
        """Hold the pool at what its paused-replicas annotation asks for."""
        target = pinned_replicas(pool)
        if target is None or target == pool.replicas:
            return
        reason = (
            f"Paused {pool.replicas}→{target}: annotation "
            f"{PAUSED_REPLICAS_ANNOTATION}={pool.paused_replicas!r}"
        )
        now = _now()
        await asyncio.to_thread(self._patch_replicas, pool.namespace, pool.name, target)

        def compute(current: dict[str, Any]) -> dict[str, Any] | None:
            previous = _parse_status(current.get("status"))
            updated = previous.model_copy(
                update={
                    "desired_replicas": target,
                    "last_scale_time": now,
                    "last_scale_reason": reason,
                }
            )
            return updated.to_wire()

        await asyncio.to_thread(
            self.kube.update_status, pool.namespace, "workerpools", pool.name, compute
        )
        message = reason.removeprefix("Paused ")
        await asyncio.to_thread(
            self._post_event, pool, ScalingEvent("Normal", "ScalingPaused", message), now
        )
        log.info("%s/%s %s", pool.namespace, pool.name, reason)

    # ----------------------------------------------------------------- calls
    def _patch_replicas(self, namespace: str, name: str, replicas: int) -> str:
        """Set spec.replicas through the scale subresource; the new resourceVersion."""
        response = self.custom.patch_namespaced_custom_object_scale(
            API_GROUP,
            API_VERSION,
            namespace,
            WORKERPOOLS[2],
            name,
            {"spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH,
            _preload_content=False,
        )
        version: str = json.loads(response.data)["metadata"]["resourceVersion"]
        return version

    def _write_status(
        self,
        known: ScalablePool,
        version: str,
        compute: Callable[[WorkerPoolStatus], dict[str, Any] | None],
    ) -> bool:
        """Write the status computed from the one the index holds, at the version it was
        read (one request); if the pool changed since, read it and compute again
        (`Kube.update_status`). False when there was nothing to write or no pool."""
        status = compute(known.status)
        if status is None:
            return False
        try:
            self.custom.patch_namespaced_custom_object_status(
                API_GROUP,
                API_VERSION,
                known.namespace,
                WORKERPOOLS[2],
                known.name,
                {"metadata": {"resourceVersion": version}, "status": status},
                _content_type=MERGE_PATCH,
                _preload_content=False,
            )
            return True
        except client.ApiException as error:
            if error.status == 404:
                return False
            if error.status != 409:
                raise
        written = self.kube.update_status(
            known.namespace,
            WORKERPOOLS[2],
            known.name,
            lambda current: compute(_parse_status(current.get("status"))),
        )
        return written is not None

    async def _mark_idle_pods(self, pool: PoolTarget) -> None:
        """Give idle Pods the lower deletion cost, so the ReplicaSet controller removes
        them before busy ones. Best effort: a busy Pod removed anyway drains (finishes or
        releases its item on SIGTERM), so a failure here costs time, never work."""
        promql = (
            f'max by (pod) (agentfleet_worker_busy{{namespace="{pool.namespace}",'
            f'pool="{pool.name}"}})'
        )
        try:
            samples = await self.prometheus.query(promql)
        except MetricsError as error:
            log.warning(
                "%s/%s: busy workers unknown (%s); scaling down without deletion costs",
                *pool.key,
                error,
            )
            return
        busy = {s.labels.get("pod", ""): s.value for s in samples}
        pods = await asyncio.to_thread(self._pod_costs, pool)
        for pod, cost in deletion_costs(pods, busy).items():
            await asyncio.to_thread(self._set_cost, pool.namespace, pod, cost)

    def _pod_costs(self, pool: PoolTarget) -> dict[str, str | None]:
        listing = self.core.list_namespaced_pod(
            pool.namespace, label_selector=selector_string(pool.name)
        )
        return {
            pod.metadata.name: (pod.metadata.annotations or {}).get(POD_DELETION_COST_ANNOTATION)
            for pod in listing.items
            if pod.metadata.deletion_timestamp is None
        }

    def _set_cost(self, namespace: str, pod: str, cost: str) -> None:
        with contextlib.suppress(client.ApiException):  # gone meanwhile
            self.core.patch_namespaced_pod(
                pod, namespace, {"metadata": {"annotations": {POD_DELETION_COST_ANNOTATION: cost}}}
            )

    def _post_event(self, pool: ScalablePool, event: ScalingEvent, now: datetime) -> None:
        stamp = now.isoformat().replace("+00:00", "Z")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{pool.name}.", "namespace": pool.namespace},
            "involvedObject": {
                "apiVersion": f"{API_GROUP}/{API_VERSION}",
                "kind": "WorkerPool",
                "name": pool.name,
                "namespace": pool.namespace,
                "uid": pool.uid,
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message,
            "source": {"component": EVENT_COMPONENT},
            "reportingComponent": f"{API_GROUP}/autoscaler",
            "reportingInstance": self.instance,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.core.create_namespaced_event(pool.namespace, body)
        except client.ApiException as error:  # an Event is never worth failing a decision
            log.warning("posting %s Event for %s/%s failed: %s", event.reason, *pool.key, error)


# --------------------------------------------------------------------- activation


async def activate_on_arrivals(
    queue: WorkQueue, loop: AutoscalerLoop, stop: asyncio.Event, batch_seconds: float = 0.05
) -> None:
    """Scale pools at zero the moment the queue reports an item for them. Arrivals that
    come together (a burst) are handled as one batch; a lost Redis connection is retried
    (what arrives meanwhile is picked up by the pools' regular polls)."""
    while not stop.is_set():
        try:
            arrivals = queue.arrivals()
            batch: list[Arrival] = []
            pending = asyncio.ensure_future(anext(arrivals))
            while not stop.is_set():
                done, _ = await asyncio.wait(
                    {pending}, timeout=None if not batch else batch_seconds
                )
                if pending in done:
                    batch.append(pending.result())
                    pending = asyncio.ensure_future(anext(arrivals))
                    continue
                await loop.activate(batch)
                batch = []
        except (RedisError, OSError) as exc:
            log.warning("arrivals from the queue lost (%s); listening again in 1 s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


# --------------------------------------------------------------------- kopf wiring


def install_autoscaler(registry: kopf.OperatorRegistry, config: OperatorConfig) -> None:
    """Register the autoscaler on the operator's registry (an operator `Extension`).

    The loop runs as a background task from startup to cleanup. It scales the pools whose
    `autoscaler_member` daemon runs; kopf runs daemons only while this operator is active
    (not paused for a peer with a higher priority), so a standby replica lists no pools
    and neither patches nor posts anything.
    """
    if config.prometheus_url is None:
        raise ValueError("the autoscaler needs a Prometheus URL")
    prometheus_url = config.prometheus_url
    active: set[PoolKey] = set()
    running: dict[str, Any] = {}

    @kopf.index(*WORKERPOOLS, id="autoscaler_pools", registry=registry)
    def autoscaler_pools(
        *, body: kopf.Body, namespace: str | None, name: str, **_: Any
    ) -> dict[PoolKey, ScalablePool]:
        return {(namespace or "", name): ScalablePool.from_body(body)}

    @kopf.daemon(*WORKERPOOLS, id="autoscaler_member", cancellation_timeout=5.0, registry=registry)
    async def autoscaler_member(
        *, namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        key = (namespace or "", name)
        active.add(key)
        try:
            await stopped.wait()
        finally:
            active.discard(key)

    # Change handlers, not a watch-event handler: they run once per change of the spec or
    # the annotations, never again for the stale events still in flight after the pin.
    @kopf.on.resume(
        *WORKERPOOLS,
        id="autoscaler_pin",
        annotations={PAUSED_REPLICAS_ANNOTATION: kopf.PRESENT},
        registry=registry,
    )
    @kopf.on.create(
        *WORKERPOOLS,
        id="autoscaler_pin",
        annotations={PAUSED_REPLICAS_ANNOTATION: kopf.PRESENT},
        registry=registry,
    )
    @kopf.on.update(
        *WORKERPOOLS,
        id="autoscaler_pin",
        annotations={PAUSED_REPLICAS_ANNOTATION: kopf.PRESENT},
        registry=registry,
    )
    async def autoscaler_pin(*, body: kopf.Body, **_: Any) -> None:
        scaler: KubernetesScaler | None = running.get("scaler")
        if scaler is not None:
            await scaler.pin(ScalablePool.from_body(body))

    @kopf.on.startup(id="autoscaler_start", registry=registry)
    async def autoscaler_start(**kwargs: Any) -> None:
        pools: kopf.Index[PoolKey, ScalablePool] = kwargs["autoscaler_pools"]
        projects: kopf.Index[str, ProjectInfo] = kwargs["project_index"]
        source = PrometheusSource(prometheus_url)
        directory = PoolDirectory(pools, projects, active)
        scaler = KubernetesScaler(Kube(new_api_client(config.kubeconfig)), source, directory)
        # Its metrics join the default registry, which the operator's /metrics serves.
        loop = AutoscalerLoop(source, scaler)
        stop = asyncio.Event()
        running.update(
            scaler=scaler,
            source=source,
            stop=stop,
            task=asyncio.create_task(loop.run(stop), name="autoscaler loop"),
        )
        if config.redis_url is not None:
            queue = WorkQueue.from_url(config.redis_url)
            running.update(
                queue=queue,
                activation=asyncio.create_task(
                    activate_on_arrivals(queue, loop, stop), name="activation on arrival"
                ),
            )
        log.info("autoscaler started: Prometheus %s", prometheus_url)

    @kopf.on.cleanup(id="autoscaler_stop", registry=registry)
    async def autoscaler_stop(**_: Any) -> None:
        if "task" not in running:
            return
        running["stop"].set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(running["task"], timeout=10)
        if "activation" in running:
            running["activation"].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running["activation"]
            await running["queue"].close()
        await running["source"].aclose()
