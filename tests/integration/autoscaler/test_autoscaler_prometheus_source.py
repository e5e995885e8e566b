"""PrometheusSource against a real Prometheus scraping a real exporter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.api.autoscaling import AutoscalingSpec, MetricQueries
from agentfleet.dev.localenv import PrometheusServer, free_port
from agentfleet.dev.localenv.waiting import async_wait_for
from agentfleet.operator.autoscaler.decision import Signals
from agentfleet.operator.autoscaler.pools import PoolKey, PoolTarget
from agentfleet.operator.autoscaler.prometheus import PrometheusSource
from agentfleet.operator.autoscaler.synthetic import SyntheticQueueMetrics

pytestmark = pytest.mark.integration

SCRAPED_WITHIN = 30.0


def pool(
    namespace: str,
    name: str,
    stage: Stage = Stage.DEVELOPMENT,
    specialties: Sequence[str] = (),
    projects: Sequence[str] | None = None,
    replicas: int = 2,
    queries: MetricQueries | None = None,
) -> PoolTarget:
    return PoolTarget(
        namespace=namespace,
        name=name,
        stage=stage,
        specialties=tuple(specialties),
        projects=None if projects is None else tuple(projects),
        current_replicas=replicas,
        min_replicas=0,
        max_replicas=10,
        autoscaling=AutoscalingSpec(queries=queries or MetricQueries()),
    )


@pytest.fixture
async def source(prometheus_server: PrometheusServer) -> AsyncIterator[PrometheusSource]:
    # Built as the operator builds it: the default timeout (5.0 s) goes out as "5000ms".
    prom = PrometheusSource(prometheus_server.url)
    yield prom
    await prom.aclose()


async def fetch_when(
    source: PrometheusSource,
    pools: Sequence[PoolTarget],
    ready: Sequence[PoolKey],
) -> dict[PoolKey, Signals]:
    """Poll until every pool in `ready` has all its signals (Prometheus scraped them)."""

    async def complete() -> dict[PoolKey, Signals] | None:
        signals = await source.fetch(pools)
        if all(signals[key].error is None for key in ready):
            return signals
        return None

    return await async_wait_for(complete, SCRAPED_WITHIN, f"signals for {list(ready)}")


async def test_one_query_per_signal_serves_every_pool(
    exporter: SyntheticQueueMetrics, source: PrometheusSource, test_namespace: str
) -> None:
    ns = test_namespace
    dev = Stage.DEVELOPMENT.value
    exporter.queue(ns, dev, depth=4, oldest_wait=120)
    exporter.queue(ns, dev, depth=2, oldest_wait=30, lane="urgent")
    exporter.queue(ns, dev, depth=1, oldest_wait=400, project="api")
    exporter.queue(ns, dev, depth=7, oldest_wait=2000, specialty="tdd")
    exporter.queue(ns, dev, depth=5, oldest_wait=50, specialty="ai-ml")
    exporter.queue(ns, Stage.CONTENT.value, depth=9, oldest_wait=10)
    exporter.queue("elsewhere-" + ns, dev, depth=100, oldest_wait=9999)
    exporter.busy(ns, "general", 1, 0)
    exporter.busy(ns, "tdd", 1, 1, 1, 0)
    exporter.busy(ns, "web-ai", 1)
    exporter.busy(ns, "docs", 0, 0)

    pools = [
        pool(ns, "general"),
        # A project selector that matches no Project: nothing can wait for this pool.
        pool(ns, "no-projects", projects=[], replicas=0),
        pool(ns, "tdd", specialties=["tdd"], replicas=4),
        # Four replicas wanted, one worker reporting: three pods are still starting.
        pool(ns, "web-ai", specialties=["ai-ml"], projects=["web"], replicas=4),
        pool(ns, "docs", stage=Stage.CONTENT),
    ]
    # Pools with no series at all ride along in the same batch at no extra cost.
    idle = [pool(f"{ns}-idle-{i}", f"pool-{i}") for i in range(200)]
    signals = await fetch_when(source, [*pools, *idle], [p.key for p in pools])

    before = source.queries_sent
    signals = await source.fetch([*pools, *idle])
    # Three threshold signals and five optional ones (429 share, API headroom, service
    # time, arrivals, arrivals a day ago), whatever the number of pools.
    assert source.queries_sent - before == 3 + 5

    assert signals[(ns, "general")] == Signals(
        queue_depth=4 + 2 + 1, oldest_wait_seconds=400, utilization=0.5
    )
    assert signals[(ns, "tdd")] == Signals(
        queue_depth=4 + 2 + 1 + 7, oldest_wait_seconds=2000, utilization=0.75
    )
    # Only the web project: its general lanes and its ai-ml lane, never "api".
    assert signals[(ns, "web-ai")] == Signals(
        queue_depth=4 + 2 + 5, oldest_wait_seconds=120, utilization=0.25
    )
    assert signals[(ns, "docs")] == Signals(queue_depth=9, oldest_wait_seconds=10, utilization=0)
    # Nothing can arrive for it either.
    assert signals[(ns, "no-projects")] == Signals(
        queue_depth=0, oldest_wait_seconds=0, arrival_rate=0, seasonal_arrival_rate=0
    )
    assert all(signals[p.key].queue_depth is None for p in idle)


async def test_rate_limit_service_time_and_arrivals_come_batched_for_every_pool(
    exporter: SyntheticQueueMetrics, source: PrometheusSource, test_namespace: str
) -> None:
    """The optional signals from the real series the workers and the queue export: the
    share of model calls answered 429/529, the API headroom, the mean processing time and
    the arrival rate; absent (no information, not zero) where there is no number."""
    ns, dev = test_namespace, Stage.DEVELOPMENT.value
    for name in ("limited", "fine", "silent"):
        exporter.queue(ns, dev, depth=0, oldest_wait=0, project=name)
        exporter.busy(ns, name, 1)
    exporter.busy(ns, "unaware", 1)
    exporter.enqueued(ns, dev, 0, project="limited")
    for status in ("ok", "rate_limited"):
        exporter.responses(ns, "limited", status, 0)
    exporter.responses(ns, "fine", "ok", 0)
    exporter.headroom(ns, "limited", 0.04)
    pools = {name: pool(ns, name, projects=[name], replicas=1) for name in ("limited", "fine")}
    # A one-minute window: a whole window of arrivals is observed within the test.
    minute = AutoscalingSpec(prediction={"window_seconds": 60})
    pools["limited"] = pools["limited"].model_copy(update={"autoscaling": minute})
    silent = pool(ns, "silent", projects=["silent"], replicas=1)
    unaware = pool(ns, "unaware", projects=["silent"], replicas=1).model_copy(
        update={"autoscaling": AutoscalingSpec(rate_limit={"enabled": False})}
    )
    everything = [*pools.values(), silent, unaware]
    await fetch_when(source, everything, [p.key for p in everything])

    # Traffic after Prometheus has seen the counters at zero, so every increment is a rate.
    for _ in range(6):
        exporter.responses(ns, "limited", "ok", 3)
        exporter.responses(ns, "limited", "rate_limited", 1)
        exporter.responses(ns, "fine", "ok", 2)
        exporter.processed(ns, "limited", dev, 500, 700)
        exporter.enqueued(ns, dev, 1, project="limited")
        await asyncio.sleep(0.5)

    async def settled() -> dict[PoolKey, Signals] | None:
        signals = await source.fetch(everything)
        limited = signals[pools["limited"].key]
        if limited.throttled_fraction is None or limited.service_seconds is None:
            return None
        if limited.arrival_rate is None or limited.arrival_rate * 60 < 5.5:
            return None
        return signals

    signals = await async_wait_for(settled, SCRAPED_WITHIN, "the rates to be scraped")
    limited = signals[pools["limited"].key]
    assert limited.throttled_fraction == pytest.approx(0.25, abs=0.03)
    assert limited.api_headroom == pytest.approx(0.04)
    assert limited.service_seconds == pytest.approx(600, rel=0.01)
    # Six new items in the one-minute window (Prometheus extrapolates a little).
    assert limited.arrival_rate is not None
    assert 5.5 <= limited.arrival_rate * 60 <= 9
    assert limited.seasonal_arrival_rate is None  # no data from a day ago
    fine = signals[pools["fine"].key]
    assert fine.throttled_fraction == 0.0  # calls made, none throttled: that is information
    # Nothing ever arrived in its queues (no series), and its two-hour window has not been
    # observed whole anyway: no information.
    assert fine.arrival_rate is None
    assert fine.api_headroom is None  # no headers reported
    # No calls, no processing, no arrivals: no information, which is not zero.
    quiet = signals[silent.key]
    assert (quiet.throttled_fraction, quiet.service_seconds, quiet.arrival_rate) == (
        None,
        None,
        None,
    )
    # A pool that ignores rate limits is not told about them.
    assert signals[unaware.key].throttled_fraction is None


async def test_a_pool_without_series_is_unavailable_not_zero(
    source: PrometheusSource, test_namespace: str
) -> None:
    running, stopped = pool(test_namespace, "running"), pool(test_namespace, "zero", replicas=0)
    signals = await source.fetch([running, stopped])

    assert signals[running.key] == Signals(
        error=(
            f"no agentfleet_queue_depth series for namespace={test_namespace} "
            "stage=development specialty in (general); "
            f"no agentfleet_queue_oldest_wait_seconds series for namespace={test_namespace} "
            "stage=development specialty in (general); "
            f"no agentfleet_worker_busy series for pool {test_namespace}/running"
        )
    )
    # A pool at zero replicas has no workers, so no busy series is expected of it.
    assert signals[stopped.key].utilization is None
    stopped_error = signals[stopped.key].error
    assert stopped_error is not None
    assert "worker_busy" not in stopped_error


async def test_per_pool_overrides_run_their_own_queries(
    exporter: SyntheticQueueMetrics, source: PrometheusSource, test_namespace: str
) -> None:
    ns = test_namespace
    exporter.queue(ns, "review", depth=6, oldest_wait=90, project="a")
    exporter.queue(ns, "review", depth=3, oldest_wait=45, project="b")
    exporter.busy(ns, "custom", 0)
    custom = pool(
        ns,
        "custom",
        stage=Stage.REVIEW,
        queries=MetricQueries(
            queue_depth=f'sum(agentfleet_queue_depth{{namespace="{ns}", project="a"}})',
            utilization="0.25",
        ),
    )
    many_series = pool(
        ns,
        "many",
        stage=Stage.REVIEW,
        queries=MetricQueries(queue_depth=f'agentfleet_queue_depth{{namespace="{ns}"}}'),
    )
    # Valid PromQL (the models parse every override) that this Prometheus refuses: the
    # function is newer than 2.42, and experimental where it exists. Prometheus' own
    # refusal still reaches the pool as an unavailable signal.
    refused = 'sort_by_label(agentfleet_queue_oldest_wait_seconds, "project")'
    broken = pool(ns, "broken", queries=MetricQueries(oldest_wait_seconds=refused))

    signals = await fetch_when(source, [custom, many_series, broken], [custom.key])

    assert signals[custom.key] == Signals(queue_depth=6, oldest_wait_seconds=90, utilization=0.25)
    many_error = signals[many_series.key].error
    assert many_error is not None
    assert "queue_depth override returned 2 series, expected exactly one" in many_error
    broken_error = signals[broken.key].error
    assert broken_error is not None
    assert "oldest_wait_seconds override failed: bad_data" in broken_error


async def test_unreachable_prometheus_makes_every_signal_unavailable() -> None:
    nowhere = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout_seconds=2)
    try:
        signals = await nowhere.fetch([pool("ns", "a"), pool("ns", "b")])
    finally:
        await nowhere.aclose()
    for observed in signals.values():
        assert (observed.queue_depth, observed.oldest_wait_seconds, observed.utilization) == (
            None,
            None,
            None,
        )
        assert observed.error is not None
        assert "Prometheus unreachable at http://127.0.0.1:" in observed.error


async def test_a_hung_prometheus_times_out_into_unavailable(silent_listener: str) -> None:
    hung = PrometheusSource(silent_listener, timeout_seconds=0.5)
    try:
        signals = await hung.fetch([pool("ns", "a")])
    finally:
        await hung.aclose()
    error = signals[("ns", "a")].error
    assert error is not None
    assert "queue_depth: Prometheus timed out after 0.5s" in error
    assert signals[("ns", "a")].queue_depth is None


async def test_stopped_prometheus_is_unavailable_and_recovery_is_automatic(
    own_prometheus: PrometheusServer, own_exporter: SyntheticQueueMetrics, test_namespace: str
) -> None:
    prometheus, exporter = own_prometheus, own_exporter
    exporter.queue(test_namespace, "genesis", depth=3, oldest_wait=5)
    exporter.busy(test_namespace, "g", 1)
    source = PrometheusSource(prometheus.url, timeout_seconds=2)
    target = pool(test_namespace, "g", stage=Stage.GENESIS, replicas=1)
    try:
        await fetch_when(source, [target], [target.key])

        prometheus.stop()
        down = (await source.fetch([target]))[target.key]
        assert down.queue_depth is None
        assert down.error is not None
        assert "Prometheus unreachable" in down.error

        prometheus.start()
        recovered = await fetch_when(source, [target], [target.key])
        assert recovered[target.key] == Signals(queue_depth=3, oldest_wait_seconds=5, utilization=1)
    finally:
        await source.aclose()
