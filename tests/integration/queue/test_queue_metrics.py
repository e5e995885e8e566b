"""The queue's and the worker's Prometheus metrics: values read from a real Redis, the
exposition accepted by the real `promtool check metrics`, and the exporter scraped by a
real Prometheus."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis

from agentfleet.core.api import Stage
from agentfleet.core.queue import Lane, ManualClock, Subscription, WorkItem, WorkQueue
from agentfleet.core.queue.metrics import QueueCollector
from agentfleet.dev.localenv import (
    ManagedProcess,
    PrometheusServer,
    RedisServer,
    find_binary,
    free_port,
)
from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.worker.metrics import WorkerMetrics

pytestmark = pytest.mark.integration

QueueFactory = Callable[..., WorkQueue]


def item(item_id: str, namespace: str, project: str = "shop", **fields: object) -> WorkItem:
    return WorkItem.model_validate(
        {"id": item_id, "namespace": namespace, "project": project, "stage": "genesis", **fields}
    )


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def promtool_problems(exposition: bytes) -> str:
    """What `promtool check metrics` objects to ("" when the exposition is clean)."""
    result = subprocess.run(
        [str(find_binary("promtool")), "check", "metrics"],
        input=exposition,
        capture_output=True,
        check=False,
        timeout=30,
    )
    problems = (result.stdout + result.stderr).decode().strip()
    return problems or ("" if result.returncode == 0 else f"exit {result.returncode}")


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


@pytest.fixture
def sync_redis(redis_server: RedisServer) -> Iterator[Redis[str]]:
    client: Redis[str] = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    client.close()


async def test_queue_metrics_reflect_the_queue_and_pass_promtool(
    make_queue: QueueFactory, sync_redis: Redis[str]
) -> None:
    queue = make_queue(heartbeat_timeout=30.0)
    namespace = "metrics-a"
    await queue.enqueue(
        item("shop-1", namespace, lane=Lane.HIGH),
        item("shop-2", namespace, lane=Lane.HIGH),
        item("shop-3", namespace),
        item("shop-4", namespace),
        item("shop-5", namespace),
        item("blog-1", namespace, project="blog", specialty="tdd"),
    )
    await queue.hold(namespace, "blog")
    worker = Subscription(namespace=namespace, stage=Stage.GENESIS, consumer="pod-1")
    claims = [await queue.claim(worker) for _ in range(4)]
    assert [claim.item.id for claim in claims if claim] == ["shop-1", "shop-2", "shop-3", "shop-4"]
    released, done, dead, retrying = (claim for claim in claims if claim)
    await queue.release(released)
    await queue.complete(done, follow_ups=[])
    await queue.fail(dead, "broken", retryable=False)
    await queue.fail(retrying, "flaky")
    running = await queue.claim(worker)
    assert running is not None
    assert running.item.id == "shop-1"
    # Now: shop-1 in flight, shop-5 waiting in the normal lane, shop-4 retrying, blog-1
    # held, and the dead-lettered shop-3's review item waiting in the review stage.

    registry = CollectorRegistry()
    registry.register(
        QueueCollector(
            sync_redis, prefix=queue.prefix, heartbeat_timeout=30.0, namespaces=[namespace]
        )
    )
    values = scrape(registry)
    lane = {"namespace": namespace, "project": "shop", "stage": "genesis", "specialty": "general"}
    assert values["agentfleet_queue_depth", labels(**lane, lane="high")] == 0
    assert values["agentfleet_queue_oldest_wait_seconds", labels(**lane, lane="high")] == 0
    assert values["agentfleet_queue_depth", labels(**lane, lane="normal")] == 1
    assert values["agentfleet_queue_oldest_wait_seconds", labels(**lane, lane="normal")] >= 0
    assert values["agentfleet_queue_inflight", labels(**lane)] == 1
    blog_lane = {**lane, "project": "blog", "specialty": "tdd", "lane": "normal"}
    assert values["agentfleet_queue_depth", labels(**blog_lane)] == 0
    stage = {"namespace": namespace, "stage": "genesis"}
    assert values["agentfleet_queue_held", labels(**stage, project="blog")] == 1
    assert values["agentfleet_queue_held", labels(**stage, project="shop")] == 0
    assert values["agentfleet_queue_retrying", labels(**stage, project="shop")] == 1
    assert values["agentfleet_queue_dead_lettered_total", labels(**stage, project="shop")] == 1
    completed = "agentfleet_queue_completed_total"
    assert values[completed, labels(**stage, project="shop", outcome="succeeded")] == 1
    assert values[completed, labels(**stage, project="shop", outcome="dead_lettered")] == 1
    review = {**lane, "stage": "review", "lane": "normal"}
    assert values["agentfleet_queue_depth", labels(**review)] == 1
    # Arrivals: six new items, and the review item the dead letter became; the release and
    # the retry are deliveries of items that had arrived already.
    enqueued = "agentfleet_queue_enqueued_total"
    assert values[enqueued, labels(**lane)] == 5
    assert values[enqueued, labels(**{**lane, "project": "blog", "specialty": "tdd"})] == 1
    assert values[enqueued, labels(**{**lane, "stage": "review"})] == 1
    assert values["agentfleet_queue_redis_up", ()] == 1

    assert promtool_problems(generate_latest(registry)) == ""


async def test_in_flight_and_stale_items_are_told_apart(
    make_queue: QueueFactory, sync_redis: Redis[str]
) -> None:
    clock = ManualClock()
    queue = make_queue(heartbeat_timeout=1.0, clock=clock)
    namespace = "metrics-b"
    await queue.enqueue(item("gh-1", namespace))
    claim = await queue.claim(Subscription(namespace=namespace, stage=Stage.GENESIS, consumer="p"))
    assert claim is not None
    registry = CollectorRegistry()
    registry.register(
        QueueCollector(
            sync_redis,
            prefix=queue.prefix,
            heartbeat_timeout=1.0,
            namespaces=[namespace],
            clock=clock,
        )
    )
    lane = {"namespace": namespace, "project": "shop", "stage": "genesis", "specialty": "general"}
    normal = labels(**lane, lane="normal")
    clock.advance(0.9)
    values = scrape(registry)
    assert values["agentfleet_queue_inflight", labels(**lane)] == 1
    assert values["agentfleet_queue_depth", normal] == 0
    assert values["agentfleet_queue_oldest_wait_seconds", normal] == 0
    # Its worker goes silent: after the heartbeat timeout the item counts as waiting again,
    # so a pool scaled to zero still sees it and scales up; it has waited since enqueued.
    clock.advance(0.1)
    values = scrape(registry)
    assert values["agentfleet_queue_depth", normal] == 1
    assert values["agentfleet_queue_inflight", labels(**lane)] == 0
    assert values["agentfleet_queue_oldest_wait_seconds", normal] == 1.0


def test_a_redis_outage_leaves_the_scrape_up_with_redis_up_zero() -> None:
    server = RedisServer().start()
    client: Redis[str] = Redis.from_url(server.url, decode_responses=True)
    registry = CollectorRegistry()
    registry.register(QueueCollector(client))
    assert scrape(registry)["agentfleet_queue_redis_up", ()] == 1
    server.stop()
    values = scrape(registry)
    assert values["agentfleet_queue_redis_up", ()] == 0
    assert not [name for name, _ in values if name == "agentfleet_queue_depth"]
    client.close()


def test_worker_metrics_pass_promtool() -> None:
    metrics = WorkerMetrics("team-a", "dev-pool", "dev-pool-abc", Stage.DEVELOPMENT)
    metrics.busy.set(1)
    metrics.wait_seconds.observe(0.2)
    metrics.processing_seconds.observe(42)
    metrics.processed("succeeded")
    values = scrape(metrics.registry)
    pool = {"namespace": "team-a", "pool": "dev-pool"}
    assert values["agentfleet_worker_busy", labels(**pool, pod="dev-pool-abc")] == 1
    processed = "agentfleet_worker_items_processed_total"
    assert values[processed, labels(**pool, stage="development", outcome="succeeded")] == 1
    assert values[processed, labels(**pool, stage="development", outcome="dead_lettered")] == 0
    assert (
        values["agentfleet_worker_processing_seconds_count", labels(**pool, stage="development")]
        == 1
    )
    assert values["agentfleet_worker_wait_seconds_sum", labels(**pool, stage="development")] == 0.2
    assert promtool_problems(generate_latest(metrics.registry)) == ""


async def test_the_exporter_is_scraped_by_prometheus(
    make_queue: QueueFactory,
    redis_server: RedisServer,
    prometheus_server: PrometheusServer,
    tmp_path: Path,
) -> None:
    # The exporter reads the default key prefix; a namespace of its own keeps it apart.
    queue = make_queue(prefix="agentfleet")
    namespace = f"metrics-{uuid.uuid4().hex[:8]}"
    await queue.enqueue(*[item(f"gh-{n}", namespace, lane=Lane.URGENT) for n in range(3)])
    port = free_port()
    exporter = ManagedProcess(
        "queue-exporter",
        [
            sys.executable,
            "-m",
            "agentfleet",
            "queue-exporter",
            "--redis-url",
            redis_server.url,
            "--port",
            str(port),
            "--address",
            "127.0.0.1",
            "--namespace",
            namespace,
        ],
        log_dir=tmp_path,
    )
    exporter.start()
    address = f"127.0.0.1:{port}"
    try:
        prometheus_server.add_target(address, test="queue-exporter")
        result = wait_for(
            lambda: prometheus_server.query(
                f'sum(agentfleet_queue_depth{{namespace="{namespace}",lane="urgent"}})'
            ),
            60,
            "Prometheus to scrape agentfleet queue-exporter",
        )
        assert float(result[0]["value"][1]) == 3
    finally:
        prometheus_server.remove_target(address)
        exporter.stop()


async def test_declared_lanes_publish_zero_until_work_arrives(
    make_queue: QueueFactory, sync_redis: Redis[str]
) -> None:
    """Idle is not missing: a lane that never held an item is published as 0 once the
    operator declared it, for every priority; a new namespace needs no enqueue to be
    seen; a forgotten project's idle lanes disappear, and Redis down is still no data."""
    queue = make_queue()
    namespace = f"declared-{uuid.uuid4().hex[:6]}"
    registry = CollectorRegistry()
    registry.register(QueueCollector(sync_redis, prefix=queue.prefix))
    depth = "agentfleet_queue_depth"

    def series(project: str) -> dict[tuple[str, str, str], float]:
        return {
            (dict(key)["stage"], dict(key)["specialty"], dict(key)["lane"]): value
            for (name, key), value in scrape(registry).items()
            if name == depth
            and dict(key)["namespace"] == namespace
            and dict(key)["project"] == project
        }

    assert series("shop") == {}
    await queue.declare_lanes(
        namespace, "shop", [(Stage.REVIEW, "general"), (Stage.DEVELOPMENT, "tdd")]
    )
    idle = series("shop")
    assert set(idle) == {
        (stage, specialty, lane.value)
        for stage, specialty in (("review", "general"), ("development", "tdd"))
        for lane in Lane
    }
    assert set(idle.values()) == {0}
    oldest = scrape(registry)[
        "agentfleet_queue_oldest_wait_seconds",
        labels(
            namespace=namespace, project="shop", stage="review", specialty="general", lane="low"
        ),
    ]
    assert oldest == 0
    # Project status sees the same zeros.
    assert (await queue.stats(namespace, "shop")).stages[Stage.REVIEW].pending == 0

    # Work arriving in a declared lane replaces its zero (no duplicate series).
    await queue.enqueue(item("r-1", namespace, stage="review", lane=Lane.HIGH))
    busy = series("shop")
    assert busy["review", "general", "high"] == 1
    assert len(busy) == len(idle)

    # Redeclaring replaces the set; forgetting drops the idle ones (the stream stays).
    await queue.declare_lanes(namespace, "shop", [(Stage.REVIEW, "general")])
    assert {key[:2] for key in series("shop")} == {("review", "general")}
    await queue.forget_lanes(namespace, "shop")
    assert series("shop") == {("review", "general", "high"): 1}

    # Missing data still means a failure: with Redis unreachable there is no series.
    broken = CollectorRegistry()
    dead: Redis[str] = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True)
    broken.register(QueueCollector(dead, prefix=queue.prefix))
    values = scrape(broken)
    assert values["agentfleet_queue_redis_up", ()] == 0
    assert not [key for key in values if key[0] == depth]
    dead.close()
