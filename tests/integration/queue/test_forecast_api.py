"""The read API's forecast endpoint served for real (uvicorn on a free port) over a real
Redis, without and with a real Prometheus: what it observes per pool and Project, read
back strictly by the CLI's client, and the forecast `agentfleet forecast` makes of it."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
from kubernetes import client

from agentfleet.core.api import Stage
from agentfleet.core.forecastapi import ForecastObservations
from agentfleet.core.github import WebhookServer
from agentfleet.core.queue import ManualClock, Subscription, WorkItem, WorkQueue
from agentfleet.ctl.kube import CliError, Target
from agentfleet.ctl.operatorapi import OperatorApi
from agentfleet.dev.localenv import PrometheusServer, free_port
from agentfleet.operator.autoscaler.synthetic import SyntheticQueueMetrics
from agentfleet.operator.context import OperatorContext
from agentfleet.operator.forecastapi import forecast_router
from agentfleet.operator.index import PoolEntry
from agentfleet.operator.readapi import ReadApi, create_app
from agentfleet.simulator.live import forecast_rows

pytestmark = pytest.mark.integration

SERVICE_SECONDS = 60.0
PROMETHEUS_DEADLINE_SECONDS = 60.0


def pool(namespace: str, name: str, stage: str, replicas: int) -> PoolEntry:
    return PoolEntry.from_body(
        {
            "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}"},
            "spec": {"stage": stage, "minReplicas": 1, "maxReplicas": 6},
            "status": {"replicas": replicas, "readyReplicas": replicas},
        }
    )


@dataclass
class Served:
    url: str
    namespace: str
    queue: WorkQueue


@pytest.fixture
def namespace() -> str:
    """A namespace label no other test publishes to the shared Prometheus."""
    return f"team-fc{uuid.uuid4().hex[:8]}"


async def serve(
    context: OperatorContext, namespace: str, prometheus_url: str | None
) -> AsyncIterator[Served]:
    config = context.config.model_copy(update={"prometheus_url": prometheus_url})
    api = ReadApi(dataclasses.replace(context, config=config))
    pools = [pool(namespace, "devs", "development", 2), pool(namespace, "writers", "content", 1)]
    router = forecast_router(api, lambda ns: [p for p in pools if p.namespace == ns])
    port = free_port()
    if context.queue is None:
        raise RuntimeError("the read API's context has no queue")
    async with WebhookServer(create_app(api, routers=[router]), port=port):
        yield Served(f"http://127.0.0.1:{port}", namespace, context.queue)


@pytest.fixture
async def served(read_api_context: OperatorContext, namespace: str) -> AsyncIterator[Served]:
    async for found in serve(read_api_context, namespace, None):
        yield found


async def history(queue: WorkQueue, clock: ManualClock, namespace: str) -> None:
    """30 development items for `shop`: 5 finished a minute apart by one worker of `devs`,
    one held by another, 24 waiting."""
    await queue.enqueue(
        *(
            WorkItem(id=f"shop/{n}", namespace=namespace, project="shop", stage=Stage.DEVELOPMENT)
            for n in range(30)
        )
    )
    worker = Subscription(namespace=namespace, stage=Stage.DEVELOPMENT, consumer="devs-7f9-a")
    for _ in range(5):
        claim = await queue.claim(worker)
        assert claim is not None
        clock.advance(SERVICE_SECONDS)
        await queue.complete(claim, follow_ups=[])
    other = Subscription(namespace=namespace, stage=Stage.DEVELOPMENT, consumer="devs-7f9-b")
    assert await queue.claim(other) is not None


def read(url: str, path: str) -> ForecastObservations:
    api = OperatorApi.connect(Target(client.ApiClient(), None), None, url)
    return api.get(path, ForecastObservations, windowSeconds="3600")


async def test_without_prometheus_the_completion_log_gives_the_rates(
    served: Served, clock: ManualClock
) -> None:
    await history(served.queue, clock, served.namespace)
    path = f"/v1/namespaces/{served.namespace}/forecast"
    observed = await asyncio.to_thread(read, served.url, path)

    assert observed.namespace == served.namespace
    assert observed.source == "completionLog"
    assert "no Prometheus URL" in observed.source_note
    assert observed.generated_at == clock()
    devs, writers = observed.pools
    assert (devs.pool, devs.stage, devs.replicas, devs.max_replicas) == (
        "devs", Stage.DEVELOPMENT, 2, 6,
    )  # fmt: skip
    # four gaps of a minute between the worker's five completions
    assert (devs.service_seconds, devs.service_samples) == (SERVICE_SECONDS, 4)
    (shop,) = devs.projects
    assert (shop.project, shop.queued, shop.in_progress, shop.held) == ("shop", 24, 1, False)
    # five in the last quarter hour, none before: a burst, counted as twice the median
    # quarter or two items (agentfleet.operator.autoscaler.rates)
    assert shop.arrival_rate == pytest.approx(2 / 3600, abs=1e-6)
    assert (writers.pool, writers.service_seconds, writers.projects) == ("writers", None, [])

    (row,) = forecast_rows(observed)
    assert row.cannot_forecast is None
    assert row.current is not None and row.maximum is not None
    assert row.current.done_seconds is not None and row.maximum.done_seconds is not None
    # 25 items of about a minute on two workers; six (after a minute's start) are faster
    assert row.current.done_seconds == pytest.approx(25 * SERVICE_SECONDS / 2, rel=0.35)
    assert row.maximum.done_seconds < 0.7 * row.current.done_seconds

    async with httpx.AsyncClient(base_url=served.url) as http:
        other = await http.get("/v1/namespaces/other/forecast")
        bad = await http.get(path, params={"windowSeconds": "-1"})
    assert (other.status_code, other.json()) == (
        404, {"error": "namespace other is not served by this operator"},
    )  # fmt: skip
    assert bad.status_code == 400 and "windowSeconds" in bad.json()["error"]
    with pytest.raises(CliError, match=r"^operator: namespace other is not served"):
        await asyncio.to_thread(read, served.url, "/v1/namespaces/other/forecast")


@pytest.fixture
def exporter(prometheus_server: PrometheusServer) -> Iterator[SyntheticQueueMetrics]:
    published = SyntheticQueueMetrics()
    prometheus_server.add_target(published.address)
    yield published
    prometheus_server.remove_target(published.address)
    published.close()


async def test_with_prometheus_its_counters_give_the_rates(
    queue: WorkQueue,
    read_api_context: OperatorContext,
    clock: ManualClock,
    namespace: str,
    prometheus_server: PrometheusServer,
    exporter: SyntheticQueueMetrics,
) -> None:
    await history(queue, clock, namespace)
    # The series exist (at 0) before they rise: an increase needs a sample before it.
    exporter.enqueued(namespace, "development", 0, project="shop")
    exporter.processed(namespace, "devs", "development")
    series = f'agentfleet_worker_processing_seconds_count{{namespace="{namespace}"}}'
    arrived = f'agentfleet_queue_enqueued_total{{namespace="{namespace}"}}'
    deadline = time.monotonic() + PROMETHEUS_DEADLINE_SECONDS
    while not (prometheus_server.query(series) and prometheus_server.query(arrived)):
        assert time.monotonic() < deadline, "Prometheus never scraped the exporter"
        await asyncio.sleep(0.25)
    # What the queue exporter and the workers then publish: 30 arrivals, 8 items of 90 s.
    exporter.enqueued(namespace, "development", 30, project="shop")
    exporter.processed(namespace, "devs", "development", *[90.0] * 8)
    async for served in serve(read_api_context, namespace, prometheus_server.url):
        path = f"/v1/namespaces/{namespace}/forecast"
        while True:
            observed = await asyncio.to_thread(read, served.url, path)
            devs = observed.pools[0]
            if devs.service_seconds is not None and devs.projects[0].arrival_rate > 0:
                break
            assert time.monotonic() < deadline, f"Prometheus never showed the rates: {observed}"
            await asyncio.sleep(0.25)
    assert observed.source == "prometheus"
    assert "agentfleet_queue_enqueued_total" in observed.source_note
    # sum and count are extrapolated alike: their ratio is the mean
    assert devs.service_seconds == pytest.approx(90.0, rel=0.01)
    assert devs.service_samples > 0
    (shop,) = devs.projects
    assert (shop.queued, shop.in_progress) == (24, 1)
    assert shop.arrival_rate > 0
