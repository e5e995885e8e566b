"""Pool signals from the Prometheus HTTP API.

Batched: each poll runs ONE instant query per signal for every pool together, grouped by
the labels that identify a queue (or a pool's workers), and matches the series to pools
in Python. 1,000 pools therefore cost a fixed number of queries (three for the threshold
signals, five more for the optional ones with default policies: one per distinct
prediction window or period), plus one per PromQL override a pool declares. Utilization
is the pool's busy workers divided by its current replicas.

Anything that goes wrong with a threshold signal (connection refused, timeout, HTTP or
PromQL error, no series for a pool, NaN) makes it unavailable with the reason, never
zero: the decision core then refuses to scale down. The optional signals (service time,
arrival rates, the model API's 429 share and headroom) are simply absent then: "no
information", and the rules that use them fall back to the plain thresholds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from agentfleet.core.queue.models import GENERAL_SPECIALTY
from agentfleet.operator.autoscaler.decision import THROTTLED_WINDOW_SECONDS, Signals
from agentfleet.operator.autoscaler.pools import PoolKey, PoolTarget
from agentfleet.operator.autoscaler.rates import buckets, regular_rate

log = logging.getLogger(__name__)

QUEUE_DEPTH_QUERY = "sum by (namespace, project, stage, specialty) (agentfleet_queue_depth)"
OLDEST_WAIT_QUERY = (
    "max by (namespace, project, stage, specialty) (agentfleet_queue_oldest_wait_seconds)"
)
BUSY_WORKERS_QUERY = "sum by (namespace, pool) (agentfleet_worker_busy)"

RESPONSES = "agentfleet_agent_model_responses_total"
THROTTLED_WINDOW = f"{THROTTLED_WINDOW_SECONDS // 60}m"
THROTTLED_QUERY = (
    f'(sum by (namespace, pool) (rate({RESPONSES}{{status=~"rate_limited|overloaded"}}'
    f"[{THROTTLED_WINDOW}]))"
    f" or sum by (namespace, pool) (rate({RESPONSES}[{THROTTLED_WINDOW}])) * 0)"
    f" / sum by (namespace, pool) (rate({RESPONSES}[{THROTTLED_WINDOW}]))"
)
"""Share of each pool's model calls answered 429 or 529 over two minutes (0 when calls were
made and none was throttled; no series, or NaN, when no call was made: no information)."""
HEADROOM_QUERY = "min by (namespace, pool) (agentfleet_agent_ratelimit_headroom)"


def service_query(window_seconds: int) -> str:
    """Mean processing seconds per item of each pool's workers over the window."""
    return (
        f"sum by (namespace, pool) (rate(agentfleet_worker_processing_seconds_sum"
        f"[{window_seconds}s])) / sum by (namespace, pool)"
        f" (rate(agentfleet_worker_processing_seconds_count[{window_seconds}s]))"
    )


def arrivals_query(bucket_seconds: float) -> str:
    """New items per queue per bucket (a quarter hour); run as a range query stepping one
    bucket, each point counts the bucket before it (`agentfleet.operator.autoscaler.rates`)."""
    return (
        "sum by (namespace, project, stage, specialty)"
        f" (increase(agentfleet_queue_enqueued_total[{bucket_seconds:g}s]))"
    )


