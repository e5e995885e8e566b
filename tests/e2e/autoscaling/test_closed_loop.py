"""The closed loop with real parts: a burst of work scales a WorkerPool to its maximum,
a Prometheus outage freezes it (no scale-down on missing data), and after recovery it
returns to its minimum, removing idle workers and keeping the busy one; every item is
completed exactly once.

Items run `sleep 1` in the worker containers of the Deployment's Pods on the local node.
One item ("hold") runs until the test creates a file in the worker containers, so a
worker is provably busy while the pool scales down around it.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.queue import Lane, WorkItem
from agentfleet.dev.localenv.stack import LocalStack
from agentfleet.dev.localenv.waiting import wait_for

if TYPE_CHECKING:
    from .conftest import Cluster

pytestmark = pytest.mark.e2e

POOL = "developers"
POLL_SECONDS = 2
SCRAPE_SECONDS = 1
COOLDOWN_SECONDS = 6
MIN_REPLICAS, MAX_REPLICAS = 1, 4
BURST = 40
# Slack for the API server, the Deployment controller and the operator's watch on a
# shared two-core machine; the loop itself needs one scrape plus one poll per step.
SLACK_SECONDS = 5
POD_START_SECONDS = 45
"""A precondition's allowance for new worker Pods to start and be scraped; what the test
times is the operator's reaction, not the node's."""
RELEASE_FILE = "/tmp/release"
COMMAND = (
    'case "$AGENTFLEET_ITEM_PAYLOAD" in '
    f"*'\"hold\": true'*) until [ -e {RELEASE_FILE} ]; do sleep 0.1; done ;; "
    "*) sleep 1 ;; esac"
)


def pool_manifest(stack: LocalStack) -> dict[str, object]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": POOL},
        "spec": {
            "stage": "development",
            "handler": "command",
            "minReplicas": MIN_REPLICAS,
            "maxReplicas": MAX_REPLICAS,
            "terminationGracePeriodSeconds": 30,
            "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
            "env": [{"name": "AGENTFLEET_COMMAND", "value": COMMAND}, *stack.worker_env()],
            "autoscaling": {
                "pollIntervalSeconds": POLL_SECONDS,
                # Fixed steps (not sized from the backlog), so the climb is 1 -> 3 -> 4.
                "scaleUp": {"sizing": "step", "step": 2, "stabilizationSeconds": 0},
                # One step from max to min, so the busy-pod check sees three Pods go.
                "scaleDown": {"sizing": "step", "step": 3, "cooldownSeconds": COOLDOWN_SECONDS},
            },
        },
    }


def item(namespace: str, number: int, hold: bool = False) -> WorkItem:
    return WorkItem(
        id=f"web/issue-{number}/development",
        namespace=namespace,
        project="web",
        stage=Stage.DEVELOPMENT,
        lane=Lane.NORMAL,
        payload={"hold": True} if hold else {"issue": number},
    )


def set_up(stack: LocalStack, cluster: Cluster) -> None:
    ns = stack.namespace
    stack.add_project()
    cluster.custom.create_namespaced_custom_object(
        "agentfleet.dev", "v1alpha1", ns, "workerpools", pool_manifest(stack)
    )
    wait_for(lambda: len(cluster.pods(POOL)) == MIN_REPLICAS, 60, "the first worker Pod")


def enqueue(cluster: Cluster, *items: WorkItem) -> None:
    async def put() -> None:
        queue = cluster.queue()
        try:
            await queue.enqueue(*items)
        finally:
            await queue.close()

    cluster.run(put())


def completions(cluster: Cluster) -> tuple[Counter[str], dict[str, str]]:
    """How often each item id was completed, and by which worker (Pod)."""

    async def read() -> list[dict[str, str]]:
        queue = cluster.queue()
        try:
            return await queue.completion_log(cluster.namespace)
        finally:
            await queue.close()

    log = cluster.run(read())
    counts = Counter(entry["id"] for entry in log)
    workers = {entry["id"]: entry.get("worker", "") for entry in log}
    return counts, workers


def in_flight(cluster: Cluster) -> int:
    async def read() -> int:
        queue = cluster.queue()
        try:
            stats = await queue.stats(cluster.namespace, "web")
        finally:
            await queue.close()
        development = stats.stages.get(Stage.DEVELOPMENT)
        return 0 if development is None else development.in_flight

    count: int = cluster.run(read())
    return count


def test_burst_outage_recovery_and_scale_down_around_a_busy_worker(
    stack: LocalStack, cluster: Cluster
) -> None:
    set_up(stack, cluster)
    burst = [item(stack.namespace, n) for n in range(BURST)]
    held = item(stack.namespace, BURST, hold=True)

    # A burst: the pool reaches its maximum within three polls (1 -> 3 -> 4).
    enqueue(cluster, *burst)
    wait_for(
        lambda: cluster.deployment_replicas(POOL) == MAX_REPLICAS,
        3 * POLL_SECONDS + SCRAPE_SECONDS + SLACK_SECONDS,
        f"the Deployment at maxReplicas={MAX_REPLICAS}",
    )
    # The reconciler records the replicas in the pool's status once the Deployment has them.
    status = wait_for(
        lambda: (st := cluster.pool(POOL)["status"]).get("desiredReplicas") == MAX_REPLICAS and st,
        SLACK_SECONDS,
        f"status.desiredReplicas={MAX_REPLICAS}",
    )
    assert status["lastScaleReason"].startswith(f"ScaledUp 3→{MAX_REPLICAS}: queue_depth=")
    scaled_up = [message for reason, message in cluster.events(POOL) if reason == "ScaledUp"]
    assert scaled_up[0].startswith(f"{MIN_REPLICAS}→3: queue_depth=")

    # Prometheus goes away while the queue is still deep (once every signal was read:
    # the workers' busy series appear a scrape after their Pods start, and five Pods
    # starting on a loaded two-core node have taken longer than the polls alone).
    wait_for(
        lambda: (cluster.condition(POOL, "MetricsAvailable") or {}).get("status") == "True",
        POD_START_SECONDS + 3 * POLL_SECONDS + SLACK_SECONDS,
        "MetricsAvailable=True",
    )
    assert stack.prometheus is not None
    stack.prometheus.stop()
    wait_for(
        lambda: (cluster.condition(POOL, "MetricsAvailable") or {}).get("status") == "False",
        3 * POLL_SECONDS + SLACK_SECONDS,
        "MetricsAvailable=False",
    )
    unavailable = cluster.condition(POOL, "MetricsAvailable")
    assert unavailable is not None and "Prometheus unreachable" in unavailable["message"]

    # The workers drain the queue regardless; then one more item is taken and held.
    wait_for(
        lambda: sum(completions(cluster)[0].values()) >= BURST, 60, "the burst to be worked off"
    )
    enqueue(cluster, held)
    wait_for(lambda: in_flight(cluster) == 1, 15, "a worker holding the last item")
    # Idle pool, cooldown long over: with metrics it would scale down now. Without them
    # it holds, poll after poll.
    holds = {"pool": POOL, "direction": "none", "reason": "metrics_unavailable"}
    seen = cluster.operator_metric("agentfleet_scaling_decisions_total", **holds)
    wait_for(
        lambda: (
            cluster.operator_metric("agentfleet_scaling_decisions_total", **holds)
            >= seen + COOLDOWN_SECONDS / POLL_SECONDS + 1
        ),
        (COOLDOWN_SECONDS + 2 * POLL_SECONDS) + SLACK_SECONDS,
        "polls holding on missing metrics for longer than the cooldown",
    )
    assert cluster.deployment_replicas(POOL) == MAX_REPLICAS
    assert (
        cluster.operator_metric("agentfleet_scaling_decisions_total", pool=POOL, direction="down")
        == 0
    )
    assert "MetricsUnavailable" in [reason for reason, _ in cluster.events(POOL)]

    # Prometheus is back: metrics recover, and the pool returns to its minimum, three
    # idle Pods removed and the busy one kept.
    holder_before = set(cluster.pods(POOL))
    stack.prometheus.start()
    wait_for(
        lambda: cluster.deployment_replicas(POOL) == MIN_REPLICAS,
        60,
        f"the Deployment back at minReplicas={MIN_REPLICAS}",
    )
    assert (cluster.condition(POOL, "MetricsAvailable") or {}).get("status") == "True"
    survivors = wait_for(
        lambda: (pods := cluster.pods(POOL)) and len(pods) == MIN_REPLICAS and pods,
        60,
        "the idle Pods to be gone",
    )
    (survivor,) = survivors
    assert survivor in holder_before
    assert survivors[survivor]["controller.kubernetes.io/pod-deletion-cost"] == "1"
    reasons = [reason for reason, _ in cluster.events(POOL)]
    assert reasons.index("MetricsAvailable") > reasons.index("MetricsUnavailable")
    assert "ScaledDown" in reasons

    # The held item finishes on the worker that kept it; nothing was lost or repeated.
    cluster.exec_in_pods(POOL, "touch", RELEASE_FILE)
    counts, workers = wait_for(
        lambda: (done := completions(cluster)) and held.id in done[0] and done,
        30,
        "the held item to complete",
    )
    assert workers[held.id] == survivor
    assert counts == Counter({i.id: 1 for i in [*burst, held]})
