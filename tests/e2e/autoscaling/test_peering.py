"""Replicas of the operator with peering: only the active one (the highest priority)
autoscales. A replica that was active and is paused for a higher-priority peer stops
deciding at once and forgets the pool; the new active replica scales from where it was.

No workers run here: the queue and worker series come from a synthetic exporter scraped
by the real Prometheus, so the test sets exactly the load each phase needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client

from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.operator.autoscaler.synthetic import SyntheticQueueMetrics

if TYPE_CHECKING:
    from .conftest import PeeredOperator

pytestmark = pytest.mark.e2e

POOL = "peered"
DECISIONS = "agentfleet_scaling_decisions_total"


def replicas(custom: client.CustomObjectsApi, namespace: str) -> int | None:
    pool: dict[str, Any] = custom.get_namespaced_custom_object(
        "agentfleet.dev", "v1alpha1", namespace, "workerpools", POOL
    )
    value: int | None = pool["spec"].get("replicas")
    return value


def test_a_replica_paused_for_a_higher_priority_peer_stops_scaling(
    peered_operator: Callable[[int], PeeredOperator],
    synthetic_metrics: SyntheticQueueMetrics,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    custom = client.CustomObjectsApi(api_client)
    synthetic_metrics.queue(namespace, "development", depth=20, oldest_wait=60)
    synthetic_metrics.busy(namespace, POOL, 1)
    first = peered_operator(100)
    custom.create_namespaced_custom_object(
        "agentfleet.dev",
        "v1alpha1",
        namespace,
        "workerpools",
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": POOL},
            "spec": {
                "stage": "development",
                "minReplicas": 1,
                "maxReplicas": 4,
                "autoscaling": {
                    "pollIntervalSeconds": 1,
                    "scaleUp": {"stabilizationSeconds": 0},
                    "scaleDown": {"step": 3, "cooldownSeconds": 1},
                },
            },
        },
    )
    wait_for(lambda: replicas(custom, namespace) == 4, 60, "the only replica to scale up")
    assert (first.metric(DECISIONS, pool=POOL, direction="up") or 0) >= 1

    # A replica with a higher priority joins: the first one pauses and lets go of the pool.
    second = peered_operator(200)
    wait_for(
        lambda: first.metric(DECISIONS, pool=POOL) is None,
        30,
        "the paused replica to stop deciding for the pool",
    )
    synthetic_metrics.queue(namespace, "development", depth=0, oldest_wait=0)
    synthetic_metrics.busy(namespace, POOL, 0)
    # The new replica decides after its first poll of metrics the test just changed; 60 s
    # was once not enough on a loaded machine.
    wait_for(lambda: replicas(custom, namespace) == 1, 120, "the new active replica to scale down")
    assert (second.metric(DECISIONS, pool=POOL, direction="down") or 0) >= 1
    assert first.metric(DECISIONS, pool=POOL) is None
