"""`agentfleet worker` processes against a real Redis: the command handler, retries and
dead-letter, heartbeats, SIGTERM drain, a frozen worker losing its item, and metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.core.api import Stage
from agentfleet.core.queue import (
    Claim,
    CompletionOutcome,
    CompletionRecord,
    StageQueueStats,
    Subscription,
    WorkItem,
    WorkQueue,
)
from agentfleet.dev.localenv import RedisServer, free_port
from agentfleet.dev.localenv.waiting import async_wait_for, wait_for

pytestmark = pytest.mark.integration

QueueFactory = Callable[..., WorkQueue]


class Workers:
    """Worker processes started like the operator's Deployment does: by environment."""

    def __init__(self, redis_url: str, namespace: str, directory: Path) -> None:
        self.redis_url = redis_url
        self.namespace = namespace
        self.directory = directory
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: str, **settings: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "AGENTFLEET_REDIS_URL": self.redis_url,
            "AGENTFLEET_NAMESPACE": self.namespace,
            "AGENTFLEET_POOL": "genesis-pool",
            "AGENTFLEET_STAGE": "genesis",
            "AGENTFLEET_COMMAND": command,
            "AGENTFLEET_METRICS_PORT": "0",
            "POD_NAME": name,
            "AGENTFLEET_HEARTBEAT_INTERVAL": "0.2",
            "AGENTFLEET_HEARTBEAT_TIMEOUT": "1",
            "AGENTFLEET_RETRY_BASE_DELAY": "0.05",
            "OUT": str(self.directory),
            **settings,
        }
        with (self.directory / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "agentfleet", "worker"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.directory / f"{name}.log").read_text(errors="replace")

    def exit_code(self, name: str, timeout: float = 20) -> int:
        return self.processes[name].wait(timeout=timeout)

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


