"""The live status page, served by the read API next to the data the CLI reads, and
reached the same way (the API server's service proxy, a port-forward, or an Ingress the
user adds): `/v1/namespaces/<ns>/status`.

One self-contained HTML file (`status.html`: no script, style or font from elsewhere, so
it works air-gapped) that renders `StatusSnapshot`s and updates itself from a stream of
them (server-sent events on `.../status/events`, a new one within a second of a change);
`.../status/snapshot` is the same snapshot once, for scripts and for a page whose proxy
does not stream. Read-only, no secrets: the snapshot is built from the read API's own
reports, the operator's WorkerPool index and the autoscaler's recent decisions.

`build_snapshot` is pure; the router only gathers and hands over.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from agentfleet.core.api.base import Stage
from agentfleet.core.fleetapi import (
    API_PREFIX,
    Alert,
    AlertReport,
    InFlightReport,
    QueueReport,
    ThroughputReport,
    WireModel,
)
from agentfleet.operator.index import PoolEntry
from agentfleet.operator.logic import ScalingRecord
from agentfleet.operator.readapi import (
    PROMETHEUS_TIMEOUT_SECONDS,
    ReadApi,
    Refused,
    in_flight_report,
    queue_report,
    throughput_report,
)

STREAM_INTERVAL_SECONDS = 0.5
"""How often the stream looks for a change (the page shows one within a second)."""
KEEPALIVE_SECONDS = 15.0
"""A comment line on a quiet stream, so proxies keep it open."""
SLOW_PARTS_SECONDS = 10.0
"""Alerts and processing times come from Prometheus: read at most this often."""
COMPLETIONS_SECONDS = 5.0
"""What finished today and in the last hour comes from the queue's completion log, read
(a day of it) at most this often per namespace, however many pages stream it."""
TIMELINE_LENGTH = 30


# ------------------------------------------------------------------ the snapshot


class StageStatus(WireModel):
    """One pipeline stage of the namespace, all projects together."""

    stage: Stage
    waiting: int
    active_workers: int
    """Items being worked on now (one worker each)."""
    retrying: int
    oldest_wait_seconds: float | None
    completed_today: int
    """Finished since midnight UTC, succeeded or dead-lettered."""
    succeeded_today: int
    success_rate_today: float | None
    per_hour: float
    """Finished over the last hour."""
    average_seconds: float | None
    """Mean processing time of an item over the last hour (Prometheus), None unknown."""
    pipeline_seconds: float | None = None
    """Mean time from the work entering the pipeline to its success in this stage over the
    last hour (the completion log; at the last stage, the pipeline time), None unknown."""


class PoolStatusRow(WireModel):
    name: str
    stage: Stage | None
    replicas: int
    ready: int
    desired: int | None
    min_replicas: int | None
    max_replicas: int | None
    queue_depth: float | None
    """What the autoscaler last read for the pool."""
    last_scale_reason: str | None
    last_scale_time: datetime | None


class ScalingStep(WireModel):
    time: datetime
    pool: str
    from_replicas: int
    to_replicas: int
    reason: str
    queue_depth: float | None


class StatusSnapshot(WireModel):
    namespace: str
    generated_at: datetime
    stages: list[StageStatus]
    pools: list[PoolStatusRow]
    scaling: list[ScalingStep]
    """The autoscaler's latest replica changes in the namespace, newest first."""
    alerts: list[Alert]
    """Firing and pending alerts of the namespace and fleet-wide ones."""
    prometheus: bool
    """Whether the operator reads Prometheus (alerts and processing times)."""


