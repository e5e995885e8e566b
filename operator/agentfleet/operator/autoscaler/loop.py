"""The autoscaler loop: every poll, fetch the signals of all due pools at once, decide per
pool, and hand each decision to an injected scaler.

The loop knows nothing about Kubernetes. A `Scaler` lists the pools and applies or records
decisions (the operator plugs in one that patches Deployments and writes status, Events
and conditions); a `MetricsSource` returns signals for many pools in one call
(`PrometheusSource`). Timers and the failure count live here, in memory, seeded from the
pools' status so a restarted operator keeps honouring the cooldown.

Pools are evaluated on a grid of their poll interval (every 15 s on the :00, :15, ...),
so all pools sharing an interval are fetched in the same batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from agentfleet.core.queue.models import Arrival
from agentfleet.operator.autoscaler.decision import (
    Decision,
    Direction,
    Signals,
    ThrottledReading,
    activate_on_arrival,
    carry_throttled,
    decide,
)
from agentfleet.operator.autoscaler.pools import PoolKey, PoolTarget

log = logging.getLogger(__name__)


class Scaler(Protocol):
    async def list_pools(self) -> Sequence[PoolTarget]:
        """Every autoscaled pool with its current replicas and policy."""
        ...

    async def apply(self, pool: PoolTarget, decision: Decision) -> None:
        """Set the pool to `decision.desired_replicas` and record why.

        Called when the replicas change, whenever the decision's cause, block or
        metrics availability differs from the previous poll, and when the observed queue
        depth or utilization moved (see `observed_summary`), so status, Events and the
        MetricsAvailable condition follow every transition and the status' metrics stay
        current without a write per pool per poll. Raising leaves the pool's timers
        untouched; the same decision is tried again next poll.
        """
        ...


class MetricsSource(Protocol):
    async def fetch(self, pools: Sequence[PoolTarget]) -> Mapping[PoolKey, Signals]: ...


class AutoscalerMetrics:
    """The loop's own Prometheus metrics; a registry per instance keeps tests independent."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        pool = ["namespace", "pool"]
        self.decisions = Counter(
            "agentfleet_scaling_decisions",
            "Autoscaler decisions per pool, by direction (up, down, none) and reason.",
            [*pool, "direction", "reason"],
            registry=registry,
        )
        self.desired = Gauge(
            "agentfleet_pool_desired_replicas",
            "Replicas the autoscaler last set for the pool.",
            pool,
            registry=registry,
        )
        self.current = Gauge(
            "agentfleet_pool_current_replicas",
            "Replicas the pool had when the autoscaler last evaluated it.",
            pool,
            registry=registry,
        )
        self.metrics_available = Gauge(
            "agentfleet_pool_metrics_available",
            "1 when every signal the pool's decision needs was read, 0 while it holds on "
            "missing data.",
            pool,
            registry=registry,
        )
        self.evaluation_seconds = Histogram(
            "agentfleet_autoscaler_evaluation_seconds",
            "Time to fetch signals for, decide and apply all pools due in one poll.",
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
        )


@dataclass
class _PoolMemory:
    last_scale_up_time: float | None = None
    last_scale_down_time: float | None = None
    consecutive_failures: int = 0
    last_decision: Decision | None = None
    next_due: float = 0.0
    decision_labels: set[tuple[str, str]] = field(default_factory=set)
    activated_at: float | None = None
    throttled: ThrottledReading | None = None
    scaled: tuple[int, int, str | None] | None = None
    """The replicas this loop last set, and the pool's generation and uid when it decided
    so, until the pool is seen at a later generation or as another pool (`_as_scaled`)."""


# An activation decided but not yet applied (its scale patch in flight) must not be decided
# again by a second arrival; once applied, `_PoolMemory.scaled` covers the watch's lag.
_ACTIVATION_HOLD = 10.0

UNSERVED_ARRIVAL_SECONDS = 60.0
"""How long an arrival that no listed pool serves is remembered: a pool applied together
with its first work (GitOps, a script) is listed a moment after the item arrived, and is
activated when it is, instead of at its first poll that sees the item in Prometheus."""


