"""PrometheusSource against a real Prometheus scraping a real exporter."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from agentfleet.api import Stage
from agentfleet.api.autoscaling import AutoscalingSpec, MetricQueries
from agentfleet.autoscaler.decision import Signals
from agentfleet.autoscaler.pools import PoolKey, PoolTarget
from agentfleet.autoscaler.prometheus import PrometheusSource
from agentfleet.autoscaler.synthetic import SyntheticQueueMetrics
from agentfleet.localenv import PrometheusServer, free_port
from agentfleet.localenv.waiting import async_wait_for

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
    assert source.queries_sent - before == 3

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
    assert signals[(ns, "no-projects")] == Signals(queue_depth=0, oldest_wait_seconds=0)
    assert all(signals[p.key].queue_depth is None for p in idle)


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
    assert signals[stopped.key].error is not None
    assert "worker_busy" not in signals[stopped.key].error


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