def build_snapshot(
    *,
    namespace: str,
    now: datetime,
    queues: QueueReport,
    held: InFlightReport,
    today: ThroughputReport,
    last_hour: ThroughputReport,
    pools: Iterable[PoolEntry],
    scaling: Iterable[ScalingRecord],
    alerts: AlertReport,
    processing_seconds: Mapping[Stage, float],
) -> StatusSnapshot:
    """The page's data: per stage the queue, active workers, what finished today and in
    the last hour; the pools; the namespace's latest scaling decisions; alerts."""
    order = list(Stage)
    waiting: dict[Stage, int] = {}
    retrying: dict[Stage, int] = {}
    oldest: dict[Stage, float] = {}
    for lane in queues.lanes:
        waiting[lane.stage] = waiting.get(lane.stage, 0) + lane.waiting
        retrying[lane.stage] = retrying.get(lane.stage, 0) + lane.retrying
        if lane.oldest_wait_seconds is not None:
            oldest[lane.stage] = max(oldest.get(lane.stage, 0.0), lane.oldest_wait_seconds)
    active: dict[Stage, int] = {}
    for item in held.items:
        active[item.stage] = active.get(item.stage, 0) + 1
    finished: dict[Stage, list[int]] = {}
    for row in today.stages:
        counts = finished.setdefault(row.stage, [0, 0])
        counts[0] += row.finished
        counts[1] += row.succeeded
    hourly: dict[Stage, float] = {}
    pipeline: dict[Stage, list[float]] = {}  # [sum of seconds, successes] over projects
    for row in last_hour.stages:
        hourly[row.stage] = hourly.get(row.stage, 0.0) + row.per_hour
        if row.pipeline_seconds is not None and row.succeeded:
            total = pipeline.setdefault(row.stage, [0.0, 0.0])
            total[0] += row.pipeline_seconds * row.succeeded
            total[1] += row.succeeded
    entries = sorted(pools, key=lambda p: p.name)
    served = {p.spec.stage for p in entries if p.spec is not None}
    seen = set(waiting) | set(active) | set(finished) | set(hourly) | served
    stages = []
    for stage in sorted(seen, key=order.index):
        done, succeeded = finished.get(stage, [0, 0])
        stages.append(
            StageStatus(
                stage=stage,
                waiting=waiting.get(stage, 0),
                active_workers=active.get(stage, 0),
                retrying=retrying.get(stage, 0),
                oldest_wait_seconds=oldest.get(stage),
                completed_today=done,
                succeeded_today=succeeded,
                success_rate_today=round(succeeded / done, 4) if done else None,
                per_hour=round(hourly.get(stage, 0.0), 3),
                average_seconds=(
                    round(processing_seconds[stage], 1) if stage in processing_seconds else None
                ),
                pipeline_seconds=(
                    round(pipeline[stage][0] / pipeline[stage][1], 1) if stage in pipeline else None
                ),
            )
        )
    rows = [
        PoolStatusRow(
            name=p.name,
            stage=None if p.spec is None else p.spec.stage,
            replicas=p.status.replicas or 0,
            ready=p.status.ready_replicas or 0,
            desired=p.status.desired_replicas,
            min_replicas=None if p.spec is None else p.spec.min_replicas,
            max_replicas=None if p.spec is None else p.spec.max_replicas,
            queue_depth=None if p.status.metrics is None else p.status.metrics.queue_depth,
            last_scale_reason=p.status.last_scale_reason,
            last_scale_time=p.status.last_scale_time,
        )
        for p in entries
    ]
    steps = [
        ScalingStep(
            time=r.time,
            pool=r.pool,
            from_replicas=r.from_replicas,
            to_replicas=r.to_replicas,
            reason=r.reason,
            queue_depth=r.queue_depth,
        )
        for r in scaling
        if r.namespace == namespace
    ]
    return StatusSnapshot(
        namespace=namespace,
        generated_at=now,
        stages=stages,
        pools=rows,
        scaling=steps[::-1][:TIMELINE_LENGTH],
        alerts=[a for a in alerts.alerts if a.state in ("firing", "pending")],
        prometheus=alerts.prometheus,
    )


def processing_query(namespace: str) -> str:
    """Mean processing time per stage over the last hour, from the workers' histogram."""
    selector = f'{{namespace="{namespace}"}}'
    return (
        f"sum by (stage) (rate(agentfleet_worker_processing_seconds_sum{selector}[1h]))"
        f" / sum by (stage) (rate(agentfleet_worker_processing_seconds_count{selector}[1h]))"
    )


