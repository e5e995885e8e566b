"""Rows for the CLI's tables, from custom resources and Pods as the API server returns
them (plain dicts). Pure: no I/O, tested on hand-written objects."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from agentfleet.core.api.base import Stage
from agentfleet.core.fleetapi import (
    AlertReport,
    DeadLetterReport,
    DispatchResult,
    HeldItem,
    QueueReport,
    StageThroughput,
    ThroughputReport,
)

Object = Mapping[str, Any]


class Row(BaseModel):
    """A row of a table; camelCase in JSON and YAML (`by_alias`), strict when read back."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class ProjectRow(Row):
    namespace: str
    name: str
    repository: str
    phase: str
    ready: str
    paused: bool
    queued: int | None
    in_flight: int
    completed: int
    dead_lettered: int
    pools: list[str]
    message: str


class StageRow(Row):
    namespace: str
    project: str
    stage: str
    pending: int
    in_flight: int
    held: int
    retrying: int
    completed: int
    dead_lettered: int


class PoolRow(Row):
    namespace: str
    name: str
    stage: str
    replicas: int | None
    ready_replicas: int | None
    desired_replicas: int | None
    min_replicas: int
    max_replicas: int
    mode: str
    """auto, pinned (autoscaling off: replicas set by hand) or paused."""
    queue: int | None
    oldest_wait_seconds: float | None
    utilization: float | None
    ready: str
    last_scale_reason: str | None
    last_scale_time: str | None


class WorkerRow(Row):
    namespace: str
    pool: str
    name: str
    phase: str
    ready: bool
    restarts: int
    age_seconds: float | None
    node: str | None
    deleting: bool
    items: list[str]
    """The work items the worker holds now (the operator's read API); empty: idle."""
    heartbeat_age_seconds: float | None
    """Since the worker last renewed its claim on them; None when it holds nothing."""


class LaneRow(Row):
    """One lane of the work queue (the operator's read API)."""

    namespace: str
    project: str
    stage: str
    specialty: str
    lane: str
    waiting: int
    held: bool
    """The Project is paused: the waiting items are held, not delivered."""
    in_flight: int
    retrying: int
    oldest_wait_seconds: float | None


class Queues(Row):
    """`agentfleet queues`: each Project stage's counts, and every lane behind them."""

    stages: list[StageRow]
    lanes: list[LaneRow]


class QueuesOutput(Queues):
    """What `queues` prints with -o json or -o yaml."""

    kind: str


class AlertRow(Row):
    name: str
    state: str
    """firing or pending (Prometheus' states)."""
    severity: str | None
    namespace: str | None
    summary: str
    active_at: str | None


class StageMetricsRow(Row):
    """What a Project stage finished within the window (the completion log)."""

    namespace: str
    project: str
    stage: str
    window_seconds: float
    finished: int
    succeeded: int
    dead_lettered: int
    retried: int
    per_hour: float
    success_rate: float | None
    rework_rate: float | None
    stage_seconds: float | None
    """Mean seconds from queueing to success in the stage."""
    pipeline_seconds: float | None
    """Mean seconds from entering the pipeline to success in the stage (at the last
    stage: the pipeline time)."""
    target_per_hour: float | None
    """The seeds' throughput goal for the stage (None: the stage has none)."""
    target_per_worker: bool
    """Whether the goal is per worker (development) rather than for the stage."""


THROUGHPUT_TARGETS: dict[Stage, tuple[float, bool]] = {
    Stage.GENESIS: (8.0, False),
    Stage.DEVELOPMENT: (3.0, True),
    Stage.CONTENT: (5.0, False),
}
"""The origin documents' throughput goals, per hour: 8+ projects scaffolded, 3+ features
per worker, 5+ content pieces across the pool; review has none."""


class DeadLetterRow(Row):
    """A dead-lettered item `agentfleet retry` can put back in the queue."""

    namespace: str
    project: str
    item_id: str
    stage: str | None
    """None: the stored item cannot be read (it cannot be retried)."""
    attempts: int
    error: str | None


