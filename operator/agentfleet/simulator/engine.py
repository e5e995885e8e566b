"""Discrete-event replay of an arrival trace through one scaling policy.

The model follows the real system where it matters for scaling:

- Items wait in their project's FIFO queue; a ready, idle worker takes the oldest item of
  the next project in turn (the queue's round-robin over projects; with one project, plain
  FIFO).
- Each worker processes one item at a time (an agent session).
- A new pod is ready `startup_seconds` after the scale-up (image pull, start-up); it costs
  pod time from creation.
- A scale-down removes pods that are still starting first, then idle ones (the operator's
  pod-deletion-cost marking), and only then busy ones, which drain: they finish their
  item and exit (SIGTERM drain), so no item is lost or restarted.
- Optionally, the model API limits the fleet (`RateLimit`): it serves `sessions` agent
  sessions at full speed; with more busy workers each one progresses at sessions/busy of
  full speed, and that share of their model calls is answered 429. An item's service time
  is its work at full speed; a throttled item takes longer, and the extra time counts as
  waiting (it is waiting, inside a worker).
- The policy is asked every `poll_seconds` and sees exact values (no scrape lag); the
  utilization is busy workers over replicas wanted, as the Prometheus source reports it,
  and the history of arrivals and service times is there for the forecast.

Pod time runs until a pod is gone or the horizon; items not started by the horizon count
with the wait they had accumulated then, so a policy cannot look good by never serving.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from dataclasses import dataclass, field

from agentfleet.simulator.policies import Policy, PoolView
from agentfleet.simulator.trace import Arrival

# Same-instant events: finished work, ready pods and rate-limit changes first, so an
# arrival or a poll at that instant sees the freed capacity.
_DONE, _READY, _LIMIT, _ARRIVAL, _POLL = range(5)


@dataclass(frozen=True)
class RateLimit:
    """The model API serves `sessions` agent sessions at full speed between `start` and
    `end` (seconds of the trace); busy workers beyond that share it and are answered 429."""

    sessions: float
    start: float = 0.0
    end: float = math.inf

    def __post_init__(self) -> None:
        if self.sessions <= 0:
            raise ValueError("a rate limit serves a positive number of sessions")

    def active(self, now: float) -> bool:
        return self.start <= now < self.end

    def speed(self, now: float, busy: int) -> float:
        """The fraction of full speed each busy worker gets."""
        if busy == 0 or not self.active(now):
            return 1.0
        return min(1.0, self.sessions / busy)

    def headroom(self, now: float, busy: int) -> float:
        """The share of the API budget left, as the rate-limit headers would report it."""
        if not self.active(now):
            return 1.0
        return max(0.0, 1.0 - busy / self.sessions)


@dataclass
class _Pod:
    created: float
    ready_at: float
    ended: float | None = None
    item: int | None = None
    draining: bool = False
    remaining: float = 0.0
    """Seconds of full-speed work left on the item."""
    version: int = 0
    """Bumped whenever the item's finish time is rescheduled; stale DONE events skip."""

    def ready(self, now: float) -> bool:
        return self.ready_at <= now and self.ended is None


@dataclass(frozen=True)
class TimelinePoint:
    seconds: float
    queue_depth: int
    replicas: int
    busy: int = 0


@dataclass
class History:
    """What happened so far, for forecasts: the same figures the operator reads from
    Prometheus (arrivals from the queue, processing time from the workers)."""

    arrivals: list[float] = field(default_factory=list)
    """Arrival times, in order."""
    finished: list[float] = field(default_factory=list)
    """Finish times of items, in order."""
    elapsed: list[float] = field(default_factory=list)
    """Processing time (finish - start) of each finished item, aligned with `finished`."""

    def arrivals_between(self, start: float, end: float) -> int:
        """Arrivals in (start, end]."""
        return bisect.bisect_right(self.arrivals, end) - bisect.bisect_right(self.arrivals, start)

    def mean_service_between(self, start: float, end: float) -> float | None:
        """Mean processing time of the items finished in (start, end]; None if none."""
        lo = bisect.bisect_right(self.finished, start)
        hi = bisect.bisect_right(self.finished, end)
        if hi <= lo:
            return None
        return math.fsum(self.elapsed[lo:hi]) / (hi - lo)


