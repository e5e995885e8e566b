"""Scale from zero on the real local node: from an item enqueued for a WorkerPool at
`minReplicas: 0` (no Pod running) until a worker container holds it; and dispatch to an
idle, already running worker.

The LocalStack runs the real control plane and node, Redis, Prometheus (1 s scrape), the
queue exporter and the operator with its autoscaler; worker images are cached on the node
(imported once), so nothing is pulled. Each run waits until the pool is back at zero with
no Pod, enqueues one item and timestamps, on the host's clock:

- decision:        enqueue -> the WorkerPool's spec.replicas 0 -> 1 (the autoscaler:
                   scrape, poll, decide, scale patch)
- scheduling:      -> the Pod bound to the node (operator reconcile, Deployment and
                   ReplicaSet controllers, kube-scheduler)
- container start: -> containerd started the worker container (kubelet, containerd,
                   runc, CNI; `crictl inspect`'s startedAt, in nanoseconds)
- worker start-up: -> the worker serving (its log line "serving": Python, imports,
                   Redis)
- claim:           -> the worker holding the item (its log line "claimed")

Watch events are timestamped as they arrive, containerd records the container's start in
nanoseconds, and the worker's log lines carry its own millisecond timestamps (one
machine, one clock). Anchors: kubernetes-sigs/agent-sandbox
targets 200 ms warm-pool claims; OpenHands users report sandbox starts failing at 120 s.
Targets: p95 from zero under 10 s; dispatch to an idle worker under 20 ms p95.

    .venv/bin/python benchmarks/pod_start.py [--runs 10] [--poll 15] [--dispatch-runs 20]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
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

NAMESPACE = "pod-start"
POOL = "cold"
WARM_POOL = "warm"
FROM_ZERO_TARGET = 10.0
DISPATCH_TARGET = 0.020
PARTS = ("decision", "scheduling", "container start", "worker start-up", "claim")


@dataclass
class Seen:
    """Host wall-clock times at which watches first saw each step, per object."""

    times: dict[tuple[str, str], float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mark(self, key: tuple[str, str]) -> None:
        with self.lock:
            self.times.setdefault(key, time.time())

    def get(self, key: tuple[str, str]) -> float | None:
        with self.lock:
            return self.times.get(key)


def watch_pool(custom: client.CustomObjectsApi, seen: Seen, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            for event in watch.Watch().stream(
                custom.list_namespaced_custom_object,
                "agentfleet.dev", "v1alpha1", NAMESPACE, "workerpools",
                field_selector=f"metadata.name={POOL}", timeout_seconds=30,
            ):  # fmt: skip
                generation = event["object"]["metadata"]["generation"]
                replicas = event["object"]["spec"].get("replicas") or 0
                if replicas > 0:
                    seen.mark(("scaled", str(generation)))
                if stop.is_set():
                    return
        except Exception as exc:
            if not stop.is_set():
                print(f"pool watch restarted: {exc}", file=sys.stderr)


def watch_pods(core: client.CoreV1Api, seen: Seen, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            for event in watch.Watch().stream(
                core.list_namespaced_pod, NAMESPACE,
                label_selector=f"agentfleet.dev/pool={POOL}", timeout_seconds=30,
            ):  # fmt: skip
                pod = event["object"]
                name = pod.metadata.name
                if pod.spec.node_name:
                    seen.mark((name, "scheduled"))
                if stop.is_set():
                    return
        except Exception as exc:
            if not stop.is_set():
                print(f"pod watch restarted: {exc}", file=sys.stderr)


def container_started(stack: LocalStack, core: client.CoreV1Api, pod: str) -> float | None:
    """When containerd started the worker container (crictl inspect: nanoseconds)."""
    status = core.read_namespaced_pod(pod, NAMESPACE).status.container_statuses or []
    if not status or not status[0].container_id:
        return None
    container = status[0].container_id.removeprefix("containerd://")
    started = json.loads(stack.cluster.node.crictl("inspect", container))["status"]["startedAt"]
    seconds, _, fraction = started.rstrip("Z").partition(".")
    stamp = dt.datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return stamp.timestamp() + float(f"0.{fraction or 0}")


def log_time(stack: LocalStack, pod: str, marker: str) -> float | None:
    """The wall-clock time of the worker's first log line containing `marker`."""
    text = stack.kubectl("logs", "-n", NAMESPACE, pod, "-c", "worker", check=False)
    for line in text.splitlines():
        if marker in line:
            # The image sets no time zone: its clock reads UTC.
            stamp = dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.replace(tzinfo=dt.UTC).timestamp()
    return None