def _later(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _as_scaled(pool: PoolTarget, memory: _PoolMemory) -> PoolTarget:
    """The pool with the replicas this loop last set, while its listing (kopf's index, fed
    by a watch that falls behind in a burst) is of a generation from before that scaling.
    Deciding on the older replicas would decide the same scaling again, and post its Event
    again, every poll until the watch caught up. A later generation holds the scaling or
    someone else's newer change, and is believed; so is a pool with another uid (deleted
    and created again under the name between two polls)."""
    scaled = memory.scaled
    if scaled is None:
        return pool
    replicas, generation, uid = scaled
    if pool.uid != uid or (pool.generation is not None and pool.generation > generation):
        memory.scaled = None
        return pool
    if pool.current_replicas == replicas:
        return pool
    return pool.model_copy(update={"current_replicas": replicas})


def observed_summary(signals: Signals) -> tuple[int | None, float | None]:
    """The signals at the resolution the pool's status shows them: whole items and tenths
    of utilization. The oldest wait is left out: it grows every second an item waits,
    and would cost a status write per poll for every pool with work waiting."""
    depth = None if signals.queue_depth is None else round(signals.queue_depth)
    utilization = None if signals.utilization is None else round(signals.utilization, 1)
    return depth, utilization


def _worth_reporting(previous: Decision | None, decision: Decision) -> bool:
    if decision.changed or previous is None:
        return True
    return (
        previous.trigger,
        previous.blocked_by,
        previous.metrics_available,
        observed_summary(previous.signals),
    ) != (
        decision.trigger,
        decision.blocked_by,
        decision.metrics_available,
        observed_summary(decision.signals),
    )


class AutoscalerLoop:
    def __init__(
        self,
        source: MetricsSource,
        scaler: Scaler,
        *,
        registry: CollectorRegistry = REGISTRY,
        clock: Callable[[], float] = time.time,
        max_concurrent_applies: int = 16,
    ) -> None:
        self.source = source
        self.scaler = scaler
        self.metrics = AutoscalerMetrics(registry)
        self.clock = clock
        self._apply_slots = asyncio.Semaphore(max_concurrent_applies)
        self._memory: dict[PoolKey, _PoolMemory] = {}
        self._unserved: dict[Arrival, float] = {}
        """Arrivals no listed pool served, and when (see `UNSERVED_ARRIVAL_SECONDS`)."""

    def next_due(self) -> float | None:
        """When the earliest known pool is due again; None before the first poll."""
        return min((m.next_due for m in self._memory.values()), default=None)

    async def run_once(self, now: float | None = None) -> list[tuple[PoolTarget, Decision]]:
        """Evaluate every pool that is due at `now`; return what was decided for each."""
        now = self.clock() if now is None else now
        listed = await self.scaler.list_pools()
        self._forget_missing({p.key for p in listed})
        first_listed = any(p.key not in self._memory for p in listed)
        if first_listed and self._unserved and await self.activate((), now):
            listed = await self.scaler.list_pools()  # with the replicas just set
        pools = [_as_scaled(p, self._memory.setdefault(p.key, _PoolMemory())) for p in listed]
        due = [p for p in pools if now >= self._memory[p.key].next_due]
        if not due:
            return []
        with self.metrics.evaluation_seconds.time():
            try:
                signals = await self.source.fetch(due)
            except Exception as exc:  # any source failure is an outage, never a crash
                log.exception("metrics source failed")
                signals = {}
                error = f"metrics source failed: {type(exc).__name__}: {exc}"
            else:
                error = "the metrics source returned nothing for this pool"
            decided = []
            for pool in due:
                observed = signals.get(pool.key)
                if observed is None:
                    observed = Signals.unavailable(error)
                decided.append((pool, self._decide(pool, observed, now)))
            await asyncio.gather(*(self._apply(pool, decision, now) for pool, decision in decided))
        return decided

    async def activate(
        self, arrivals: Iterable[Arrival], now: float | None = None
    ) -> list[tuple[PoolTarget, Decision]]:
        """Scale the pools at zero replicas that serve one of these arrivals to one, now
        (see `activate_on_arrival`); pools with replicas wait for their poll as usual.
        Pools listed for the first time are activated for the recent arrivals that no pool
        served when they came, too."""
        now = self.clock() if now is None else now
        arrived = list(dict.fromkeys(arrivals))
        if not arrived and not self._unserved:
            return []
        pools = await self.scaler.list_pools()
        arrived = list(dict.fromkeys([*arrived, *self._take_unserved(pools, now)]))
        if not arrived:
            return []
        decided = []
        for unserved in arrived:
            if not any(pool.serves(unserved) for pool in pools):
                self._unserved[unserved] = now
        for listed in pools:
            memory = self._memory.setdefault(listed.key, _PoolMemory())
            pool = _as_scaled(listed, memory)
            if pool.current_replicas != 0:
                continue
            arrival = next((a for a in arrived if pool.serves(a)), None)
            if arrival is None:
                continue
            if memory.activated_at is not None and now - memory.activated_at < _ACTIVATION_HOLD:
                continue  # the last activation is still on its way into the pool's replicas
            state = pool.scale_state(
                last_scale_up_time=_later(memory.last_scale_up_time, pool.last_scale_up_time),
                last_scale_down_time=_later(memory.last_scale_down_time, pool.last_scale_down_time),
                consecutive_failures=memory.consecutive_failures,
            )
            what = f"{arrival.project}/{arrival.stage.value}/{arrival.specialty}"
            decision = activate_on_arrival(pool.autoscaling, state, what, now, memory.last_decision)
            if decision is None:
                continue
            memory.activated_at = now
            decided.append((pool, decision))
        await asyncio.gather(*(self._apply(pool, decision, now) for pool, decision in decided))
        return decided

    def _take_unserved(self, pools: Sequence[PoolTarget], now: float) -> list[Arrival]:
        """The recent unserved arrivals that a pool listed for the first time serves, no
        longer remembered; older ones are dropped."""
        self._unserved = {
            arrival: at
            for arrival, at in self._unserved.items()
            if now - at < UNSERVED_ARRIVAL_SECONDS
        }
        first_listed = [pool for pool in pools if pool.key not in self._memory]
        served = [a for a in self._unserved if any(pool.serves(a) for pool in first_listed)]
        for arrival in served:
            del self._unserved[arrival]
        return served

    async def run(self, stop: asyncio.Event, idle_seconds: float = 1.0) -> None:
        """Poll until `stop` is set; new pools are picked up within `idle_seconds`."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # listing pools failed; the next poll tries again
                log.exception("autoscaler poll failed")
            due = self.next_due()
            wait = idle_seconds if due is None else min(idle_seconds, due - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, wait))

    def _decide(self, pool: PoolTarget, signals: Signals, now: float) -> Decision:
        memory = self._memory[pool.key]
        state = pool.scale_state(
            last_scale_up_time=_later(memory.last_scale_up_time, pool.last_scale_up_time),
            last_scale_down_time=_later(memory.last_scale_down_time, pool.last_scale_down_time),
            consecutive_failures=memory.consecutive_failures,
        )
        interval = pool.autoscaling.poll_interval_seconds
        memory.next_due = (math.floor(now / interval) + 1) * interval
        signals, memory.throttled = carry_throttled(signals, memory.throttled, now)
        return decide(pool.autoscaling, state, signals, now)

    async def _apply(self, pool: PoolTarget, decision: Decision, now: float) -> None:
        memory = self._memory[pool.key]
        labels = {"namespace": pool.namespace, "pool": pool.name}
        self.metrics.current.labels(**labels).set(decision.current_replicas)
        self.metrics.metrics_available.labels(**labels).set(1 if decision.metrics_available else 0)
        decision_labels = (decision.direction.value, decision.trigger.value)
        self.metrics.decisions.labels(*labels.values(), *decision_labels).inc()
        memory.decision_labels.add(decision_labels)
        memory.consecutive_failures = decision.consecutive_failures

        if _worth_reporting(memory.last_decision, decision):
            try:
                async with self._apply_slots:
                    await self.scaler.apply(pool, decision)
            except Exception:
                log.exception("applying %s to %s/%s failed", decision.summary, *pool.key)
                return
            if decision.changed and pool.generation is not None:
                memory.scaled = (decision.desired_replicas, pool.generation, pool.uid)
            previous = memory.last_decision
            held_anew = decision.blocked_by is not None and (
                previous is None or previous.blocked_by != decision.blocked_by
            )
            if decision.changed or held_anew:
                log.info("%s/%s %s", pool.namespace, pool.name, decision.summary)
        memory.last_decision = decision
        if decision.direction is Direction.UP:
            memory.last_scale_up_time = now
        elif decision.direction is Direction.DOWN:
            memory.last_scale_down_time = now
        self.metrics.desired.labels(**labels).set(decision.desired_replicas)

    def _forget_missing(self, present: set[PoolKey]) -> None:
        """Drop timers and metric series of pools that no longer exist."""
        for key in [k for k in self._memory if k not in present]:
            memory = self._memory.pop(key)
            gauges = (self.metrics.desired, self.metrics.current, self.metrics.metrics_available)
            for gauge in gauges:
                with contextlib.suppress(KeyError):  # never evaluated, so never exported
                    gauge.remove(*key)
            for direction, reason in memory.decision_labels:
                self.metrics.decisions.remove(*key, direction, reason)
