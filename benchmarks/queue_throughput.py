"""Work queue throughput and dispatch latency: Redis Streams against JSON files on disk.

The baseline is the seeds' design: `shared-state/queues/<stage>-queue.json` holds a
stage's items with their status and `completed-queue.json` is the output queue; every
producer and worker reads a whole file, modifies it and writes it back under an
exclusive file lock (to a temporary file that is renamed, so no reader sees half a file).
Both queues get the same workload in one run, on this machine:

- end to end: one producer enqueues the items one by one while C consumer processes
  claim and acknowledge them; items per second from the first enqueue to the last ack
  (process start-up happens behind a barrier and is not counted);
- shared-resource time per item: what every agent of a fleet must pass through one at a
  time. For Redis that is the server's CPU time per item (INFO commandstats); for the
  files it is the time the busiest lock is held per item. Its inverse is the fleet-wide
  ceiling, the throughput no number of pods can exceed;
- dispatch latency: one consumer is waiting; the producer enqueues one item and the time
  until the consumer holds it is recorded (CLOCK_MONOTONIC is system-wide on Linux, so
  two processes' clocks agree). The files can only be polled; they get a 100 ms poll,
  far tighter than the seeds' 30 s monitoring loop.

Redis is a fresh loopback `redis-server` without persistence, as the baseline does not
fsync either; `--durable` turns on Redis's AOF with fsync on every write and an fsync
before each rename of a JSON file.

    .venv/bin/python benchmarks/queue_throughput.py [--items 1000] [--consumers 8]

Targets (issue 4): end-to-end throughput at least 50x the baseline's, checked at every
consumer count, and dispatch p95 under 20 ms. The fleet-wide ceiling is printed beside
them: on a 2-core machine C consumer processes plus the producer compete for the CPUs, so
with many consumers the end-to-end figure measures the Python clients more than the
queue. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any, TypeVar

from redis import Redis

from agentfleet.core.api import Stage
from agentfleet.core.queue import LANES_BY_PRIORITY, Subscription, WorkItem, WorkQueue
from agentfleet.dev.localenv import RedisServer

NAMESPACE = "bench"
PAYLOAD = {
    "repository": "example/shop",
    "issue": 1234,
    "title": "Add a checkout page with address validation",
    "body": "As a customer I want to ... " + "details " * 50,
    "labels": ["agentfleet", "feature"],
}
LANE_RANK = {lane.value: lane.rank for lane in LANES_BY_PRIORITY}

T = TypeVar("T")


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


# ------------------------------------------------------------------------------ baseline


class JsonFileQueue:
    """The seeds' shared-state queues; `held` sums how long each file's lock was held."""

    def __init__(self, directory: Path, durable: bool = False) -> None:
        self.directory = directory
        self.durable = durable
        self.held: Counter[str] = Counter()
        directory.mkdir(parents=True, exist_ok=True)

    def _update(self, name: str, change: Callable[[list[dict[str, Any]]], T | None]) -> T | None:
        """Read the file under its lock, apply `change`, and write the file back unless
        `change` returned None (nothing changed)."""
        path = self.directory / f"{name}.json"
        with (self.directory / f"{name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            locked = now_ns()
            items: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
            result = change(items)
            if result is not None:
                temporary = path.with_suffix(".tmp")
                with temporary.open("w") as out:
                    json.dump(items, out)
                    if self.durable:
                        out.flush()
                        os.fsync(out.fileno())
                os.replace(temporary, path)
            self.held[name] += now_ns() - locked
            return result

    def enqueue(self, item: dict[str, Any]) -> None:
        def append(items: list[dict[str, Any]]) -> bool | None:
            if any(existing["id"] == item["id"] for existing in items):
                return None
            items.append({**item, "status": "queued", "attempts": 0})
            return True

        self._update(f"{item['stage']}-queue", append)

    def claim(self, stage: str, worker: str) -> dict[str, Any] | None:
        def take(items: list[dict[str, Any]]) -> dict[str, Any] | None:
            queued = [item for item in items if item["status"] == "queued"]
            if not queued:
                return None
            chosen = min(queued, key=lambda item: (LANE_RANK[item["lane"]], item["enqueued_at"]))
            chosen.update(status="in_progress", worker=worker, claimed_at=time.time())
            chosen["attempts"] += 1
            return dict(chosen)

        return self._update(f"{stage}-queue", take)

    def ack(self, stage: str, item_id: str) -> None:
        def remove(items: list[dict[str, Any]]) -> dict[str, Any]:
            done = next(item for item in items if item["id"] == item_id)
            items.remove(done)
            return done

        done = self._update(f"{stage}-queue", remove)

        def record(completed: list[dict[str, Any]]) -> bool:
            completed.append({**(done or {}), "status": "completed", "completed_at": time.time()})
            return True

        self._update("completed-queue", record)


def file_item(n: int, sent: int = 0) -> dict[str, Any]:
    return {
        "id": f"item-{n}",
        "project": "shop",
        "stage": "genesis",
        "lane": "normal",
        "payload": {**PAYLOAD, "sent_ns": sent},
        "enqueued_at": time.time(),
    }


def redis_item(n: int, sent: int = 0) -> WorkItem:
    return WorkItem(
        id=f"item-{n}",
        namespace=NAMESPACE,
        project="shop",
        stage=Stage.GENESIS,
        payload={**PAYLOAD, "sent_ns": sent},
        pipeline=(Stage.GENESIS,),
    )


# ------------------------------------------------------- end-to-end throughput processes


@dataclass
class Run:
    """What every process of one throughput run shares."""

    kind: str
    target: str
    """Redis URL or queue directory."""
    prefix: str
    durable: bool
    items: int
    acked: Synchronized[int]
    ready: Barrier
    """Passed once a process has connected and loaded what it needs."""
    start: Barrier


def produce(run: Run, out: Connection) -> None:
    if run.kind == "redis":

        async def enqueue_all() -> None:
            queue = WorkQueue.from_url(run.target, prefix=run.prefix)
            await queue.redis.ping()
            run.ready.wait()
            run.start.wait()
            for n in range(run.items):
                await queue.enqueue(redis_item(n))
            await queue.close()

        asyncio.run(enqueue_all())
        out.send({})
    else:
        files = JsonFileQueue(Path(run.target), run.durable)
        run.ready.wait()
        run.start.wait()
        for n in range(run.items):
            files.enqueue(file_item(n))
        out.send(dict(files.held))


def consume(run: Run, name: str, out: Connection) -> None:
    def count() -> None:
        with run.acked.get_lock():
            run.acked.value += 1

    if run.kind == "redis":

        async def drain() -> None:
            queue = WorkQueue.from_url(run.target, prefix=run.prefix, poll_interval=0.05)
            subscription = Subscription(namespace=NAMESPACE, stage=Stage.GENESIS, consumer=name)
            await queue.claim(subscription)  # connect and load the scripts first
            run.ready.wait()
            run.start.wait()
            while run.acked.value < run.items:
                claim = await queue.claim(subscription, wait=0.05)
                if claim is not None:
                    await queue.complete(claim, follow_ups=[])
                    count()
            await queue.close()

        asyncio.run(drain())
        out.send({"finished": now_ns()})
    else:
        files = JsonFileQueue(Path(run.target), run.durable)
        run.ready.wait()
        run.start.wait()
        while run.acked.value < run.items:
            item = files.claim("genesis", name)
            if item is None:
                time.sleep(0.001)
                continue
            files.ack("genesis", item["id"])
            count()
        out.send({"finished": now_ns(), **files.held})


@dataclass
class Throughput:
    items_per_second: float
    shared_ns_per_item: float


def throughput(
    kind: str, target: str, prefix: str, args: argparse.Namespace, consumers: int
) -> Throughput:
    context = multiprocessing.get_context("spawn")
    run = Run(
        kind=kind,
        target=target,
        prefix=prefix,
        durable=args.durable,
        items=args.items,
        acked=context.Value("i", 0),
        ready=context.Barrier(consumers + 2),
        start=context.Barrier(consumers + 2),
    )
    pipes = [context.Pipe(duplex=False) for _ in range(consumers + 1)]
    processes = [context.Process(target=produce, args=(run, pipes[0][1]))] + [
        context.Process(target=consume, args=(run, f"c{n}", pipes[n + 1][1]))
        for n in range(consumers)
    ]
    for process in processes:
        process.start()
    redis = Redis.from_url(target) if kind == "redis" else None
    run.ready.wait()  # every process has imported and connected
    if redis is not None:
        redis.config_resetstat()
    run.start.wait()
    started = now_ns()
    reports = [reader.recv() for reader, _ in pipes]
    for process in processes:
        process.join()
    finished = max(report.pop("finished", 0) for report in reports)
    if redis is not None:
        stats = redis.info("commandstats")
        shared = sum(stat["usec"] for stat in stats.values()) * 1000
        redis.close()
    else:
        held: Counter[str] = Counter()
        for report in reports:
            held.update(report)
        shared = max(held.values())
    return Throughput(args.items / ((finished - started) / 1e9), shared / args.items)


# ---------------------------------------------------------------------- dispatch latency


def wait_on_redis(url: str, prefix: str, samples: int, ready: Event, out: Connection) -> None:
    async def run() -> None:
        queue = WorkQueue.from_url(url, prefix=prefix)
        subscription = Subscription(namespace=NAMESPACE, stage=Stage.GENESIS, consumer="waiter")
        await queue.claim(subscription, wait=0.01)  # subscribe to wake-ups
        ready.set()
        for _ in range(samples):
            claim = await queue.claim(subscription, wait=30)
            received = now_ns()
            assert claim is not None, "no item within 30 s"
            out.send(received - claim.item.payload["sent_ns"])
            await queue.complete(claim, follow_ups=[])
        await queue.close()

    asyncio.run(run())


def wait_on_files(directory: str, samples: int, poll: float, ready: Event, out: Connection) -> None:
    files = JsonFileQueue(Path(directory))
    ready.set()
    for _ in range(samples):
        while (item := files.claim("genesis", "waiter")) is None:
            time.sleep(poll)
        received = now_ns()
        out.send(received - item["payload"]["sent_ns"])
        files.ack("genesis", item["id"])


def dispatch_latencies(
    waiter_target: Callable[..., None],
    waiter_args: tuple[Any, ...],
    send: Callable[[int], object],
    samples: int,
    pause: tuple[float, float],
) -> list[float]:
    """Milliseconds from enqueue to the waiting consumer holding the item.

    Between samples the producer pauses for a random time in `pause`, so the consumer is
    back to waiting (and, for a polling consumer, at a random point of its poll cycle).
    """
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    reader, writer = context.Pipe(duplex=False)
    waiter = context.Process(target=waiter_target, args=(*waiter_args, ready, writer))
    waiter.start()
    ready.wait()
    latencies = []
    for n in range(samples):
        time.sleep(random.uniform(*pause))
        send(n)
        latencies.append(reader.recv() / 1e6)
    waiter.join()
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--latency-samples", type=int, default=300)
    parser.add_argument("--baseline-latency-samples", type=int, default=30)
    parser.add_argument("--baseline-poll", type=float, default=0.1)
    parser.add_argument("--durable", action="store_true", help="fsync on both sides")
    args = parser.parse_args()

    with (
        RedisServer(appendonly=args.durable) as server,
        tempfile.TemporaryDirectory(prefix="agentfleet-json-queue-", dir=Path.cwd()) as scratch,
    ):
        version = Redis.from_url(server.url).info("server")["redis_version"]
        results: list[tuple[int, Throughput, Throughput]] = []
        for consumers in sorted({1, args.consumers}):
            tag = f"c{consumers}"
            results.append(
                (
                    consumers,
                    throughput("redis", server.url, f"bench-{tag}", args, consumers),
                    throughput("file", f"{scratch}/{tag}", "", args, consumers),
                )
            )

        producer = WorkQueue.from_url(server.url, prefix="bench-latency")
        loop = asyncio.new_event_loop()
        redis_latency = dispatch_latencies(
            wait_on_redis,
            (server.url, "bench-latency", args.latency_samples),
            lambda n: loop.run_until_complete(producer.enqueue(redis_item(n, now_ns()))),
            args.latency_samples,
            (0.005, 0.025),
        )
        loop.run_until_complete(producer.close())
        loop.close()
        files = JsonFileQueue(Path(scratch) / "latency")
        file_latency = dispatch_latencies(
            wait_on_files,
            (str(files.directory), args.baseline_latency_samples, args.baseline_poll),
            lambda n: files.enqueue(file_item(n, now_ns())),
            args.baseline_latency_samples,
            (0.005, 0.005 + args.baseline_poll),
        )

    report(args, version, results, redis_latency, file_latency)


def report(
    args: argparse.Namespace,
    version: str,
    results: list[tuple[int, Throughput, Throughput]],
    redis_latency: list[float],
    file_latency: list[float],
) -> None:
    durability = "fsync on every write" if args.durable else "no fsync on either side"
    print(
        f"queue benchmark: redis-server {version} on loopback vs JSON files under "
        f"{Path.cwd()} ({durability}); {args.items} items of {len(json.dumps(PAYLOAD))} "
        f"bytes payload, {os.cpu_count()} CPUs\n"
    )
    print(f"{'':40} {'redis streams':>18} {'json files':>18} {'ratio':>7}")
    for consumers, on_redis, on_files in results:
        print(
            f"{f'end to end, {consumers} consumer(s)':40} "
            f"{on_redis.items_per_second:>10.0f} items/s "
            f"{on_files.items_per_second:>10.0f} items/s "
            f"{on_redis.items_per_second / on_files.items_per_second:>6.1f}x"
        )
    ceilings = []
    for consumers, on_redis, on_files in results:
        redis_us, files_us = on_redis.shared_ns_per_item / 1000, on_files.shared_ns_per_item / 1000
        ceilings.append(files_us / redis_us)
        print(
            f"{f'shared time per item, {consumers} consumer(s)':40} {redis_us:>15.0f} us "
            f"{files_us:>15.0f} us"
        )
        print(
            f"{'  fleet-wide ceiling':40} {1e6 / redis_us:>10.0f} items/s "
            f"{1e6 / files_us:>10.0f} items/s {files_us / redis_us:>6.1f}x"
        )
    for name, fraction in (("p50", 0.5), ("p95", 0.95)):
        print(
            f"{'dispatch latency ' + name:40} {percentile(redis_latency, fraction):>15.2f} ms "
            f"{percentile(file_latency, fraction):>15.2f} ms"
        )
    print(
        f"\n(dispatch: {len(redis_latency)} samples with a waiting claim on Redis, "
        f"{len(file_latency)} with a {args.baseline_poll * 1000:.0f} ms poll on the files)"
    )
    ceiling = min(ceilings)
    p95 = percentile(redis_latency, 0.95)
    checks = [
        (
            f"end-to-end throughput >= 50x the baseline's with {consumers} consumer(s) "
            f"({on_redis.items_per_second / on_files.items_per_second:.0f}x)",
            on_redis.items_per_second >= 50 * on_files.items_per_second,
        )
        for consumers, on_redis, on_files in results
    ]
    checks += [
        (f"dispatch p95 < 20 ms ({p95:.2f} ms)", p95 < 20),
    ]
    print(f"(fleet-wide ceiling, for context: worst {ceiling:.0f}x the baseline's)")
    for check, met in checks:
        print(f"target {check}: {'met' if met else 'MISSED'}")
    raise SystemExit(0 if all(met for _, met in checks) else 1)


if __name__ == "__main__":
    main()