def processing_from_prometheus(payload: Mapping[str, Any]) -> dict[Stage, float]:
    """`processing_query`'s answer: stage -> seconds (NaN and unknown stages left out)."""
    found: dict[Stage, float] = {}
    stages = {s.value: s for s in Stage}
    for row in (payload.get("data") or {}).get("result") or []:
        stage = stages.get(str((row.get("metric") or {}).get("stage", "")))
        try:
            value = float(row["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if stage is not None and not math.isnan(value):  # NaN: no item finished
            found[stage] = value
    return found


# -------------------------------------------------------------------- serving


@dataclass
class _Slow:
    """The parts of a namespace's snapshot that are read less often than the queue, with
    when they were read: Prometheus' and the completion log's."""

    read_at: float = 0.0
    alerts: AlertReport = field(default_factory=lambda: AlertReport(prometheus=False, alerts=[]))
    processing: dict[Stage, float] = field(default_factory=dict)
    finished_at: float = 0.0
    today: ThroughputReport | None = None
    last_hour: ThroughputReport | None = None


@dataclass
class StatusPage:
    api: ReadApi
    pools: Callable[[str], Sequence[PoolEntry]]
    """The namespace's WorkerPools, from the operator's index."""
    _slow: dict[str, _Slow] = field(default_factory=dict)

    async def _prometheus_parts(self, namespace: str) -> _Slow:
        slow = self._slow.setdefault(namespace, _Slow())
        if time.monotonic() - slow.read_at < SLOW_PARTS_SECONDS and slow.read_at:
            return slow
        slow.read_at = time.monotonic()
        try:
            slow.alerts = await self.api.alerts(namespace)
        except Refused:
            slow.alerts = AlertReport(prometheus=True, alerts=[])
        url = self.api.config.prometheus_url
        if url is not None:
            try:
                async with httpx.AsyncClient(timeout=PROMETHEUS_TIMEOUT_SECONDS) as client:
                    response = await client.get(
                        f"{url.rstrip('/')}/api/v1/query",
                        params={"query": processing_query(namespace)},
                    )
                    response.raise_for_status()
                    slow.processing = processing_from_prometheus(response.json())
            except (httpx.HTTPError, ValueError):
                slow.processing = {}
        return slow

    async def _finished(
        self, namespace: str, now: datetime
    ) -> tuple[ThroughputReport, ThroughputReport]:
        """What finished since 00:00 UTC and in the last hour (the completion log)."""
        slow = self._slow.setdefault(namespace, _Slow())
        if (
            slow.today is None
            or slow.last_hour is None
            or time.monotonic() - slow.finished_at >= COMPLETIONS_SECONDS
        ):
            midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            hour_ago = now - timedelta(hours=1)
            events = await self.api.queue().completions_since(namespace, min(midnight, hour_ago))
            today_ms, hour_ago_ms = midnight.timestamp() * 1000, hour_ago.timestamp() * 1000
            slow.today = throughput_report(
                namespace, [e for e in events if _at_ms(e) >= today_ms], 86400.0
            )
            slow.last_hour = throughput_report(
                namespace, [e for e in events if _at_ms(e) >= hour_ago_ms], 3600.0
            )
            slow.finished_at = time.monotonic()
        return slow.today, slow.last_hour

    async def snapshot(self, namespace: str) -> StatusSnapshot:
        self.api.served(namespace)
        queue = self.api.queue()
        now = queue.clock()
        queues_now = await queue.snapshot(namespace)
        held = await queue.in_flight(namespace)
        today, last_hour = await self._finished(namespace, now)
        slow = await self._prometheus_parts(namespace)
        return build_snapshot(
            namespace=namespace,
            now=now,
            queues=queue_report(queues_now, now),
            held=in_flight_report(namespace, held, now, queue.heartbeat_timeout),
            today=today,
            last_hour=last_hour,
            pools=self.pools(namespace),
            scaling=list(self.api.context.scaling_log),
            alerts=slow.alerts,
            processing_seconds=slow.processing,
        )

    async def stream(self, namespace: str, request: Request) -> AsyncIterator[str]:
        """Server-sent events: a snapshot at once, then each one that differs (its time
        aside), a keep-alive comment on a quiet stream."""
        last = ""
        quiet_since = time.monotonic()
        while not await request.is_disconnected():
            try:
                snapshot = (await self.snapshot(namespace)).wire()
            except Refused as exc:
                yield f"event: problem\ndata: {json.dumps({'error': exc.message})}\n\n"
                await asyncio.sleep(5)
                continue
            compared = json.dumps({**snapshot, "generatedAt": None}, sort_keys=True)
            if compared != last:
                last = compared
                quiet_since = time.monotonic()
                yield f"data: {json.dumps(snapshot)}\n\n"
            elif time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
            await asyncio.sleep(STREAM_INTERVAL_SECONDS)


def _at_ms(event: Mapping[str, str]) -> int:
    return int(event.get("at") or "0")


def page_html() -> str:
    return resources.files("agentfleet.operator").joinpath("status.html").read_text("utf-8")


def status_router(page: StatusPage) -> APIRouter:
    router = APIRouter()
    path = f"{API_PREFIX}/namespaces/{{namespace}}/status"

    @router.get(path, response_class=HTMLResponse)
    async def status_html(namespace: str) -> HTMLResponse:
        page.api.served(namespace)
        return HTMLResponse(page_html(), headers={"Cache-Control": "no-store"})

    @router.get(f"{path}/snapshot")
    async def status_snapshot(namespace: str) -> dict[str, object]:
        return (await page.snapshot(namespace)).wire()

    @router.get(f"{path}/events")
    async def status_events(namespace: str, request: Request) -> StreamingResponse:
        page.api.served(namespace)
        page.api.queue()
        return StreamingResponse(
            page.stream(namespace, request),
            media_type="text/event-stream",
            # No buffering on the way: nginx (an Ingress) honours X-Accel-Buffering.
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router