@pytest.fixture
def queue_namespace() -> str:
    """Worker processes use the default key prefix; a namespace of their own isolates them."""
    return f"w-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def workers(redis_server: RedisServer, queue_namespace: str, tmp_path: Path) -> Iterator[Workers]:
    started = Workers(redis_server.url, queue_namespace, tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def queue(make_queue: QueueFactory) -> WorkQueue:
    return make_queue(prefix="agentfleet", heartbeat_timeout=1.0)


def item(namespace: str, item_id: str, **fields: object) -> WorkItem:
    return WorkItem.model_validate(
        {"id": item_id, "namespace": namespace, "project": "shop", "stage": "genesis", **fields}
    )


async def completion(queue: WorkQueue, namespace: str, item_id: str) -> CompletionRecord:
    record: CompletionRecord = await async_wait_for(
        lambda: queue.completion(namespace, item_id), 30, f"{item_id} to be completed"
    )
    return record


def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def worker_sample(port: int, name: str, **labels: str) -> float:
    for (sample, sample_labels), value in metrics(port).items():
        if sample == name and labels.items() <= dict(sample_labels).items():
            return value
    raise AssertionError(f"no {name}{labels} in the worker's metrics")


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


COMMAND = """
case "$AGENTFLEET_ITEM_ID" in
  bad-*) echo "no such issue" >&2; exit 65 ;;
  flaky-*) [ "$AGENTFLEET_ITEM_ATTEMPT" -ge 2 ] || { echo "try again"; exit 1; } ;;
esac
seen="$AGENTFLEET_ITEM_ID $AGENTFLEET_ITEM_PROJECT $AGENTFLEET_ITEM_ATTEMPT"
echo "$seen $AGENTFLEET_ITEM_PAYLOAD" >> "$OUT/ran"
[ "$PWD" = "$AGENTFLEET_WORKSPACE" ] && echo '{"built": true}'
"""


async def test_the_command_handler_runs_items_retries_and_dead_letters(
    workers: Workers, queue: WorkQueue, queue_namespace: str
) -> None:
    namespace = queue_namespace
    await queue.enqueue(
        item(namespace, "ok-1", payload={"issue": 1}),
        item(namespace, "flaky-2"),
        item(namespace, "bad-3"),
    )
    workers.start("pod-1", COMMAND)
    for item_id in ("ok-1", "flaky-2"):
        assert (await completion(queue, namespace, item_id)).outcome is CompletionOutcome.SUCCEEDED
    bad = await completion(queue, namespace, "bad-3")
    assert bad.outcome is CompletionOutcome.DEAD_LETTERED
    assert "status 65" in (bad.error or "")
    assert "no such issue" in (bad.error or "")
    ran = sorted((workers.directory / "ran").read_text().splitlines())
    assert ran == ["flaky-2 shop 2 {}", 'ok-1 shop 1 {"issue": 1}']

    development = await queue.get(namespace, "ok-1/development")
    assert development is not None
    assert development.payload == {"issue": 1, "built": True}
    stats = await queue.stats(namespace, "shop")
    assert stats.stages[Stage.GENESIS] == StageQueueStats(completed=2, dead_lettered=1)

    workers.processes["pod-1"].send_signal(signal.SIGTERM)
    assert workers.exit_code("pod-1") == 0, workers.log("pod-1")


WAIT_FOR_GO = """
echo $$ > "$OUT/$AGENTFLEET_ITEM_ID.pid"
while [ ! -e "$OUT/go" ]; do sleep 0.05; done
"""


async def test_sigterm_lets_the_current_item_finish_within_the_grace_period(
    workers: Workers, queue: WorkQueue, queue_namespace: str
) -> None:
    namespace = queue_namespace
    await queue.enqueue(item(namespace, "current"), item(namespace, "next"))
    workers.start("pod-1", WAIT_FOR_GO, AGENTFLEET_DRAIN_GRACE_SECONDS="60")
    wait_for((workers.directory / "current.pid").exists, 20, "the item to start")
    workers.processes["pod-1"].send_signal(signal.SIGTERM)
    wait_for(lambda: "drain requested" in workers.log("pod-1"), 20, "the drain to start")
    (workers.directory / "go").touch()
    assert workers.exit_code("pod-1") == 0, workers.log("pod-1")
    assert (await completion(queue, namespace, "current")).worker == "pod-1"
    assert await queue.completion(namespace, "next") is None
    stats = await queue.stats(namespace, "shop")
    assert stats.stages[Stage.GENESIS] == StageQueueStats(pending=1, completed=1)


async def test_sigterm_releases_an_item_that_outlasts_the_grace_period(
    workers: Workers, queue: WorkQueue, queue_namespace: str
) -> None:
    namespace = queue_namespace
    await queue.enqueue(item(namespace, "long"))
    workers.start("pod-1", WAIT_FOR_GO, AGENTFLEET_DRAIN_GRACE_SECONDS="0.5")
    pid_file = workers.directory / "long.pid"
    wait_for(pid_file.exists, 20, "the item to start")
    workers.processes["pod-1"].send_signal(signal.SIGTERM)
    assert workers.exit_code("pod-1") == 0, workers.log("pod-1")
    assert process_gone(int(pid_file.read_text()))
    claim = await queue.claim(Subscription(namespace=namespace, stage=Stage.GENESIS, consumer="b"))
    assert claim is not None
    assert (claim.item.id, claim.item.attempts, claim.reclaimed) == ("long", 1, True)


async def test_heartbeats_keep_a_long_item_and_the_metrics_show_the_worker_busy(
    workers: Workers, queue: WorkQueue, queue_namespace: str
) -> None:
    namespace = queue_namespace
    await queue.enqueue(item(namespace, "long"))
    port = free_port()
    workers.start("pod-1", WAIT_FOR_GO, AGENTFLEET_METRICS_PORT=str(port))
    wait_for((workers.directory / "long.pid").exists, 20, "the item to start")
    labels = {"namespace": namespace, "pool": "genesis-pool"}
    assert worker_sample(port, "agentfleet_worker_busy", **labels, pod="pod-1") == 1
    other = Subscription(namespace=namespace, stage=Stage.GENESIS, consumer="other")
    # 8 x 0.3 s: well past the 1 s heartbeat timeout, yet nobody else can take the item.
    for _ in range(8):
        assert await queue.claim(other, wait=0.3) is None
    (workers.directory / "go").touch()
    assert (await completion(queue, namespace, "long")).worker == "pod-1"
    processed = "agentfleet_worker_items_processed_total"
    wait_for(
        lambda: worker_sample(port, processed, **labels, outcome="succeeded") == 1,
        10,
        "the worker to count the item",
    )
    assert worker_sample(port, "agentfleet_worker_busy", **labels, pod="pod-1") == 0
    assert worker_sample(port, "agentfleet_worker_wait_seconds_count", **labels) == 1
    assert worker_sample(port, "agentfleet_worker_processing_seconds_count", **labels) == 1


async def test_a_frozen_worker_loses_its_item_and_stops_working_on_it(
    workers: Workers, queue: WorkQueue, queue_namespace: str
) -> None:
    namespace = queue_namespace
    await queue.enqueue(item(namespace, "gh-1"))
    port = free_port()
    frozen = workers.start("pod-1", WAIT_FOR_GO, AGENTFLEET_METRICS_PORT=str(port))
    pid_file = workers.directory / "gh-1.pid"
    wait_for(pid_file.exists, 20, "the item to start")
    frozen.send_signal(signal.SIGSTOP)
    try:
        rescuer = Subscription(namespace=namespace, stage=Stage.GENESIS, consumer="rescuer")
        taken: Claim = await async_wait_for(
            lambda: queue.claim(rescuer), 20, "the frozen worker's item to be reclaimed"
        )
        assert (taken.item.id, taken.item.attempts, taken.reclaimed) == ("gh-1", 2, True)
        assert (await queue.complete(taken)).recorded
    finally:
        frozen.send_signal(signal.SIGCONT)
    labels = {"namespace": namespace, "pool": "genesis-pool"}
    processed = "agentfleet_worker_items_processed_total"
    wait_for(
        lambda: worker_sample(port, processed, **labels, outcome="lost") == 1,
        20,
        "the thawed worker to notice it lost the item",
    )
    assert process_gone(int(pid_file.read_text()))
    assert (await completion(queue, namespace, "gh-1")).worker == "rescuer"
    log = await queue.completion_log(namespace)
    assert [(entry["id"], entry["worker"]) for entry in log] == [("gh-1", "rescuer")]
    assert frozen.poll() is None  # it carries on serving the queue


def test_an_unknown_handler_is_a_startup_error(workers: Workers) -> None:
    workers.start("pod-1", "true", AGENTFLEET_HANDLER="no-such-handler")
    assert workers.exit_code("pod-1") == 2
    assert "unknown handler 'no-such-handler'" in workers.log("pod-1")