class MetricsError(Exception):
    """A query could not be answered; the message says why, for the pool's condition."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]
    """(timestamp, value), oldest first."""


@dataclass
class _Observed:
    """One signal per pool while a poll is assembled; None until found."""

    values: dict[PoolKey, float | None] = field(default_factory=dict)
    errors: dict[PoolKey, str] = field(default_factory=dict)


def _value(raw: Any) -> float:
    """A sample value as a float ("NaN" and "+Inf" come back as strings)."""
    return float(raw[1])


def _parse_result(body: dict[str, Any]) -> list[Sample]:
    if body.get("status") != "success":
        raise MetricsError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
    data = body["data"]
    if data["resultType"] == "scalar":
        return [Sample({}, _value(data["result"]))]
    if data["resultType"] != "vector":
        raise MetricsError(f"expected an instant vector, got a {data['resultType']}")
    return [Sample(dict(row["metric"]), _value(row["value"])) for row in data["result"]]


class PrometheusSource:
    """Reads queue depth, oldest wait and utilization for many pools from Prometheus."""

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 5.0,
        max_concurrent_overrides: int = 8,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self._clock = clock
        self.timeout_seconds = timeout_seconds
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self._owns_client = client is None
        self._override_slots = asyncio.Semaphore(max_concurrent_overrides)
        self.queries_sent = 0
        """Queries issued so far; the batching is visible (and tested) through it."""

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def query(self, promql: str) -> list[Sample]:
        """An instant query; raises MetricsError with a readable reason on any failure."""
        body = await self._post("query", {"query": promql})
        return _parse_result(body)

    async def query_range(self, promql: str, start: float, end: float, step: float) -> list[Series]:
        """A range query; raises MetricsError with a readable reason on any failure."""
        body = await self._post(
            "query_range",
            {"query": promql, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"},
        )
        if body.get("status") != "success":
            raise MetricsError(f"{body.get('errorType', 'error')}: {body.get('error', body)}")
        data = body["data"]
        if data["resultType"] != "matrix":
            raise MetricsError(f"expected a range vector, got a {data['resultType']}")
        return [
            Series(dict(row["metric"]), [(float(t), float(v)) for t, v in row.get("values", [])])
            for row in data["result"]
        ]

    async def _post(self, endpoint: str, form: dict[str, str]) -> dict[str, Any]:
        self.queries_sent += 1
        try:
            response = await self._client.post(
                f"{self.url}/api/v1/{endpoint}",
                # Prometheus durations take no decimals ("5.0s" is a bad_data error).
                data={**form, "timeout": f"{self.timeout_seconds * 1000:.0f}ms"},
                timeout=self.timeout_seconds,
            )
        except httpx.TimeoutException as exc:
            raise MetricsError(
                f"Prometheus timed out after {self.timeout_seconds:g}s ({type(exc).__name__})"
            ) from exc
        except httpx.HTTPError as exc:
            raise MetricsError(f"Prometheus unreachable at {self.url}: {exc}") from exc
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise MetricsError(
                f"Prometheus answered HTTP {response.status_code} without JSON"
            ) from exc
        return body

    async def fetch(self, pools: Sequence[PoolTarget]) -> dict[PoolKey, Signals]:
        """Signals for every pool, from three batched queries and any per-pool overrides."""
        if not pools:
            return {}
        queue_depth, oldest_wait, utilization, optional = await asyncio.gather(
            self._queue_signal(
                pools, "queue_depth", QUEUE_DEPTH_QUERY, "agentfleet_queue_depth", sum
            ),
            self._queue_signal(
                pools,
                "oldest_wait_seconds",
                OLDEST_WAIT_QUERY,
                "agentfleet_queue_oldest_wait_seconds",
                max,
            ),
            self._utilization(pools),
            self._optional(pools),
        )
        signals = {}
        for pool in pools:
            key = pool.key
            errors = [
                observed.errors[key]
                for observed in (queue_depth, oldest_wait, utilization)
                if key in observed.errors
            ]
            signals[key] = Signals(
                queue_depth=queue_depth.values.get(key),
                oldest_wait_seconds=oldest_wait.values.get(key),
                utilization=utilization.values.get(key),
                error="; ".join(errors) or None,
                **optional.get(key, {}),
            )
        return signals

    async def _optional(self, pools: Sequence[PoolTarget]) -> dict[PoolKey, dict[str, float]]:
        """The signals that refine a decision, for the pools whose policy uses them, in one
        query per signal (and per distinct window); absent wherever Prometheus has no
        number for a pool."""
        found: dict[PoolKey, dict[str, float]] = defaultdict(dict)
        jobs: list[Awaitable[None]] = []

        def per_pool(
            promql: str, signal: str, wanted: Sequence[PoolTarget], share: bool = False
        ) -> None:
            async def run() -> None:
                rows = await self._batched(promql)
                if isinstance(rows, str):
                    return
                values = {
                    (r.labels.get("namespace", ""), r.labels.get("pool", "")): r.value for r in rows
                }
                for pool in wanted:
                    value = values.get(pool.key)
                    if value is not None and _finite(value):
                        value = max(0.0, value)
                        found[pool.key][signal] = min(1.0, value) if share else value

            if wanted:
                jobs.append(run())

        def per_queue(signal: str, end: float, span: float, wanted: Sequence[PoolTarget]) -> None:
            """Each pool's regular arrival rate over (end - span, end]."""
            count = buckets(span)
            width = span / count

            async def run() -> None:
                try:
                    rows = await self.query_range(
                        arrivals_query(width), end - span + width, end, width
                    )
                except MetricsError as exc:
                    log.warning("arrivals range query failed: %s", exc)
                    return
                index: dict[tuple[str, str, str], list[Series]] = defaultdict(list)
                for row in rows:
                    labels = row.labels
                    index[
                        (
                            labels.get("namespace", ""),
                            labels.get("stage", ""),
                            labels.get("specialty", ""),
                        )
                    ].append(row)
                for pool in wanted:
                    if pool.projects == ():
                        found[pool.key][signal] = 0.0
                        continue
                    per_time: dict[int, float] = defaultdict(float)
                    for specialty in {*pool.specialties, GENERAL_SPECIALTY}:
                        for series in index.get((pool.namespace, pool.stage.value, specialty), []):
                            if not pool.serves_project(series.labels.get("project", "")):
                                continue
                            for at, value in series.points:
                                if _finite(value):
                                    per_time[round(at)] += max(0.0, value)
                    # A whole window observed, or no information.
                    if len(per_time) >= count:
                        counts = [per_time[at] for at in sorted(per_time)]
                        found[pool.key][signal] = regular_rate(counts, width)

            if wanted:
                jobs.append(run())

        limited = [p for p in pools if p.autoscaling.rate_limit.enabled]
        per_pool(THROTTLED_QUERY, "throttled_fraction", limited, share=True)
        per_pool(
            HEADROOM_QUERY,
            "api_headroom",
            [p for p in limited if p.autoscaling.rate_limit.headroom_below > 0],
            share=True,
        )
        predicting = [p for p in pools if p.autoscaling.prediction.enabled]
        sizing = [
            p
            for p in pools
            if p.autoscaling.prediction.enabled or p.autoscaling.scale_up.sizing == "backlog"
        ]
        by_window: dict[int, list[PoolTarget]] = defaultdict(list)
        for pool in sizing:
            by_window[pool.autoscaling.prediction.window_seconds].append(pool)
        now = self._clock()
        for window, wanted in sorted(by_window.items()):
            per_pool(service_query(window), "service_seconds", wanted)
            per_queue(
                "arrival_rate", now, window, [p for p in wanted if p.autoscaling.prediction.enabled]
            )
        by_period: dict[tuple[int, int], list[PoolTarget]] = defaultdict(list)
        for pool in predicting:
            prediction = pool.autoscaling.prediction
            if prediction.period_seconds > 0:
                lookahead = min(prediction.lookahead_seconds, prediction.period_seconds)
                by_period[prediction.period_seconds, lookahead].append(pool)
        for (period, lookahead), wanted in sorted(by_period.items()):
            per_queue("seasonal_arrival_rate", now - period + lookahead, lookahead, wanted)
        await asyncio.gather(*jobs)
        return found

    async def _batched(self, promql: str) -> list[Sample] | str:
        try:
            return await self.query(promql)
        except MetricsError as exc:
            log.warning("batched query failed: %s: %s", promql, exc)
            return str(exc)

    async def _overrides(
        self, pools: Sequence[PoolTarget], signal: str, observed: _Observed
    ) -> list[PoolTarget]:
        """Run the per-pool PromQL overrides of `signal`; return the pools without one."""
        overridden = [p for p in pools if getattr(p.autoscaling.queries, signal) is not None]
        overridden_keys = {p.key for p in overridden}

        async def one(pool: PoolTarget) -> None:
            promql: str = getattr(pool.autoscaling.queries, signal)
            async with self._override_slots:
                try:
                    samples = await self.query(promql)
                except MetricsError as exc:
                    observed.errors[pool.key] = f"{signal} override failed: {exc}"
                    return
            if len(samples) != 1:
                observed.errors[pool.key] = (
                    f"{signal} override returned {len(samples)} series, expected exactly one"
                )
                return
            _record(observed, pool.key, signal, samples[0].value)

        await asyncio.gather(*(one(p) for p in overridden))
        return [p for p in pools if p.key not in overridden_keys]

    async def _queue_signal(
        self,
        pools: Sequence[PoolTarget],
        signal: str,
        promql: str,
        metric: str,
        combine: Callable[[list[float]], float],
    ) -> _Observed:
        observed = _Observed()
        batched, rows = await asyncio.gather(
            self._overrides(pools, signal, observed), self._batched(promql)
        )
        if isinstance(rows, str):
            for pool in batched:
                observed.errors[pool.key] = f"{signal}: {rows}"
            return observed
        matched = _match_queues(rows, batched)
        for pool in batched:
            values = matched.get(pool.key)
            if pool.projects == ():
                _record(observed, pool.key, signal, 0.0)
            elif values:
                _record(observed, pool.key, signal, combine(values))
            else:
                specialties = ",".join(sorted({*pool.specialties, GENERAL_SPECIALTY}))
                observed.errors[pool.key] = (
                    f"no {metric} series for namespace={pool.namespace} "
                    f"stage={pool.stage.value} specialty in ({specialties})"
                )
        return observed

    async def _utilization(self, pools: Sequence[PoolTarget]) -> _Observed:
        observed = _Observed()
        batched, rows = await asyncio.gather(
            self._overrides(pools, "utilization", observed), self._batched(BUSY_WORKERS_QUERY)
        )
        if isinstance(rows, str):
            for pool in batched:
                observed.errors[pool.key] = f"utilization: {rows}"
            return observed
        busy = {(r.labels.get("namespace", ""), r.labels.get("pool", "")): r.value for r in rows}
        for pool in batched:
            if pool.current_replicas == 0:
                continue  # no workers to report, and nothing to scale down: not an error
            if pool.key not in busy:
                observed.errors[pool.key] = (
                    f"no agentfleet_worker_busy series for pool {pool.namespace}/{pool.name}"
                )
                continue
            # Busy workers over replicas wanted, not the average over reporting workers:
            # pods still starting count as idle capacity, so a scale-up in progress does
            # not read as more load and compound itself. Draining pods can push the ratio
            # past 1 for a moment; a fraction it stays.
            utilization = min(1.0, busy[pool.key] / pool.current_replicas)
            _record(observed, pool.key, "utilization", utilization)
        return observed


