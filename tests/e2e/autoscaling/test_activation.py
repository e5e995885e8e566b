"""Scale from zero without waiting for a poll: at the default 15 s poll interval, the first
item for a pool at zero replicas activates it at once (the queue announces the arrival to
the operator), and a worker container on the node holds the item within seconds. Every
other decision stays on the Prometheus signals."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.queue import Lane, WorkItem
from agentfleet.dev.localenv.stack import LocalStack
from agentfleet.dev.localenv.waiting import wait_for

if TYPE_CHECKING:
    from .conftest import Cluster

pytestmark = pytest.mark.e2e

POOL = "sleepy"


def test_the_first_item_for_a_pool_at_zero_activates_it_before_any_poll(
    stack: LocalStack, cluster: Cluster
) -> None:
    ns = stack.namespace
    stack.add_project()
    _create_pool(stack, cluster)
    wait_for(
        lambda: (cluster.pool(POOL).get("status") or {}).get("conditions"),
        60,
        "the pool reconciled (at zero replicas)",
    )
    assert cluster.deployment_replicas(POOL) == 0

    item = _item(ns, "cold-start")
    enqueued = time.monotonic()
    cluster.run(_enqueue(cluster, item))
    wait_for(lambda: cluster.deployment_replicas(POOL) == 1, 5, "the pool activated")
    activated = time.monotonic() - enqueued
    wait_for(
        lambda: cluster.run(_completion(cluster, ns, item.id)) is not None,
        20,
        "the item done by a worker on the node",
    )
    done = time.monotonic() - enqueued
    assert activated < 5 and done < 15, (activated, done)  # a poll alone is up to 15 s
    events = [message for reason, message in cluster.events(POOL) if reason == "ScaledUp"]
    assert events and events[0] == (
        "0→1: an item arrived for web/development/general with no replicas (activated on arrival)"
    )


def _create_pool(stack: LocalStack, cluster: Cluster) -> None:
    cluster.custom.create_namespaced_custom_object(
        "agentfleet.dev", "v1alpha1", stack.namespace, "workerpools",
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": POOL},
            "spec": {
                "stage": "development",
                "handler": "command",
                "minReplicas": 0,
                "maxReplicas": 2,
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
                "env": [{"name": "AGENTFLEET_COMMAND", "value": "true"}, *stack.worker_env()],
                # The default poll interval: 15 s.
            },
        },
    )  # fmt: skip


def _item(namespace: str, key: str) -> WorkItem:
    return WorkItem(
        id=f"web/{key}/development",
        namespace=namespace,
        project="web",
        stage=Stage.DEVELOPMENT,
        lane=Lane.NORMAL,
        payload={},
    )


def test_a_pool_applied_just_after_its_first_item_is_activated_as_it_is_listed(
    stack: LocalStack, cluster: Cluster
) -> None:
    """The item arrives while no pool serves its lane (a pool applied together with its
    first work): the operator remembers the arrival and activates the pool the moment it
    lists it, not at a poll whose metrics show the item."""
    stack.add_project()
    cluster.run(_enqueue(cluster, _item(stack.namespace, "early")))
    created = time.monotonic()
    _create_pool(stack, cluster)
    wait_for(lambda: cluster.deployment_replicas(POOL) == 1, 15, "the pool activated")
    activated = time.monotonic() - created
    events = [message for reason, message in cluster.events(POOL) if reason == "ScaledUp"]
    assert events and events[0] == (
        "0→1: an item arrived for web/development/general with no replicas (activated on arrival)"
    ), events
    assert activated < 10, activated


async def _enqueue(cluster: Cluster, item: WorkItem) -> None:
    queue = cluster.queue()
    try:
        await queue.enqueue(item)
    finally:
        await queue.close()


async def _completion(cluster: Cluster, namespace: str, item_id: str) -> object:
    queue = cluster.queue()
    try:
        return await queue.completion(namespace, item_id)
    finally:
        await queue.close()