def dead_letter_rows(report: DeadLetterReport) -> list[DeadLetterRow]:
    return [
        DeadLetterRow(
            namespace=report.namespace, project=report.project, item_id=d.item_id,
            stage=None if d.stage is None else d.stage.value, attempts=d.attempts, error=d.error,
        )
        for d in report.items
    ]  # fmt: skip


class DispatchRow(Row):
    """One issue `agentfleet dispatch` started, or why it did not."""

    namespace: str
    project: str
    issue: int | None
    title: str
    item_id: str | None
    created: bool
    """Opened by this dispatch, from a requirement."""
    new: bool
    """New to the queue (False: it was queued or done before)."""
    error: str | None


def dispatch_rows(result: DispatchResult) -> list[DispatchRow]:
    return [
        DispatchRow(
            namespace=result.namespace, project=result.project, issue=d.issue, title=d.title,
            item_id=d.item_id, created=d.created, new=d.new, error=d.error,
        )
        for d in result.dispatched
    ]  # fmt: skip


def queue_rows(report: QueueReport) -> Queues:
    """The lanes of one namespace, and per Project stage their sums with the finished
    counts (pending: waiting in running Projects, held: waiting in paused ones)."""
    lanes = [
        LaneRow(
            namespace=report.namespace, project=r.project, stage=r.stage.value,
            specialty=r.specialty, lane=r.lane.value, waiting=r.waiting, held=r.held,
            in_flight=r.in_flight, retrying=r.retrying, oldest_wait_seconds=r.oldest_wait_seconds,
        )
        for r in report.lanes
    ]  # fmt: skip
    sums: dict[tuple[str, Stage], list[int]] = {}
    for r in report.lanes:
        row = sums.setdefault((r.project, r.stage), [0] * 6)
        row[2 if r.held else 0] += r.waiting
        row[1] += r.in_flight
        row[3] += r.retrying
    for t in report.stages:
        row = sums.setdefault((t.project, t.stage), [0] * 6)
        row[4] += t.completed
        row[5] += t.dead_lettered
    order = list(Stage)
    ordered = sorted(sums.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1])))
    stages = [
        StageRow(
            namespace=report.namespace, project=project, stage=stage.value, pending=n[0],
            in_flight=n[1], held=n[2], retrying=n[3], completed=n[4], dead_lettered=n[5],
        )
        for (project, stage), n in ordered
        if any(n)
    ]  # fmt: skip
    return Queues(stages=stages, lanes=lanes)


def alert_rows(report: AlertReport) -> list[AlertRow]:
    return [
        AlertRow(
            name=a.name, state=a.state, severity=a.severity, namespace=a.namespace,
            summary=a.summary, active_at=a.active_at,
        )
        for a in report.alerts
    ]  # fmt: skip


def metrics_rows(report: ThroughputReport) -> list[StageMetricsRow]:
    return [_metrics_row(report, s) for s in report.stages]


def _metrics_row(report: ThroughputReport, s: StageThroughput) -> StageMetricsRow:
    target, per_worker = THROUGHPUT_TARGETS.get(s.stage, (None, False))
    return StageMetricsRow(
        namespace=report.namespace, project=s.project, stage=s.stage.value,
        window_seconds=report.window_seconds, finished=s.finished, succeeded=s.succeeded,
        dead_lettered=s.dead_lettered, retried=s.retried, per_hour=s.per_hour,
        success_rate=s.success_rate, rework_rate=s.rework_rate,
        stage_seconds=s.stage_seconds, pipeline_seconds=s.pipeline_seconds,
        target_per_hour=target, target_per_worker=per_worker,
    )  # fmt: skip


