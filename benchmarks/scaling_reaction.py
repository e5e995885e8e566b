"""Autoscaler reaction time: from a burst crossing the queue-depth threshold to the
Deployment patch, on the whole local stack.

The LocalStack runs the real control plane and node, Redis, Prometheus (1 s scrape, worker
Pods found through the API server), the queue exporter and the operator (with its
autoscaler); the pool's workers run in containers and take `sleep 2` per item, so one
worker cannot drain a burst below the threshold before the next poll (which would leave
nothing to react to). For each burst the script waits until
the pool is back at its minimum with an empty queue, waits a random fraction of the poll
interval (so bursts land at every phase of the autoscaler's poll grid instead of always
just after a poll), enqueues the burst in one call, and timestamps, through watches:

- the WorkerPool's spec.replicas changing (the autoscaler's scale-subresource patch),
- the Deployment's spec.replicas changing (the operator's reconcile of that patch),
- the Deployment's readyReplicas passing the minimum (new worker Pods scheduled, their
  containers started and Ready on the node).

Reaction = Deployment patch seen - burst enqueued. It is made of: the wait for the next
scrape (< scrape interval), the wait for the next poll (< poll interval) and the work
(query, decide, patch, watch event, reconcile). Target: p95 <= poll interval + scrape
interval + 1 s.

    .venv/bin/python benchmarks/scaling_reaction.py [--bursts 5] [--poll 5] [--burst-size 30]

Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from kubernetes import client, watch

from agentfleet.core.api import Stage
from agentfleet.core.queue import Lane, WorkItem, WorkQueue
from agentfleet.dev.localenv.stack import LocalStack
from agentfleet.dev.localenv.waiting import wait_for

NAMESPACE = "reaction"
POOL = "developers"
SCRAPE_SECONDS = 1.0
MIN_REPLICAS, MAX_REPLICAS = 1, 4


@dataclass
class ReplicaLog:
    """(monotonic time, spec.replicas) of every change a watch saw."""

    changes: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, replicas: int) -> None:
        with self.lock:
            if not self.changes or self.changes[-1][1] != replicas:
                self.changes.append((time.monotonic(), replicas))

    def first_above(self, replicas: int, after: float) -> float | None:
        with self.lock:
            return next((t for t, r in self.changes if t >= after and r > replicas), None)


def watch_forever(
    list_fn: Any,
    args: tuple[Any, ...],
    log: ReplicaLog,
    stop: threading.Event,
    ready: ReplicaLog | None = None,
) -> None:
    while not stop.is_set():
        stream = watch.Watch()
        try:
            for event in stream.stream(
                list_fn, *args, field_selector=f"metadata.name={POOL}", timeout_seconds=30
            ):
                obj = event["object"]
                spec = obj.get("spec") if isinstance(obj, dict) else obj.spec.to_dict()
                replicas = (spec or {}).get("replicas")
                if replicas is not None:
                    log.record(int(replicas))
                if ready is not None and not isinstance(obj, dict):
                    ready.record(int(obj.status.ready_replicas or 0))
                if stop.is_set():
                    break
        except Exception as exc:  # a dropped watch is restarted
            if not stop.is_set():
                print(f"watch restarted: {exc}", file=sys.stderr)


def pool_manifest(poll: int, worker_env: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": POOL},
        "spec": {
            "stage": "development",
            "handler": "command",
            "minReplicas": MIN_REPLICAS,
            "maxReplicas": MAX_REPLICAS,
            "terminationGracePeriodSeconds": 10,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
            "env": [{"name": "AGENTFLEET_COMMAND", "value": "sleep 2"}, *worker_env],
            "autoscaling": {
                "pollIntervalSeconds": poll,
                "scaleUp": {"step": 2, "stabilizationSeconds": 0},
                "scaleDown": {"step": MAX_REPLICAS, "cooldownSeconds": poll},
            },
        },
    }


def items(burst: int, size: int) -> list[WorkItem]:
    return [
        WorkItem(
            id=f"web/b{burst}-{n}/development",
            namespace=NAMESPACE,
            project="web",
            stage=Stage.DEVELOPMENT,
            lane=Lane.NORMAL,
            payload={"n": n},
        )
        for n in range(size)
    ]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--poll", type=int, default=5, help="pollIntervalSeconds of the pool")
    parser.add_argument("--burst-size", type=int, default=30, help="items per burst (> 10)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    phases = random.Random(args.seed)

    stack = LocalStack(namespace=NAMESPACE, heartbeat_timeout=30)
    ready_log = ReplicaLog()
    print("starting the local stack ...", flush=True)
    stack.start()
    stop = threading.Event()
    try:
        assert stack.api is not None
        apps = client.AppsV1Api(stack.api)
        custom = client.CustomObjectsApi(stack.api)
        deployment_log, pool_log = ReplicaLog(), ReplicaLog()
        stack.add_project()
        custom.create_namespaced_custom_object(
            "agentfleet.dev",
            "v1alpha1",
            NAMESPACE,
            "workerpools",
            pool_manifest(args.poll, stack.worker_env()),
        )
        wait_for(lambda: apps.read_namespaced_deployment(POOL, NAMESPACE), 60, "the Deployment")
        watchers = [
            threading.Thread(
                target=watch_forever,
                args=(
                    apps.list_namespaced_deployment,
                    (NAMESPACE,),
                    deployment_log,
                    stop,
                    ready_log,
                ),
                daemon=True,
            ),
            threading.Thread(
                target=watch_forever,
                args=(
                    custom.list_namespaced_custom_object,
                    ("agentfleet.dev", "v1alpha1", NAMESPACE, "workerpools"),
                    pool_log,
                    stop,
                ),
                daemon=True,
            ),
        ]
        for thread in watchers:
            thread.start()

        queue = WorkQueue.from_url(stack.redis_url)
        loop = asyncio.new_event_loop()

        def waiting() -> int:
            stats = loop.run_until_complete(queue.stats(NAMESPACE, "web"))
            dev = stats.stages.get(Stage.DEVELOPMENT)
            return 0 if dev is None else dev.pending + dev.in_flight

        # One item first: the queue's lanes (and so its metric series) exist from then on.
        loop.run_until_complete(queue.enqueue(*items(0, 1)))
        wait_for(lambda: waiting() == 0, 60, "the warm-up item")

        reactions: list[float] = []
        pods_ready: list[float] = []
        """Deployment patch -> a new worker Pod Ready on the node."""
        reconciles: list[tuple[float, float]] = []
        """(autoscaler patch of the WorkerPool, then operator patch of the Deployment)"""
        for burst in range(1, args.bursts + 1):
            wait_for(
                lambda: (
                    waiting() == 0
                    and apps.read_namespaced_deployment(POOL, NAMESPACE).spec.replicas
                    == MIN_REPLICAS
                ),
                120,
                "the pool back at its minimum with an empty queue",
            )
            time.sleep(phases.uniform(0, args.poll))  # a random phase against the poll grid
            loop.run_until_complete(queue.enqueue(*items(burst, args.burst_size)))
            enqueued = time.monotonic()
            patched = wait_for(
                partial(deployment_log.first_above, MIN_REPLICAS, enqueued),
                args.poll + 30,
                "the Deployment patch",
            )
            scaled = pool_log.first_above(MIN_REPLICAS, enqueued)
            reaction = patched - enqueued
            reactions.append(reaction)
            pool_part = f"WorkerPool scale patch {scaled - enqueued:5.2f}s, " if scaled else ""
            if scaled:
                reconciles.append((scaled - enqueued, patched - scaled))
            ready = wait_for(
                partial(ready_log.first_above, MIN_REPLICAS, patched),
                60,
                "a new worker Pod Ready",
            )
            pods_ready.append(ready - patched)
            print(
                f"burst {burst}: {pool_part}Deployment patch {reaction:5.2f}s, "
                f"new Pod Ready {ready - patched:5.2f}s later",
                flush=True,
            )
        loop.run_until_complete(queue.close())
        loop.close()
    finally:
        stop.set()
        stack.stop()

    target = args.poll + SCRAPE_SECONDS + 1.0
    median, p95 = statistics.median(reactions), percentile(reactions, 0.95)
    print(
        f"reaction over {len(reactions)} bursts (poll {args.poll}s, scrape {SCRAPE_SECONDS:g}s): "
        f"median {median:.2f}s, p95 {p95:.2f}s, max {max(reactions):.2f}s; "
        f"target p95 <= {target:.1f}s: {'met' if p95 <= target else 'MISSED'}"
    )
    print(
        "Deployment patch to a new worker Pod Ready (scheduler, kubelet, containerd, worker "
        f"start-up): median {statistics.median(pods_ready):.2f}s, "
        f"max {max(pods_ready):.2f}s"
    )
    if reconciles:
        print(
            "of which: burst to the autoscaler's WorkerPool patch median "
            f"{statistics.median(a for a, _ in reconciles):.2f}s, WorkerPool to Deployment "
            f"patch (operator reconcile) median {statistics.median(b for _, b in reconciles):.2f}s"
        )
    return 0 if p95 <= target else 1


if __name__ == "__main__":
    sys.exit(main())
