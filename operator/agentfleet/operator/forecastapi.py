"""`GET /v1/namespaces/{ns}/forecast`: what the drain forecast of `agentfleet forecast`
starts from, per WorkerPool of the namespace and per Project it serves: the items queued
and in progress in the lanes the pool reads, the arrival rate and the pool's mean service
time over a window, its current and maximum replicas (`ForecastObservations`).

The rates come from Prometheus when the operator has a URL that answers (the queue
exporter's `agentfleet_queue_enqueued_total`, the workers'
`agentfleet_worker_processing_seconds`), else from the queue's completion log over the
window: the finished items stand for the arrivals (true when the queue is in a steady
state), and the gaps between one worker's consecutive completions for the service time
(an upper bound: a worker's idle time between items counts in). The answer says which.
Arrivals are counted per quarter hour and made a rate with a burst damped
(`agentfleet.operator.autoscaler.rates`, as the autoscaler's prediction and the
simulator's replay do): a burst already queued is not extrapolated into the future.

The command runs the simulator's engine on these observations (`agentfleet.simulator.live`):
the import contracts keep the simulator out of the operator, and its seeded runs would
hold up the operator's event loop. The builders here are pure; the router gathers.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import APIRouter, Query

from agentfleet.core.api.base import Stage
from agentfleet.core.fleetapi import API_PREFIX, DEFAULT_WINDOW_SECONDS
from agentfleet.core.forecastapi import (
    ForecastObservations,
    PoolObservation,
    ProjectObservation,
    RateSource,
)
from agentfleet.core.queue import InFlight, NamespaceSnapshot
from agentfleet.core.queue.models import GENERAL_SPECIALTY
from agentfleet.operator.autoscaler.rates import buckets, regular_rate
from agentfleet.operator.index import PoolEntry
from agentfleet.operator.readapi import PROMETHEUS_TIMEOUT_SECONDS, ReadApi

ArrivalKey = tuple[str, Stage, str | None]
"""(project, stage, specialty); specialty None: every specialty of the stage (the
completion log does not record it)."""
Arrivals = Mapping[ArrivalKey, Sequence[float]]
"""Items arrived per bucket of the window, oldest first, per `ArrivalKey`."""
Service = tuple[float, int]
"""Mean seconds per item and how many items it is the mean of."""


# --------------------------------------------------------------- pure builders


def bucketing(window_seconds: float) -> tuple[int, float]:
    """How many buckets the window is counted in (quarter hours, at least one), and their
    width."""
    count = buckets(window_seconds)
    return count, window_seconds / count


def arrivals_query(namespace: str, bucket_seconds: float) -> str:
    """New items per queue per bucket: a range query stepping one bucket, each point
    counting the bucket before it."""
    return (
        "sum by (project, stage, specialty) (increase(agentfleet_queue_enqueued_total"
        f'{{namespace="{namespace}"}}[{bucket_seconds:g}s]))'
    )


def service_queries(namespace: str, window_seconds: float) -> tuple[str, str]:
    """Processing seconds and items finished per pool over the window."""

    def query(part: str) -> str:
        return (
            f"sum by (pool) (increase(agentfleet_worker_processing_seconds_{part}"
            f'{{namespace="{namespace}"}}[{window_seconds:g}s]))'
        )

    return query("sum"), query("count")


def _vector(payload: Mapping[str, Any]) -> list[tuple[dict[str, str], float]]:
    """An instant vector's (labels, value) rows; NaN and malformed rows left out."""
    if payload.get("status") != "success":
        raise ValueError(f"{payload.get('errorType', 'error')}: {payload.get('error', payload)}")
    rows = []
    for row in (payload.get("data") or {}).get("result") or []:
        try:
            value = float(row["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if not math.isnan(value):
            rows.append(({str(k): str(v) for k, v in (row.get("metric") or {}).items()}, value))
    return rows


def _stage(value: str) -> Stage | None:
    return next((s for s in Stage if s.value == value), None)


def arrivals_from_prometheus(
    payload: Mapping[str, Any], end: float, window_seconds: float
) -> dict[ArrivalKey, list[float]]:
    """`arrivals_query`'s range answer ending at `end` (epoch seconds): per (project,
    stage, specialty) the items of each bucket, oldest first; a bucket without a point
    (the series did not exist yet) counts none."""
    if payload.get("status") != "success":
        raise ValueError(f"{payload.get('errorType', 'error')}: {payload.get('error', payload)}")
    count, width = bucketing(window_seconds)
    found: dict[ArrivalKey, list[float]] = {}
    for row in (payload.get("data") or {}).get("result") or []:
        labels = {str(k): str(v) for k, v in (row.get("metric") or {}).items()}
        stage = _stage(labels.get("stage", ""))
        if stage is None or not labels.get("project"):
            continue
        key = (labels["project"], stage, labels.get("specialty") or GENERAL_SPECIALTY)
        counts = found.setdefault(key, [0.0] * count)
        for at, raw in row.get("values") or []:
            back = round((end - float(at)) / width)  # 0: the latest bucket
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            if 0 <= back < count and math.isfinite(value):
                counts[count - 1 - back] += max(value, 0.0)
    return found


def service_from_prometheus(
    seconds: Mapping[str, Any], counts: Mapping[str, Any]
) -> dict[str, Service]:
    """`service_queries`' answers: pool -> (mean seconds, items); pools that finished no
    item in the window left out."""
    totals = {labels.get("pool", ""): value for labels, value in _vector(seconds)}
    found: dict[str, Service] = {}
    for labels, count in _vector(counts):
        pool = labels.get("pool", "")
        if pool in totals and count >= 0.5:
            found[pool] = (totals[pool] / count, round(count))
    return found


def arrivals_from_log(
    events: Iterable[Mapping[str, str]], end_ms: float, window_seconds: float
) -> dict[ArrivalKey, list[float]]:
    """Items finished per bucket of the window ending at `end_ms` (epoch milliseconds),
    per (project, stage): the arrivals of a queue in a steady state (what goes out came
    in)."""
    count, width = bucketing(window_seconds)
    found: dict[ArrivalKey, list[float]] = {}
    for event in events:
        stage = _stage(event.get("stage", ""))
        at = event.get("at")
        if stage is None or not event.get("project") or not at:
            continue
        back = int(max(0.0, end_ms - int(at)) / 1000 // width)  # 0: the latest bucket
        if back < count:
            found.setdefault((event["project"], stage, None), [0.0] * count)[count - 1 - back] += 1
    return found


def _pool_of(worker: str, pools: Sequence[str]) -> str | None:
    """The pool a worker Pod belongs to (`<pool>-<hash>-<id>`): the longest name that
    prefixes it."""
    matches = [p for p in pools if worker.startswith(f"{p}-")]
    return max(matches, key=len) if matches else None


def service_from_log(
    events: Iterable[Mapping[str, str]], pools: Sequence[str]
) -> dict[str, Service]:
    """Per pool, the mean gap between one worker's consecutive completions: each is an
    item's processing time plus whatever the worker waited for it (an upper bound)."""
    times: dict[str, list[int]] = defaultdict(list)
    for event in events:
        worker = event.get("worker", "")
        at = event.get("at")
        if worker and at:
            times[worker].append(int(at))
    gaps: dict[str, list[float]] = defaultdict(list)
    for worker, stamps in times.items():
        pool = _pool_of(worker, pools)
        if pool is None:
            continue
        stamps.sort()
        gaps[pool] += [(b - a) / 1000 for a, b in itertools.pairwise(stamps) if b > a]
    return {pool: (sum(found) / len(found), len(found)) for pool, found in gaps.items() if found}


def working(held: Sequence[InFlight], now: datetime, heartbeat_timeout: float) -> list[InFlight]:
    """The items a live worker holds: one whose claim was not renewed within the heartbeat
    timeout is waiting again (the queue's snapshot counts it with the waiting ones)."""
    return [h for h in held if (now - h.heartbeat_at).total_seconds() <= heartbeat_timeout]


def pool_observation(
    pool: PoolEntry,
    snapshot: NamespaceSnapshot,
    held: Sequence[InFlight],
    arrivals: Arrivals,
    bucket_seconds: float,
    service: Service | None,
) -> PoolObservation:
    """What the forecast needs of one pool: per Project it serves (its `project`, else
        every Project with a lane, an item or arrivals in the pool's stage) the items queued
        and in progress in the lanes it reads, and the arrival rate (its lanes' buckets added
    up, a burst damped: `regular_rate`); the pool's replicas."""
    spec = pool.spec
    replicas = pool.status.replicas or 0
    if spec is None:
        return PoolObservation(
            pool=pool.name, stage=None, replicas=replicas, max_replicas=replicas, pinned=True,
            poll_seconds=15.0, service_seconds=None, service_samples=0, projects=[],
        )  # fmt: skip
    reads = {*spec.specialties, GENERAL_SPECIALTY}

    def mine(project: str, stage: Stage, specialty: str | None) -> bool:
        return (
            stage == spec.stage
            and (specialty is None or specialty in reads)
            and (spec.project is None or project == spec.project)
        )

    queued: dict[str, int] = defaultdict(int)
    busy: dict[str, int] = defaultdict(int)
    counts: dict[str, list[float]] = {}
    for lane in snapshot.lanes:
        if mine(lane.project, lane.stage, lane.specialty):
            queued[lane.project] += lane.waiting
    for item in held:
        if mine(item.project, item.stage, item.specialty):
            busy[item.project] += 1
    for (project, stage, specialty), found in arrivals.items():
        if mine(project, stage, specialty):
            total = counts.setdefault(project, [0.0] * len(found))
            for i, value in enumerate(found):
                total[i] += value
    pinned = not spec.autoscaling.enabled or pool.paused_replicas is not None
    return PoolObservation(
        pool=pool.name,
        stage=spec.stage,
        replicas=replicas,
        max_replicas=replicas if pinned else max(spec.max_replicas, replicas),
        pinned=pinned,
        poll_seconds=float(spec.autoscaling.poll_interval_seconds),
        service_seconds=None if service is None else round(service[0], 3),
        service_samples=0 if service is None else service[1],
        projects=[
            ProjectObservation(
                project=project,
                queued=queued[project],
                in_progress=busy[project],
                held=project in snapshot.held_projects,
                arrival_rate=(
                    round(regular_rate(counts[project], bucket_seconds), 9)
                    if counts.get(project)
                    else 0.0
                ),
            )
            for project in sorted(set(queued) | set(busy) | set(counts))
        ],
    )


def observations(
    *,
    namespace: str,
    now: datetime,
    window_seconds: float,
    pools: Iterable[PoolEntry],
    snapshot: NamespaceSnapshot,
    held: Sequence[InFlight],
    arrivals: Arrivals,
    service: Mapping[str, Service],
    source: RateSource,
    source_note: str,
) -> ForecastObservations:
    return ForecastObservations(
        namespace=namespace,
        generated_at=now,
        window_seconds=window_seconds,
        source=source,
        source_note=source_note,
        pools=[
            pool_observation(
                p, snapshot, held, arrivals, bucketing(window_seconds)[1], service.get(p.name)
            )
            for p in sorted(pools, key=lambda p: p.name)
        ],
    )


# -------------------------------------------------------------------- serving


async def _prometheus(
    url: str, namespace: str, end: float, window_seconds: float
) -> tuple[dict[ArrivalKey, list[float]], dict[str, Service]]:
    _, width = bucketing(window_seconds)
    base = url.rstrip("/")
    async with httpx.AsyncClient(timeout=PROMETHEUS_TIMEOUT_SECONDS) as client:
        response = await client.get(
            f"{base}/api/v1/query_range",
            params={
                "query": arrivals_query(namespace, width),
                "start": f"{end - window_seconds + width:.3f}",
                "end": f"{end:.3f}",
                "step": f"{width:g}",
            },
        )
        response.raise_for_status()
        arrivals = arrivals_from_prometheus(response.json(), end, window_seconds)
        answers = []
        for query in service_queries(namespace, window_seconds):
            response = await client.get(f"{base}/api/v1/query", params={"query": query})
            response.raise_for_status()
            answers.append(response.json())
    return arrivals, service_from_prometheus(answers[0], answers[1])


def forecast_router(api: ReadApi, pools: Callable[[str], Sequence[PoolEntry]]) -> APIRouter:
    """`pools`: the namespace's WorkerPools, from the operator's index."""
    router = APIRouter()

    @router.get(f"{API_PREFIX}/namespaces/{{namespace}}/forecast")
    async def forecast(
        namespace: str,
        window_seconds: float = Query(
            DEFAULT_WINDOW_SECONDS, alias="windowSeconds", gt=0, le=30 * 86400
        ),
    ) -> dict[str, object]:
        api.served(namespace)
        queue = api.queue()
        now = queue.clock()
        entries = list(pools(namespace))
        snapshot = await queue.snapshot(namespace)
        held = working(await queue.in_flight(namespace), now, queue.heartbeat_timeout)
        url = api.config.prometheus_url
        source: RateSource = "completionLog"
        note = "the operator has no Prometheus URL"
        if url is not None:
            try:
                arrivals, service = await _prometheus(url, namespace, time.time(), window_seconds)
                source = "prometheus"
                note = (
                    "arrivals: agentfleet_queue_enqueued_total per quarter hour; service time: "
                    "agentfleet_worker_processing_seconds sum/count"
                )
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                note = f"Prometheus at {url} did not answer ({exc})"
        if source == "completionLog":
            events = await queue.completions_since(
                namespace, now - timedelta(seconds=window_seconds)
            )
            arrivals = arrivals_from_log(events, now.timestamp() * 1000, window_seconds)
            service = service_from_log(events, [p.name for p in entries])
            note += (
                "; from the completion log: arrivals = items finished (steady state), "
                "service time = gaps between a worker's completions (an upper bound)"
            )
        return observations(
            namespace=namespace, now=now, window_seconds=window_seconds, pools=entries,
            snapshot=snapshot, held=held, arrivals=arrivals, service=service, source=source,
            source_note=note,
        ).wire()  # fmt: skip

    return router