def pool_manifest(
    name: str, min_replicas: int, poll: int, env: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": name},
        "spec": {
            "stage": "development" if name == POOL else "content",
            "handler": "command",
            "minReplicas": min_replicas,
            "maxReplicas": 1,
            "terminationGracePeriodSeconds": 5,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
            "env": [{"name": "AGENTFLEET_COMMAND", "value": "true"}, *env],
            "autoscaling": {
                "pollIntervalSeconds": poll,
                "scaleUp": {"stabilizationSeconds": 0},
                "scaleDown": {"cooldownSeconds": poll},
            },
        },
    }


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def item(stage: Stage, key: str) -> WorkItem:
    return WorkItem(
        id=f"web/{key}/{stage.value}",
        namespace=NAMESPACE,
        project="web",
        stage=stage,
        lane=Lane.NORMAL,
        payload={},
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--poll", type=int, default=15, help="pollIntervalSeconds of the pool")
    parser.add_argument("--dispatch-runs", type=int, default=20)
    args = parser.parse_args()

    stack = LocalStack(namespace=NAMESPACE, heartbeat_timeout=30)
    print("starting the local stack ...", flush=True)
    stack.start()
    stop = threading.Event()
    seen = Seen()
    loop = asyncio.new_event_loop()
    rows: list[dict[str, float]] = []
    dispatch: list[float] = []
    try:
        if stack.api is None:
            raise RuntimeError("stack without an API client")
        core, custom = client.CoreV1Api(stack.api), client.CustomObjectsApi(stack.api)
        stack.add_project()
        for name, minimum in ((POOL, 0), (WARM_POOL, 1)):
            custom.create_namespaced_custom_object(
                "agentfleet.dev", "v1alpha1", NAMESPACE, "workerpools",
                pool_manifest(name, minimum, args.poll, stack.worker_env()),
            )  # fmt: skip
        for target in (watch_pool, watch_pods):
            api: Any = custom if target is watch_pool else core
            threading.Thread(target=target, args=(api, seen, stop), daemon=True).start()
        queue = WorkQueue.from_url(stack.redis_url)

        def live_pods(pool: str) -> list[Any]:
            selector = f"agentfleet.dev/pool={pool}"
            pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector)
            return [p for p in pods.items if p.metadata.deletion_timestamp is None]

        def done(key: WorkItem) -> str | None:
            """The worker (Pod) that completed the item, once it has."""
            record = loop.run_until_complete(queue.completion(NAMESPACE, key.id))
            return None if record is None else record.worker

        print(f"scale from zero, poll {args.poll}s, {args.runs} runs", flush=True)
        for run in range(1, args.runs + 1):
            wait_for(
                lambda: (
                    not core.list_namespaced_pod(
                        NAMESPACE, label_selector=f"agentfleet.dev/pool={POOL}"
                    ).items
                ),
                args.poll * 4 + 60,
                "the cold pool at zero with no Pod",
            )
            generation = custom.get_namespaced_custom_object(
                "agentfleet.dev", "v1alpha1", NAMESPACE, "workerpools", POOL
            )["metadata"]["generation"]
            work = item(Stage.DEVELOPMENT, f"cold-{run}")
            enqueued = time.time()
            loop.run_until_complete(queue.enqueue(work))
            pod = wait_for(partial(done, work), args.poll * 3 + 60, "the item done")
            scaled = next(
                t for (k, g), t in sorted(seen.times.items(), key=lambda kv: kv[1])
                if k == "scaled" and int(g) > generation
            )  # fmt: skip
            steps = {
                "decision": scaled,
                "scheduling": seen.get((pod, "scheduled")),
                # The kubelet reports the container a moment after it started.
                "container start": wait_for(
                    partial(container_started, stack, core, pod), 30, "the container status"
                ),
                "worker start-up": log_time(stack, pod, " serving "),
                "claim": log_time(stack, pod, "claimed " + work.id),
            }
            if any(v is None for v in steps.values()):
                raise RuntimeError(
                    f"run {run}: a step was not seen for Pod {pod}: {steps}\n"
                    + stack.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide", check=False)
                    + stack.kubectl("logs", "-n", NAMESPACE, pod, "-c", "worker", check=False)
                )
            row, previous = {}, enqueued
            for part in PARTS:
                at = float(steps[part] or 0.0)
                row[part] = at - previous
                previous = at
            row["total"] = previous - enqueued
            rows.append(row)
            print(
                f"run {run:2d}: total {row['total']:5.2f}s = "
                + " + ".join(f"{part} {row[part]:.2f}" for part in PARTS),
                flush=True,
            )

        # Dispatch to an idle worker that is already running (the warm pool's one worker).
        wait_for(lambda: len(live_pods(WARM_POOL)) == 1, 120, "the warm worker")
        (warm,) = [p.metadata.name for p in live_pods(WARM_POOL)]
        time.sleep(2)  # let it settle into its blocking read
        for run in range(1, args.dispatch_runs + 1):
            work = item(Stage.CONTENT, f"warm-{run}")
            enqueued = time.time()
            loop.run_until_complete(queue.enqueue(work))
            wait_for(partial(done, work), 30, "the warm item done")
            claimed = log_time(stack, warm, "claimed " + work.id)
            if claimed is None:
                raise RuntimeError(f"the warm worker did not log its claim of {work.id}")
            dispatch.append(claimed - enqueued)
        loop.run_until_complete(queue.close())
    finally:
        stop.set()
        loop.close()
        stack.stop()

    totals = [r["total"] for r in rows]
    p50, p95 = statistics.median(totals), percentile(totals, 0.95)
    print(f"\nscale from zero over {len(rows)} runs (poll {args.poll}s):")
    print(f"  {'part':16s} {'p50':>7s} {'p95':>7s}")
    for part in (*PARTS, "total"):
        values = [r[part] for r in rows]
        print(f"  {part:16s} {statistics.median(values):6.2f}s {percentile(values, 0.95):6.2f}s")
    d50, d95 = statistics.median(dispatch), percentile(dispatch, 0.95)
    cold_ok, warm_ok = p95 < FROM_ZERO_TARGET, d95 < DISPATCH_TARGET
    print(
        f"from zero: p50 {p50:.2f}s, p95 {p95:.2f}s; target p95 < {FROM_ZERO_TARGET:g}s: "
        f"{'met' if cold_ok else 'MISSED'}"
    )
    print(
        f"dispatch to an idle worker over {len(dispatch)} items: p50 {d50 * 1000:.1f} ms, "
        f"p95 {d95 * 1000:.1f} ms; target p95 < {DISPATCH_TARGET * 1000:g} ms: "
        f"{'met' if warm_ok else 'MISSED'}"
    )
    return 0 if cold_ok and warm_ok else 1


if __name__ == "__main__":
    sys.exit(main())
