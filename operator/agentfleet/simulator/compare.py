"""One trace through the three policies, from a WorkerPool's spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agentfleet.core.api import Stage
from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.core.api.workerpool import WorkerPoolSpec
from agentfleet.operator.autoscaler.decision import Decision
from agentfleet.simulator.engine import RateLimit, SimulationResult, simulate
from agentfleet.simulator.policies import (
    AgentfleetPolicy,
    Policy,
    QueueLengthTargetPolicy,
    StaticPolicy,
)
from agentfleet.simulator.trace import Arrival


@dataclass(frozen=True)
class PoolPolicy:
    """The parts of a WorkerPool the simulation needs."""

    min_replicas: int
    max_replicas: int
    replicas: int | None
    """spec.replicas at the start of the trace; unset means minReplicas, as in the CRD."""
    autoscaling: AutoscalingSpec

    @property
    def start_replicas(self) -> int:
        wanted = self.min_replicas if self.replicas is None else self.replicas
        return max(self.min_replicas, min(self.max_replicas, wanted))

    @classmethod
    def from_spec(cls, spec: WorkerPoolSpec) -> PoolPolicy:
        return cls(spec.min_replicas, spec.max_replicas, spec.replicas, spec.autoscaling)

    @classmethod
    def defaults(cls) -> PoolPolicy:
        return cls.from_spec(WorkerPoolSpec(stage=Stage.DEVELOPMENT))

    @classmethod
    def from_yaml(cls, path: Path) -> PoolPolicy:
        """The first WorkerPool in a (possibly multi-document) manifest file."""
        for document in yaml.safe_load_all(path.read_text()):
            if isinstance(document, dict) and document.get("kind") == "WorkerPool":
                spec: Any = document.get("spec") or {}
                return cls.from_spec(WorkerPoolSpec.model_validate(spec))
        raise ValueError(f"{path}: no WorkerPool document")

    def with_bounds(self, min_replicas: int | None, max_replicas: int | None) -> PoolPolicy:
        lo = self.min_replicas if min_replicas is None else min_replicas
        hi = self.max_replicas if max_replicas is None else max_replicas
        if lo > hi:
            raise ValueError(f"minReplicas ({lo}) exceeds maxReplicas ({hi})")
        return PoolPolicy(lo, hi, self.replicas, self.autoscaling)


@dataclass(frozen=True)
class Comparison:
    results: list[SimulationResult]
    """agentfleet, static, queue-target, in that order."""
    decisions: list[tuple[float, Decision]]
    """agentfleet's scale changes with their reasons."""
    horizon_seconds: float


def compare(
    trace: list[Arrival],
    pool: PoolPolicy,
    *,
    static_replicas: int,
    queue_target: int,
    startup_seconds: float,
    tail_seconds: float,
    rate_limit: RateLimit | None = None,
) -> Comparison:
    """Replay `trace` through the pool's policy, static provisioning and a queue-length
    target, all polled at the pool's interval and cut at the same horizon (under the same
    simulated model-API rate limit, if one is given)."""
    horizon = (trace[-1].arrival_seconds if trace else 0.0) + tail_seconds
    agentfleet = AgentfleetPolicy(
        pool.autoscaling, pool.min_replicas, pool.max_replicas, pool.start_replicas
    )
    policies: list[Policy] = [
        agentfleet,
        StaticPolicy(static_replicas),
        QueueLengthTargetPolicy(
            queue_target, pool.min_replicas, pool.max_replicas, pool.start_replicas
        ),
    ]
    results = [
        simulate(
            trace,
            policy,
            poll_seconds=pool.autoscaling.poll_interval_seconds,
            startup_seconds=startup_seconds,
            horizon_seconds=horizon,
            rate_limit=rate_limit,
        )
        for policy in policies
    ]
    return Comparison(results, agentfleet.decisions, horizon)