@dataclass
class SimulationResult:
    policy: str
    waits: list[float]
    """Per item: time queued (start - arrival, or horizon - arrival if it never started),
    plus time held back by a rate limit while in a worker."""
    unserved: int
    completed: int
    pod_seconds: float
    scale_events: int
    peak_replicas: int
    timeline: list[TimelinePoint] = field(default_factory=list)
    starts: list[float | None] = field(default_factory=list)
    """Per trace item: when a worker took it (None: not by the horizon)."""
    finishes: list[float | None] = field(default_factory=list)
    """Per trace item: when it was done (None: not by the horizon)."""
    running_finishes: list[float | None] = field(default_factory=list)
    """Per item running at the start: when it was done."""
    horizon_seconds: float = 0.0

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
    rate_limit: RateLimit | None = None,
    running: list[Arrival] | None = None,
) -> SimulationResult:
    """Replay `trace` (sorted by arrival) through `policy`.

    `running`: items already in progress at time 0 on warm pods (their `service_seconds`
    is the work left); used by forecasts that start from an observed state. They are not
    part of the trace's waits, starts or finishes.
    """
    events: list[tuple[float, int, int, int, int]] = []
    sequence = 0

    def schedule(at: float, kind: int, subject: int = -1, version: int = 0) -> None:
        nonlocal sequence
        heapq.heappush(events, (at, kind, sequence, subject, version))
        sequence += 1

    for index, arrival in enumerate(trace):
        schedule(arrival.arrival_seconds, _ARRIVAL, index)
    schedule(0.0, _POLL)
    if rate_limit is not None:
        for boundary in (rate_limit.start, rate_limit.end):
            if 0 < boundary < math.inf:
                schedule(boundary, _LIMIT)

    # Items: the trace, then the ones running at the start.
    items = [*trace, *(running or [])]
    pods: list[_Pod] = []
    queues: dict[str, deque[int]] = {}
    turn: deque[str] = deque()
    """Projects with waiting items, in round-robin order."""
    waiting_count = 0
    started: dict[int, float] = {}
    finished: dict[int, float] = {}
    lost: dict[int, float] = {}
    """Per item: seconds its worker was held back by the rate limit."""
    history = History()
    completed = 0
    speed = 1.0
    speed_since = 0.0

    def busy_pods() -> list[_Pod]:
        return [p for p in pods if p.item is not None]

    def active() -> list[_Pod]:
        return [p for p in pods if p.ended is None and not p.draining]

    def progress(now: float) -> None:
        """Advance every busy pod's item to `now` at the current speed."""
        nonlocal speed_since
        elapsed = now - speed_since
        if elapsed > 0 and speed < 1.0:
            for pod in busy_pods():
                if pod.item is None:
                    raise RuntimeError("a busy simulated pod holds no item")
                pod.remaining = max(0.0, pod.remaining - elapsed * speed)
                lost[pod.item] = lost.get(pod.item, 0.0) + elapsed * (1.0 - speed)
        elif elapsed > 0:
            for pod in busy_pods():
                pod.remaining = max(0.0, pod.remaining - elapsed)
        speed_since = now

    def respeed(now: float) -> None:
        """After the busy count or the limit changed: new speed, new finish times."""
        nonlocal speed
        busy = busy_pods()
        new = 1.0 if rate_limit is None else rate_limit.speed(now, len(busy))
        if new == speed:
            return
        speed = new
        for number, pod in enumerate(pods):
            if pod.item is not None:
                pod.version += 1
                schedule(now + pod.remaining / speed, _DONE, number, pod.version)

    def start(pod: _Pod, number: int, index: int, now: float) -> None:
        pod.item = index
        pod.remaining = items[index].service_seconds
        pod.version += 1
        started[index] = now
        schedule(now + pod.remaining / speed, _DONE, number, pod.version)

    def enqueue(index: int) -> None:
        nonlocal waiting_count
        project = items[index].project
        queue = queues.setdefault(project, deque())
        if not queue:
            turn.append(project)
        queue.append(index)
        waiting_count += 1

    def take() -> int:
        nonlocal waiting_count
        project = turn.popleft()
        queue = queues[project]
        index = queue.popleft()
        if queue:
            turn.append(project)
        waiting_count -= 1
        return index

    def oldest_wait(now: float) -> float:
        heads = [items[queues[p][0]].arrival_seconds for p in turn]
        return now - min(heads) if heads else 0.0

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
        takers = [
            number
            for number, pod in enumerate(pods)
            if pod.ready(now) and pod.item is None and not pod.draining
        ]
        if not takers or not waiting_count:
            return
        # Bring the running items up to now before the busy count (and the speed) changes.
        progress(now)
        for number in takers[:waiting_count]:
            start(pods[number], number, take(), now)
        respeed(now)

    replicas = policy.initial_replicas()
    # Pods provisioned before the trace starts are already warm.
    scale_to(max(replicas, len(running or [])), 0.0, ready_at=0.0)
    for offset in range(len(running or [])):
        start(pods[offset], offset, len(trace) + offset, 0.0)
    if rate_limit is not None:
        respeed(0.0)
    peak = len(active())
    scale_events = 0
    timeline: list[TimelinePoint] = []

    while events and events[0][0] <= horizon_seconds:
        now, kind, _, subject, version = heapq.heappop(events)
        if kind == _DONE:
            pod = pods[subject]
            if version != pod.version or pod.item is None:
                continue  # rescheduled by a change of speed
            progress(now)
            index = pod.item
            pod.item = None
            pod.remaining = 0.0
            finished[index] = now
            if index < len(trace):
                history.finished.append(now)
                history.elapsed.append(now - started[index])
            completed += 1
            if pod.draining:
                pod.ended = now
            respeed(now)
        elif kind == _LIMIT:
            progress(now)
            respeed(now)
        elif kind == _ARRIVAL:
            enqueue(subject)
            history.arrivals.append(now)
        elif kind == _POLL:
            reporting = any(p.ready(now) for p in pods)
            busy = len(busy_pods())
            view = PoolView(
                waiting=waiting_count,
                in_progress=busy,
                oldest_wait_seconds=oldest_wait(now),
                # As the Prometheus source computes it: busy workers over replicas wanted,
                # unknown while no worker runs to report.
                utilization=min(1.0, busy / replicas) if reporting and replicas else None,
                throttled_fraction=(
                    None if rate_limit is None or busy == 0 else 1.0 - rate_limit.speed(now, busy)
                ),
                api_headroom=None if rate_limit is None else rate_limit.headroom(now, busy),
                history=history,
            )
            desired = policy.poll(now, replicas, view)
            if desired != replicas:
                scale_events += 1
                scale_to(desired, now, ready_at=now + startup_seconds)
                replicas = desired
                peak = max(peak, replicas)
            timeline.append(TimelinePoint(now, waiting_count, replicas, busy))
            schedule(now + poll_seconds, _POLL)
        dispatch(now)

    progress(horizon_seconds)
    arrived = [(i, a) for i, a in enumerate(trace) if a.arrival_seconds <= horizon_seconds]
    waits = [
        started.get(i, horizon_seconds) - a.arrival_seconds + lost.get(i, 0.0) for i, a in arrived
    ]
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
        starts=[started.get(i) for i in range(len(trace))],
        finishes=[finished.get(i) for i in range(len(trace))],
        running_finishes=[finished.get(len(trace) + k) for k in range(len(running or []))],
        horizon_seconds=horizon_seconds,
    )
