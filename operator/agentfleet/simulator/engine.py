"""Discrete-event replay of an arrival trace through one scaling policy.

The model follows the real system where it matters for scaling:

- Items wait in one FIFO queue; a ready, idle worker takes the oldest.
- Each worker processes one item at a time (an agent session).
- A new pod is ready `startup_seconds` after the scale-up (image pull, start-up); it costs
  pod time from creation.
- A scale-down removes pods that are still starting first, then idle ones (the operator's
  pod-deletion-cost marking), and only then busy ones, which drain: they finish their
  item and exit (SIGTERM drain), so no item is lost or restarted.
- The policy is asked every `poll_seconds` and sees exact values (no scrape lag); the
  utilization is busy workers over replicas wanted, as the Prometheus source reports it.

Pod time runs until a pod is gone or the horizon; items not started by the horizon count
with the wait they had accumulated then, so a policy cannot look good by never serving.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from dataclasses import dataclass, field

from agentfleet.simulator.policies import Policy, PoolView
from agentfleet.simulator.trace import Arrival

# Same-instant events: finished work and ready pods first, so an arrival or a poll at
# that instant sees the freed capacity.
_DONE, _READY, _ARRIVAL, _POLL = range(4)


@dataclass
class _Pod:
    created: float
    ready_at: float
    ended: float | None = None
    item: int | None = None
    draining: bool = False

    def ready(self, now: float) -> bool:
        return self.ready_at <= now and self.ended is None


@dataclass(frozen=True)
class TimelinePoint:
    seconds: float
    queue_depth: int
    replicas: int


@dataclass
class SimulationResult:
    policy: str
    waits: list[float]
    """Per item: start - arrival, or horizon - arrival if it never started."""
    unserved: int
    completed: int
    pod_seconds: float
    scale_events: int
    peak_replicas: int
    timeline: list[TimelinePoint] = field(default_factory=list)

    def wait_percentile(self, fraction: float) -> float:
        """Nearest-rank percentile of the waits (0 for an empty trace)."""
        if not self.waits:
            return 0.0
        ordered = sorted(self.waits)
        return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]

    @property
    def p50_wait(self) -> float:
        return self.wait_percentile(0.50)

    @property
    def p95_wait(self) -> float:
        return self.wait_percentile(0.95)

    @property
    def max_wait(self) -> float:
        return max(self.waits, default=0.0)

    @property
    def pod_hours(self) -> float:
        return self.pod_seconds / 3600


def simulate(
    trace: list[Arrival],
    policy: Policy,
    *,
    poll_seconds: float,
    startup_seconds: float,
    horizon_seconds: float,
) -> SimulationResult:
    events: list[tuple[float, int, int, int]] = []
    sequence = 0

    def schedule(at: float, kind: int, subject: int = -1) -> None:
        nonlocal sequence
        heapq.heappush(events, (at, kind, sequence, subject))
        sequence += 1

    for index, arrival in enumerate(trace):
        schedule(arrival.arrival_seconds, _ARRIVAL, index)
    schedule(0.0, _POLL)

    pods: list[_Pod] = []
    waiting: deque[int] = deque()
    started: dict[int, float] = {}
    completed = 0

    def active() -> list[_Pod]:
        return [p for p in pods if p.ended is None and not p.draining]

    def scale_to(replicas: int, now: float, ready_at: float) -> None:
        current = active()
        for _ in range(replicas - len(current)):
            pods.append(_Pod(created=now, ready_at=ready_at))
            schedule(ready_at, _READY)
        surplus = len(current) - replicas
        if surplus <= 0:
            return
        starting = [p for p in current if p.ready_at > now]
        idle = [p for p in current if p.ready_at <= now and p.item is None]
        busy = [p for p in current if p.item is not None]
        for pod in [*reversed(starting), *idle, *reversed(busy)][:surplus]:
            if pod.item is None:
                pod.ended = now
            else:
                pod.draining = True

    def dispatch(now: float) -> None:
        for number, pod in enumerate(pods):
            if not waiting:
                return
            if pod.ready(now) and pod.item is None and not pod.draining:
                index = waiting.popleft()
                pod.item = index
                started[index] = now
                schedule(now + trace[index].service_seconds, _DONE, number)

    replicas = policy.initial_replicas()
    # Pods provisioned before the trace starts are already warm.
    scale_to(replicas, 0.0, ready_at=0.0)
    peak = replicas
    scale_events = 0
    timeline: list[TimelinePoint] = []

    while events and events[0][0] <= horizon_seconds:
        now, kind, _, subject = heapq.heappop(events)
        if kind == _DONE:
            pod = pods[subject]
            pod.item = None
            completed += 1
            if pod.draining:
                pod.ended = now
        elif kind == _ARRIVAL:
            waiting.append(subject)
        elif kind == _POLL:
            reporting = any(p.ready(now) for p in pods)
            busy = sum(1 for p in pods if p.item is not None)
            view = PoolView(
                waiting=len(waiting),
                in_progress=busy,
                oldest_wait_seconds=now - trace[waiting[0]].arrival_seconds if waiting else 0.0,
                # As the Prometheus source computes it: busy workers over replicas wanted,
                # unknown while no worker runs to report.
                utilization=min(1.0, busy / replicas) if reporting and replicas else None,
            )
            desired = policy.poll(now, replicas, view)
            if desired != replicas:
                scale_events += 1
                scale_to(desired, now, ready_at=now + startup_seconds)
                replicas = desired
                peak = max(peak, replicas)
            timeline.append(TimelinePoint(now, len(waiting), replicas))
            schedule(now + poll_seconds, _POLL)
        dispatch(now)

    arrived = [(i, a) for i, a in enumerate(trace) if a.arrival_seconds <= horizon_seconds]
    waits = [started.get(i, horizon_seconds) - a.arrival_seconds for i, a in arrived]
    pod_seconds = sum((horizon_seconds if p.ended is None else p.ended) - p.created for p in pods)
    return SimulationResult(
        policy=policy.name,
        waits=waits,
        unserved=sum(1 for i, _ in arrived if i not in started),
        completed=completed,
        pod_seconds=pod_seconds,
        scale_events=scale_events,
        peak_replicas=peak,
        timeline=timeline,
    )