def _match_queues(
    rows: Sequence[Sample], pools: Sequence[PoolTarget]
) -> dict[PoolKey, list[float]]:
    """The values of the queue series each pool serves: its namespace and stage, its
    specialties and the general lane, its projects."""
    # (namespace, stage, specialty) -> [(project, value)]: a pool looks up only its own
    # specialties and the general lane, so matching stays linear in the pools.
    index: dict[tuple[str, str, str], list[tuple[str, float]]] = defaultdict(list)
    for row in rows:
        labels = row.labels
        index[
            (labels.get("namespace", ""), labels.get("stage", ""), labels.get("specialty", ""))
        ].append((labels.get("project", ""), row.value))
    matched: dict[PoolKey, list[float]] = {}
    for pool in pools:
        if pool.projects == ():
            continue
        # Every pool also serves its stage's general lane, which workers fall back to.
        values = [
            value
            for specialty in {*pool.specialties, GENERAL_SPECIALTY}
            for project, value in index.get((pool.namespace, pool.stage.value, specialty), [])
            if pool.serves_project(project)
        ]
        if values:
            matched[pool.key] = values
    return matched


def _finite(value: float) -> bool:
    return not (math.isnan(value) or math.isinf(value))


def _record(observed: _Observed, key: PoolKey, signal: str, value: float) -> None:
    if math.isnan(value) or math.isinf(value):
        observed.errors[key] = f"{signal} is {value}"
        return
    # A negative age or depth can only come from clock skew between exporters.
    observed.values[key] = max(0.0, value)
