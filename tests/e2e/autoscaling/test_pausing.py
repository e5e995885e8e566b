"""Pausing autoscaling with KEDA's gesture: the paused-replicas annotation pins the pool
and the autoscaler keeps its hands off until the annotation is removed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client

from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.operator.autoscaler.reporting import PAUSED_REPLICAS_ANNOTATION
from agentfleet.operator.autoscaler.synthetic import SyntheticQueueMetrics

if TYPE_CHECKING:
    from .conftest import PeeredOperator

pytestmark = pytest.mark.e2e

POOL = "pausable"
GROUP = ("agentfleet.dev", "v1alpha1")


def test_paused_replicas_pin_the_pool_until_the_annotation_goes(
    peered_operator: Callable[[int], PeeredOperator],
    synthetic_metrics: SyntheticQueueMetrics,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    custom = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)

    def pool() -> dict[str, Any]:
        found: dict[str, Any] = custom.get_namespaced_custom_object(
            *GROUP, namespace, "workerpools", POOL
        )
        return found

    def annotate(value: str | None) -> None:
        custom.patch_namespaced_custom_object(
            *GROUP,
            namespace,
            "workerpools",
            POOL,
            {"metadata": {"annotations": {PAUSED_REPLICAS_ANNOTATION: value}}},
            _content_type="application/merge-patch+json",
        )

    operator = peered_operator(100)
    synthetic_metrics.queue(namespace, "development", depth=20, oldest_wait=60)
    synthetic_metrics.busy(namespace, POOL, 1)
    custom.create_namespaced_custom_object(
        *GROUP,
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
                "autoscaling": {"pollIntervalSeconds": 1, "scaleUp": {"stabilizationSeconds": 0}},
            },
        },
    )
    wait_for(lambda: pool()["spec"].get("replicas") == 4, 60, "the pool at maxReplicas")

    annotate("2")
    wait_for(lambda: pool()["spec"].get("replicas") == 2, 30, "the pool pinned at 2")
    paused = {"pool": POOL, "direction": "none", "reason": "paused"}
    held = operator.metric("agentfleet_scaling_decisions_total", **paused) or 0
    wait_for(
        lambda: (operator.metric("agentfleet_scaling_decisions_total", **paused) or 0) >= held + 3,
        30,
        "three polls holding a pool whose queue is deep",
    )
    status = pool()["status"]
    assert pool()["spec"]["replicas"] == 2
    assert status["lastScaleReason"] == f"Paused 4→2: annotation {PAUSED_REPLICAS_ANNOTATION}='2'"
    active = next(c for c in status["conditions"] if c["type"] == "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "AutoscalingPaused")
    events = core.list_namespaced_event(namespace, field_selector="reason=ScalingPaused").items
    assert [e.message for e in events] == [f"4→2: annotation {PAUSED_REPLICAS_ANNOTATION}='2'"]

    annotate(None)
    wait_for(lambda: pool()["spec"].get("replicas") == 4, 30, "autoscaling to resume")