def _condition(obj: Object, kind: str) -> Mapping[str, Any]:
    for condition in obj.get("status", {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def project_row(project: Object) -> ProjectRow:
    spec = project.get("spec", {})
    status = project.get("status") or {}
    stages = status.get("stages") or {}
    ready = _condition(project, "Ready")
    degraded = _condition(project, "Degraded")
    if ready.get("status") != "True":
        message = str(ready.get("message", ""))
    elif degraded.get("status") == "True":
        message = str(degraded.get("message", ""))
    else:
        message = ""
    return ProjectRow(
        namespace=project["metadata"]["namespace"],
        name=project["metadata"]["name"],
        repository=str(spec.get("repository", "")),
        phase=str(status.get("phase") or "Pending"),
        ready=str(ready.get("status", "Unknown")),
        paused=bool(spec.get("paused", False)),
        queued=status.get("queued"),
        in_flight=sum(_int(counts.get("inFlight")) for counts in stages.values()),
        completed=sum(_int(counts.get("completed")) for counts in stages.values()),
        dead_lettered=sum(_int(counts.get("deadLettered")) for counts in stages.values()),
        pools=list(status.get("pools") or []),
        message=message,
    )


def stage_rows(project: Object) -> list[StageRow]:
    stages = (project.get("status") or {}).get("stages") or {}
    return [
        StageRow(
            namespace=project["metadata"]["namespace"],
            project=project["metadata"]["name"],
            stage=stage,
            pending=_int(counts.get("pending")),
            in_flight=_int(counts.get("inFlight")),
            held=_int(counts.get("held")),
            retrying=_int(counts.get("retrying")),
            completed=_int(counts.get("completed")),
            dead_lettered=_int(counts.get("deadLettered")),
        )
        for stage, counts in sorted(stages.items())
    ]


def pool_mode(pool: Object) -> str:
    autoscaling = pool.get("spec", {}).get("autoscaling") or {}
    if autoscaling.get("enabled", True) is False:
        return "pinned"
    if autoscaling.get("paused", False):
        return "paused"
    return "auto"


def pool_row(pool: Object) -> PoolRow:
    spec = pool.get("spec", {})
    status = pool.get("status") or {}
    metrics = status.get("metrics") or {}
    last = status.get("lastScaleTime")
    return PoolRow(
        namespace=pool["metadata"]["namespace"],
        name=pool["metadata"]["name"],
        stage=str(spec.get("stage", "")),
        replicas=status.get("replicas"),
        ready_replicas=status.get("readyReplicas"),
        desired_replicas=status.get("desiredReplicas"),
        min_replicas=_int(spec.get("minReplicas", 1)),
        max_replicas=_int(spec.get("maxReplicas", 5)),
        mode=pool_mode(pool),
        queue=metrics.get("queueDepth"),
        oldest_wait_seconds=metrics.get("oldestWaitSeconds"),
        utilization=metrics.get("utilization"),
        ready=str(_condition(pool, "Ready").get("status", "Unknown")),
        last_scale_reason=status.get("lastScaleReason"),
        last_scale_time=str(last) if last else None,
    )


def worker_row(pod: Object, pool: str, now: datetime, held: Sequence[HeldItem] = ()) -> WorkerRow:
    """A worker Pod, with the items the read API says it holds (`held`: every item in
    flight in its namespace; the worker's are those of its Pod name)."""
    mine = [h for h in held if h.worker == pod["metadata"]["name"]]
    status = pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    started = status.get("startTime") or pod["metadata"].get("creationTimestamp")
    age = None
    if started:
        moment = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
        age = max(0.0, (now - moment.astimezone(UTC)).total_seconds())
    return WorkerRow(
        namespace=pod["metadata"]["namespace"],
        pool=pool,
        name=pod["metadata"]["name"],
        phase=str(status.get("phase", "Unknown")),
        ready=bool(statuses) and all(bool(s.get("ready")) for s in statuses),
        restarts=sum(_int(s.get("restartCount")) for s in statuses),
        age_seconds=age,
        node=pod.get("spec", {}).get("nodeName"),
        deleting=pod["metadata"].get("deletionTimestamp") is not None,
        items=[h.item_id for h in mine],
        heartbeat_age_seconds=min((h.heartbeat_age_seconds for h in mine), default=None),
    )


RowT = TypeVar("RowT", bound=Row)


class Summary(Row):
    """`agentfleet status`: the fleet in a few lines."""

    projects: list[ProjectRow]
    stages: list[StageRow]
    pools: list[PoolRow]
    queued: int
    in_flight: int
    completed: int
    dead_lettered: int
    workers: int
    workers_ready: int
    attention: list[str]
    """What a person should look at: not Ready, paused with work waiting, a pool at its
    maximum with work waiting, a pool without metrics."""
    throughput: list[StageMetricsRow] = []
    """What each Project stage finished in the last hour (the operator's read API)."""
    alerts: list[AlertRow] = []
    """The fleet's firing and pending alerts (the operator's read API)."""
    live_error: str | None = None
    """Why throughput and alerts are missing (the read API could not be reached, or
    the operator has no Prometheus); None when both were read."""


class Listing(BaseModel, Generic[RowT]):
    """What a list command prints with -o json or -o yaml: `{"kind": ..., "items": [...]}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str
    items: list[RowT]


class FleetStatus(Summary):
    """What `status` prints with -o json or -o yaml."""

    kind: str


def summary(projects: Sequence[Object], pools: Sequence[Object]) -> Summary:
    project_rows = [project_row(p) for p in projects]
    pool_rows = [pool_row(p) for p in pools]
    attention: list[str] = []
    for row in project_rows:
        where = f"project {row.namespace}/{row.name}"
        if row.paused and (row.queued or 0) > 0:
            attention.append(f"{where} is paused with {row.queued} item(s) held")
        elif row.ready != "True":
            attention.append(f"{where} is not Ready: {row.message or row.phase}")
    for pool in pool_rows:
        where = f"pool {pool.namespace}/{pool.name}"
        if pool.ready != "True":
            attention.append(f"{where} is not Ready")
        if (
            pool.mode == "auto"
            and pool.replicas is not None
            and pool.replicas >= pool.max_replicas
            and (pool.queue or 0) > 0
        ):
            attention.append(
                f"{where} is at its maximum ({pool.max_replicas}) with {pool.queue} waiting:"
                " raise spec.maxReplicas"
            )
        if pool.mode == "auto" and pool.queue is None:
            attention.append(f"{where} has no queue metrics (MetricsAvailable is not True)")
    return Summary(
        projects=project_rows,
        stages=[row for p in projects for row in stage_rows(p)],
        pools=pool_rows,
        queued=sum(row.queued or 0 for row in project_rows),
        in_flight=sum(row.in_flight for row in project_rows),
        completed=sum(row.completed for row in project_rows),
        dead_lettered=sum(row.dead_lettered for row in project_rows),
        workers=sum(row.replicas or 0 for row in pool_rows),
        workers_ready=sum(row.ready_replicas or 0 for row in pool_rows),
        attention=attention,
    )


class Bottleneck(Row):
    """A stage of a Project whose work waits, why, and what to do about it."""

    namespace: str
    project: str
    stage: str
    waiting: int
    """Pending plus retrying items of the stage."""
    pools: list[str]
    """The pools serving this stage of the Project."""
    cause: str
    suggestion: str
    per_hour: float | None = None
    """Items of the stage finished per hour over the throughput window; None when the
    read API was not asked."""


StageKey = tuple[str, str, str]
"""(namespace, project, stage)."""


def bottlenecks(
    projects: Sequence[Object],
    pools: Sequence[Object],
    finished: Mapping[StageKey, StageMetricsRow] | None = None,
) -> list[Bottleneck]:
    """Each Project stage with work waiting, most waiting first: which pools serve it and
    what limits them (none serves it, the Project is paused, most of its items fail,
    workers run but nothing finished, every pool is at its maximum, pinned or paused, or
    the pools are still starting). `finished`: the read API's throughput per stage, when
    it could be read; without it the rules on failures and stalls are left out."""
    found: list[Bottleneck] = []
    rows = [(pool, pool_row(pool)) for pool in pools]
    for project in projects:
        namespace, name = project["metadata"]["namespace"], project["metadata"]["name"]
        paused = bool(project.get("spec", {}).get("paused", False))
        for stage in stage_rows(project):
            waiting = stage.pending + stage.retrying + stage.held
            if waiting == 0:
                continue
            serving = [
                row
                for pool, row in rows
                if row.namespace == namespace
                and row.stage == stage.stage
                and name in ((pool.get("status") or {}).get("projects") or [])
            ]
            known = finished is not None
            done = finished.get((namespace, name, stage.stage)) if finished else None
            cause, suggestion = _limit(stage.stage, paused, serving, waiting, known, done)
            per_hour = (done.per_hour if done else 0.0) if known else None
            found.append(
                Bottleneck(
                    namespace=namespace,
                    project=name,
                    stage=stage.stage,
                    waiting=waiting,
                    pools=[row.name for row in serving],
                    cause=cause,
                    suggestion=suggestion,
                    per_hour=per_hour,
                )
            )
    return sorted(found, key=lambda b: (-b.waiting, b.namespace, b.project, b.stage))


FAILING_BELOW = 0.5
"""A stage whose success rate is below this, over at least FAILING_MIN_FINISHED items of
the window, is limited by its failures rather than by its workers."""
FAILING_MIN_FINISHED = 4


def _limit(
    stage: str,
    paused: bool,
    serving: Sequence[PoolRow],
    waiting: int,
    throughput_known: bool = False,
    done: StageMetricsRow | None = None,
) -> tuple[str, str]:
    if paused:
        return (
            f"the Project is paused: {waiting} item(s) held",
            "agentfleet resume <project> when the emergency is over",
        )
    if not serving:
        return (
            f"no WorkerPool serves the {stage} stage of this Project",
            f"apply a WorkerPool with stage: {stage} whose projectSelector matches the Project",
        )
    if (
        done is not None
        and done.finished >= FAILING_MIN_FINISHED
        and done.success_rate is not None
        and done.success_rate < FAILING_BELOW
    ):
        return (
            f"most items fail: {done.success_rate:.0%} of {done.finished} succeeded in the last"
            f" {_window(done.window_seconds)} ({done.dead_lettered} dead-lettered)",
            "read the dead letters' errors (agentfleet retry <project> --list), fix the cause,"
            " then agentfleet retry <project>; more workers would fail faster",
        )
    ready = sum(row.ready_replicas or 0 for row in serving)
    if throughput_known and done is None and ready > 0:
        return (
            f"{ready} worker(s) ready, but no {stage} item finished in the throughput window",
            "agentfleet workers: look for stale heartbeats or an item held for long;"
            " agentfleet alerts",
        )
    if all(row.mode == "pinned" for row in serving):
        total = sum(row.replicas or 0 for row in serving)
        return (
            f"the serving pools are pinned at {total} worker(s) (autoscaling off)",
            "agentfleet scale <pool> --auto, or pin more workers",
        )
    if all(row.mode == "paused" for row in serving):
        return (
            "autoscaling of every serving pool is paused",
            "set spec.autoscaling.paused: false",
        )
    at_max = [
        row for row in serving if row.replicas is not None and row.replicas >= row.max_replicas
    ]
    if len(at_max) == len(serving):
        top = ", ".join(f"{row.name} ({row.max_replicas})" for row in at_max)
        return (f"every serving pool is at its maximum: {top}", "raise spec.maxReplicas")
    starting = [
        row
        for row in serving
        if (row.ready_replicas or 0) < (row.desired_replicas or row.replicas or 0)
    ]
    if starting:
        return (
            "the serving pools are adding workers that are not ready yet",
            "wait, or agentfleet workers to see why Pods do not start",
        )
    return ("the serving pools are below their maximum", "none: the autoscaler is adding workers")


def _window(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds / 60:g}m"
