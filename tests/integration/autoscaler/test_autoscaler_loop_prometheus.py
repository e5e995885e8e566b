"""The autoscaler loop reading a real Prometheus: scale-up on a threshold crossing, hold and
fallback while Prometheus is down, automatic recovery and scale-down afterwards.

Poll times are passed explicitly so the timers are exact; the signals are whatever
Prometheus scraped from the exporter.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry

from agentfleet.core.api import Stage
from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.dev.localenv import PrometheusServer
from agentfleet.dev.localenv.waiting import async_wait_for
from agentfleet.operator.autoscaler.decision import Decision, Direction, Trigger
from agentfleet.operator.autoscaler.loop import AutoscalerLoop
from agentfleet.operator.autoscaler.pools import PoolKey, PoolTarget
from agentfleet.operator.autoscaler.prometheus import PrometheusSource
from agentfleet.operator.autoscaler.synthetic import SyntheticQueueMetrics

pytestmark = pytest.mark.integration


class DictScaler:
    """A Scaler whose pools live in a dict; `apply` sets the replicas like a Deployment."""

    def __init__(self, *pools: PoolTarget) -> None:
        self.pools = {p.key: p for p in pools}
        self.applied: list[Decision] = []

    async def list_pools(self) -> Sequence[PoolTarget]:
        return list(self.pools.values())

    async def apply(self, pool: PoolTarget, decision: Decision) -> None:
        self.applied.append(decision)
        self.pools[pool.key] = pool.model_copy(
            update={"current_replicas": decision.desired_replicas}
        )

    def replicas(self, key: PoolKey) -> int:
        return self.pools[key].current_replicas


async def test_scale_up_outage_fallback_recovery_and_scale_down(
    own_prometheus: PrometheusServer, own_exporter: SyntheticQueueMetrics, test_namespace: str
) -> None:
    ns = test_namespace
    pool = PoolTarget(
        namespace=ns,
        name="dev",
        stage=Stage.DEVELOPMENT,
        current_replicas=2,
        min_replicas=1,
        max_replicas=8,
        autoscaling=AutoscalingSpec.model_validate(
            {
                "pollIntervalSeconds": 15,
                "scaleDown": {"cooldownSeconds": 60},
                "fallback": {"failureThreshold": 2, "replicas": 6},
            }
        ),
    )
    scaler = DictScaler(pool)
    registry = CollectorRegistry()
    source = PrometheusSource(own_prometheus.url, timeout_seconds=2)
    loop = AutoscalerLoop(source, scaler, registry=registry)

    def available() -> float | None:
        return registry.get_sample_value(
            "agentfleet_pool_metrics_available", {"namespace": ns, "pool": "dev"}
        )

    async def scraped(depth: float) -> bool:
        signals = (await source.fetch(list(scaler.pools.values())))[pool.key]
        return signals.queue_depth == depth and signals.utilization is not None

    try:
        own_exporter.queue(ns, "development", depth=14, oldest_wait=120)
        own_exporter.busy(ns, "dev", 1, 1)
        await async_wait_for(lambda: scraped(14), 30, "queue depth 14 in Prometheus")

        up = (await loop.run_once(now=1000))[0][1]
        assert up.summary == "ScaledUp 2→4: queue_depth=14 > 10, utilization=1.00 > 0.80"
        assert scaler.replicas(pool.key) == 4
        assert available() == 1

        own_prometheus.stop()
        first = (await loop.run_once(now=1015))[0][1]
        assert (first.direction, first.trigger) == (Direction.NONE, Trigger.METRICS_UNAVAILABLE)
        assert first.metrics_error is not None
        assert "Prometheus unreachable" in first.metrics_error
        assert available() == 0
        fallback = (await loop.run_once(now=1030))[0][1]
        assert (fallback.trigger, fallback.desired_replicas) == (Trigger.FALLBACK, 6)
        assert scaler.replicas(pool.key) == 6

        # The queue drained while Prometheus was down; it sees that once it is back.
        own_exporter.queue(ns, "development", depth=0, oldest_wait=0)
        own_exporter.busy(ns, "dev", 0, 0)
        own_prometheus.start()
        await async_wait_for(lambda: scraped(0), 30, "the drained queue in Prometheus")

        cooling = (await loop.run_once(now=1045))[0][1]
        assert cooling.blocked_by == "cooldown"
        assert cooling.metrics_available
        assert available() == 1
        down = (await loop.run_once(now=1095))[0][1]
        # Every replica is idle and nothing waits: all but minReplicas go in one step.
        assert down.summary == (
            "ScaledDown 6→1: queue_depth=0 < 3, oldest_wait=0s < 300s, utilization=0.00 < 0.30"
        )
        assert [d.trigger for d in scaler.applied] == [
            Trigger.QUEUE_DEPTH,
            Trigger.METRICS_UNAVAILABLE,
            Trigger.FALLBACK,
            Trigger.COOLDOWN,
            Trigger.IDLE,
        ]
    finally:
        await source.aclose()
