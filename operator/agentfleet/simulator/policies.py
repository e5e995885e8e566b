"""Scaling policies the simulator compares, each asked once per poll for the replicas.

- `AgentfleetPolicy` calls `agentfleet.operator.autoscaler.decide`, the function the operator runs,
  with the same policy object; only the clock is simulated.
- `StaticPolicy` is fixed provisioning.
- `QueueLengthTargetPolicy` sizes the pool the way KEDA's queue scalers do: KEDA feeds the
  queue length to the Horizontal Pod Autoscaler as an AverageValue target, so desired =
  ceil(items / target), with the HPA's default behaviour (scale up by at most 100 % or 4
  pods per period, scale down to the highest recommendation of the last 300 s) and KEDA's
  own activation from and return to zero.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.operator.autoscaler.decision import Decision, Direction, ScaleState, Signals, decide
from agentfleet.operator.autoscaler.rates import buckets, regular_rate

if TYPE_CHECKING:
    from agentfleet.simulator.engine import History


@dataclass(frozen=True)
class PoolView:
    """What a policy may observe about the simulated pool at a poll."""

    waiting: int
    in_progress: int
    oldest_wait_seconds: float
    utilization: float | None
    """Busy workers over replicas wanted; None while no worker runs to report one."""
    throttled_fraction: float | None = None
    """Share of model calls answered 429 under a simulated rate limit; None without one
    (or without a busy worker to make calls)."""
    api_headroom: float | None = None
    """Share of the simulated API budget left; None without a rate limit."""
    history: History | None = field(default=None, compare=False)
    """Arrivals and finished items so far, for forecasts (the engine's live record)."""


class Policy(Protocol):
    name: str

    def initial_replicas(self) -> int: ...

    def poll(self, now: float, replicas: int, view: PoolView) -> int:
        """The replicas the pool should run from now on."""
        ...


def observed_rates(
    spec: AutoscalingSpec, history: History | None, now: float
) -> dict[str, float | None]:
    """The forecast signals as the operator's Prometheus source computes them: the mean
    processing time and the regular arrival rate (`agentfleet.operator.autoscaler.rates`) over the
    prediction window, and the regular arrival rate over the lookahead one period ago.
    Before a whole window (or period) has been observed there is no information, not
    zero."""
    if history is None:
        return {}
    prediction = spec.prediction
    window = prediction.window_seconds

    def rate(start: float, end: float) -> float:
        count = buckets(end - start)
        width = (end - start) / count
        return regular_rate(
            [
                history.arrivals_between(start + k * width, start + (k + 1) * width)
                for k in range(count)
            ],
            width,
        )

    observed: dict[str, float | None] = {
        "service_seconds": history.mean_service_between(now - window, now),
        "arrival_rate": rate(now - window, now) if now >= window else None,
    }
    period, lookahead = prediction.period_seconds, prediction.lookahead_seconds
    if period > 0 and now >= period:
        ago = now - period
        observed["seasonal_arrival_rate"] = rate(ago, ago + min(lookahead, period))
    return observed


@dataclass
class AgentfleetPolicy:
    """The operator's decision function with its timers and failure count."""

    spec: AutoscalingSpec
    min_replicas: int
    max_replicas: int
    start_replicas: int
    name: str = "agentfleet"
    decisions: list[tuple[float, Decision]] = field(default_factory=list)
    """Every decision that changed the replicas, with its simulated time."""
    _last_up: float | None = None
    _last_down: float | None = None
    _failures: int = 0

    def initial_replicas(self) -> int:
        return self.start_replicas

    def poll(self, now: float, replicas: int, view: PoolView) -> int:
        state = ScaleState(
            current_replicas=replicas,
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            last_scale_up_time=self._last_up,
            last_scale_down_time=self._last_down,
            consecutive_failures=self._failures,
        )
        signals = Signals(
            queue_depth=view.waiting,
            oldest_wait_seconds=view.oldest_wait_seconds,
            utilization=view.utilization,
            throttled_fraction=view.throttled_fraction,
            api_headroom=view.api_headroom,
            error=None if view.utilization is not None else "no worker ready to report",
            **observed_rates(self.spec, view.history, now),
        )
        decision = decide(self.spec, state, signals, now)
        self._failures = decision.consecutive_failures
        if decision.direction is Direction.UP:
            self._last_up = now
        elif decision.direction is Direction.DOWN:
            self._last_down = now
        if decision.changed:
            self.decisions.append((now, decision))
        return decision.desired_replicas


@dataclass
class StaticPolicy:
    replicas: int
    name: str = "static"

    def initial_replicas(self) -> int:
        return self.replicas

    def poll(self, now: float, replicas: int, view: PoolView) -> int:
        return self.replicas


@dataclass
class QueueLengthTargetPolicy:
    """KEDA queue scaler + HPA defaults. `target` is items per replica, counting waiting
    and in-progress items (what a queue reports as its length while messages are unacked)."""

    target: int
    min_replicas: int
    max_replicas: int
    start_replicas: int
    scale_down_window_seconds: float = 300.0
    name: str = "queue-target"
    _recommendations: deque[tuple[float, int]] = field(default_factory=deque)

    def initial_replicas(self) -> int:
        return self.start_replicas

    def poll(self, now: float, replicas: int, view: PoolView) -> int:
        items = view.waiting + view.in_progress
        recommended = min(self.max_replicas, max(self.min_replicas, math.ceil(items / self.target)))
        self._recommendations.append((now, recommended))
        while self._recommendations[0][0] < now - self.scale_down_window_seconds:
            self._recommendations.popleft()
        if recommended > replicas:
            # KEDA activates a scaled-to-zero workload itself, then the HPA takes over.
            limit = max(replicas * 2, replicas + 4)
            return min(recommended, limit)
        return min(replicas, max(r for _, r in self._recommendations))
