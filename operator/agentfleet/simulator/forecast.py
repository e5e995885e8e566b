"""When will each Project's queued work be done: at the pool's current capacity and at its
maximum, from observed arrival and service rates, by running the simulator's engine.

`forecast` is the pure function (`agentfleet forecast` feeds it what the queue and the
workers report); `replay` checks it on a trace: it replays the trace through a pool's
policy up to a moment, forecasts from what had been observed by then, and measures what
the simulation then does at that capacity.

The forecast simulates the pool's queue, not a formula: the items queued now (each
Project's in arrival order, Projects taken in turn), the items in progress (with the
residual of a lognormal service time, as an observer arriving at a random moment sees
it), and new arrivals as a Poisson stream at the observed rate, with lognormal service
times around the observed mean. It runs `runs` seeded samples and reports the median, so
the same observations always give the same forecast. Two figures per Project:

- `done`: the work queued or running now is finished;
- `drained`: nothing of the Project waits any more, arrivals meanwhile included (None
  when the arrivals outrun the capacity and the queue does not empty within the horizon).
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.operator.autoscaler.rates import buckets, regular_rate
from agentfleet.simulator.engine import RateLimit, SimulationResult, simulate
from agentfleet.simulator.policies import AgentfleetPolicy, Policy, PoolView, StaticPolicy
from agentfleet.simulator.trace import Arrival

SERVICE_SPREAD = 0.6
"""Sigma of the lognormal service times (the trace generators' spread)."""
MAX_HORIZON_SECONDS = 7 * 86400.0
MIN_SERVICE_SAMPLES = 20
"""`observe` averages at least this many processing times when the pool has finished that
many items: fewer give a mean too noisy to forecast from (lognormal, sigma 0.6)."""


@dataclass(frozen=True)
class ProjectLoad:
    """What is observed about one Project's work for a pool."""

    project: str
    queued: int
    """Items waiting now."""
    in_progress: int
    """Items a worker holds now."""
    arrival_rate: float
    """Items per second arriving (observed over a window)."""
    service_seconds: float
    """Mean seconds a worker spends per item (observed over a window)."""
    service_samples: int | None = None
    """How many finished items the service time is the mean of (None: not known)."""


@dataclass(frozen=True)
class Drain:
    replicas: int
    done_seconds: float | None
    """Until the work queued or running now is finished (median of the samples); None:
    not within the horizon."""
    drained_seconds: float | None
    """Until nothing of the Project waits (median); None: not within the horizon."""
    done_range: tuple[float, float] | None = None
    """10th and 90th percentile of `done_seconds` over the samples: how much the service
    times of the items themselves can move it (not the error of the observed rates)."""


@dataclass(frozen=True)
class ProjectForecast:
    project: str
    load: ProjectLoad
    current: Drain
    maximum: Drain


@dataclass
class _ScaleAt:
    """Starts at `start` warm replicas and asks for `target` at the first poll."""

    start: int
    target: int
    name: str = "forecast"

    def initial_replicas(self) -> int:
        return self.start

    def poll(self, now: float, replicas: int, view: PoolView) -> int:
        return self.target


def _lognormal(rng: random.Random, mean: float, length_biased: bool = False) -> float:
    mu = math.log(mean) - SERVICE_SPREAD**2 / 2
    if length_biased:
        # An item in progress is more likely a long one (the inspection paradox): the
        # length-biased lognormal is lognormal(mu + sigma^2, sigma).
        mu += SERVICE_SPREAD**2
    return rng.lognormvariate(mu, SERVICE_SPREAD)


def _horizon(loads: Sequence[ProjectLoad], replicas: int, startup_seconds: float) -> float:
    """Long enough for the work there is now to be done several times over: a Project
    shares the pool with the others' arrivals, and a queue fed faster than it is served
    never empties, which no horizon would change."""
    work = sum((load.queued + load.in_progress) * load.service_seconds for load in loads)
    offered = sum(load.arrival_rate * load.service_seconds for load in loads)
    spare = max(replicas - offered, replicas / 4)
    return min(MAX_HORIZON_SECONDS, startup_seconds + 3 * work / spare + 3 * 3600)


def _first_empty(queued: int, arrivals: list[float], starts: list[float]) -> float | None:
    """The first moment nothing waits, from `queued` waiting at 0, arrivals and starts."""
    if queued == 0:
        return 0.0
    events = sorted([(t, 0) for t in starts] + [(t, 1) for t in arrivals])
    waiting = queued
    for seconds, kind in events:
        waiting += 1 if kind else -1
        if waiting == 0:
            return seconds
    return None


def _median(values: list[float | None]) -> float | None:
    ordered = sorted(math.inf if value is None else value for value in values)
    middle = statistics.median(ordered)
    return None if math.isinf(middle) else middle


def _spread(values: list[float | None]) -> tuple[float, float] | None:
    ordered = sorted(math.inf if value is None else value for value in values)
    low = ordered[int(0.1 * (len(ordered) - 1))]
    high = ordered[math.ceil(0.9 * (len(ordered) - 1))]
    return None if math.isinf(high) else (low, high)


def _sample(
    loads: Sequence[ProjectLoad],
    policy: Policy,
    rng: random.Random,
    *,
    horizon: float,
    startup_seconds: float,
    poll_seconds: float,
    rate_limit: RateLimit | None,
) -> dict[str, tuple[float | None, float | None]]:
    trace: list[Arrival] = []
    running: list[Arrival] = []
    for load in loads:
        for _ in range(load.in_progress):
            residual = rng.random() * _lognormal(rng, load.service_seconds, length_biased=True)
            running.append(Arrival(0.0, max(residual, 1e-3), load.project))
        trace.extend(
            Arrival(0.0, _lognormal(rng, load.service_seconds), load.project)
            for _ in range(load.queued)
        )
        if load.arrival_rate > 0:
            t = rng.expovariate(load.arrival_rate)
            while t < horizon:
                trace.append(Arrival(t, _lognormal(rng, load.service_seconds), load.project))
                t += rng.expovariate(load.arrival_rate)
    # Stable by arrival time: the queued items (all at 0) keep their Project's order.
    trace.sort(key=lambda item: item.arrival_seconds)
    result = simulate(
        trace,
        policy,
        poll_seconds=poll_seconds,
        startup_seconds=startup_seconds,
        horizon_seconds=horizon,
        rate_limit=rate_limit,
        running=running,
    )
    figures: dict[str, tuple[float | None, float | None]] = {}
    for load in loads:
        mine = [i for i, item in enumerate(trace) if item.project == load.project]
        now_items = [i for i in mine if trace[i].arrival_seconds == 0.0]
        finishes = [result.finishes[i] for i in now_items] + [
            result.running_finishes[k]
            for k, item in enumerate(running)
            if item.project == load.project
        ]
        done = (
            None
            if any(f is None for f in finishes)
            else max((f or 0.0 for f in finishes), default=0.0)
        )
        later = [trace[i].arrival_seconds for i in mine if trace[i].arrival_seconds > 0]
        starts = [s for i in mine if (s := result.starts[i]) is not None]
        figures[load.project] = (done, _first_empty(load.queued, later, starts))
    return figures


def forecast(
    loads: Sequence[ProjectLoad],
    *,
    replicas: int,
    max_replicas: int,
    startup_seconds: float = 60.0,
    poll_seconds: float = 15.0,
    runs: int = 25,
    seed: int = 1,
    rate_limit: RateLimit | None = None,
) -> list[ProjectForecast]:
    """Per Project: when its queued work is done and its queue empty, with the pool held at
    `replicas`, and with the pool raised to `max_replicas` now (the new Pods take work
    after `startup_seconds`). A pool at zero replicas is forecast with one."""
    if not loads:
        return []
    current = max(replicas, 1)
    maximum = max(max_replicas, current)

    def drains(target: int) -> dict[str, Drain]:
        rng = random.Random(seed)
        horizon = _horizon(loads, target, startup_seconds)
        samples = [
            _sample(
                loads,
                _ScaleAt(current, target),
                rng,
                horizon=horizon,
                startup_seconds=startup_seconds,
                poll_seconds=poll_seconds,
                rate_limit=rate_limit,
            )
            for _ in range(runs)
        ]
        return {
            load.project: Drain(
                target,
                _median([sample[load.project][0] for sample in samples]),
                _median([sample[load.project][1] for sample in samples]),
                _spread([sample[load.project][0] for sample in samples]),
            )
            for load in loads
        }

    at_current, at_maximum = drains(current), drains(maximum)
    return [
        ProjectForecast(load.project, load, at_current[load.project], at_maximum[load.project])
        for load in loads
    ]


# ------------------------------------------------------------------ replaying a trace


@dataclass
class _Hold:
    """The pool's own policy until `at`; then `after(replicas)` replicas for good."""

    inner: Policy
    at: float
    after: Callable[[int], int]
    name: str = "replay"
    held: int | None = None

    def initial_replicas(self) -> int:
        return self.inner.initial_replicas()

    def poll(self, now: float, replicas: int, view: PoolView) -> int:
        if now < self.at:
            return self.inner.poll(now, replicas, view)
        if self.held is None:
            self.held = self.after(replicas)
        return self.held


@dataclass(frozen=True)
class Replay:
    at_seconds: float
    replicas: int
    """Replicas the pool's policy had at `at_seconds`."""
    forecasts: list[ProjectForecast]
    measured_current: dict[str, Drain]
    """What the simulation did with the pool held at `replicas` from then on."""
    measured_maximum: dict[str, Drain]
    """What it did with the pool raised to maxReplicas then."""


def observe(
    trace: Sequence[Arrival],
    result: SimulationResult,
    at: float,
    window_seconds: float,
    service_window_seconds: float = 86400.0,
) -> list[ProjectLoad]:
    """Per Project, what the queue and the workers would have reported at `at`: items
    waiting and in progress, the regular arrival rate over the window (quarter hours, a
    burst damped: `agentfleet.operator.autoscaler.rates`; a burst already queued is not
    extrapolated into the future), and the mean processing time of the items finished
    over the service window (a day: the mean of a lognormal needs many items; or of the
    last `MIN_SERVICE_SAMPLES` finished, if the window has fewer)."""
    start = max(0.0, at - window_seconds)
    service_start = max(0.0, at - service_window_seconds)
    count = buckets(at - start) if at > start else 1
    width = max(at - start, 1.0) / count
    finished = sorted(
        (finish, finish - began, trace[i].project)
        for i in range(len(trace))
        if (finish := result.finishes[i]) is not None
        and (began := result.starts[i]) is not None
        and finish <= at
    )

    def service(project: str | None) -> list[float]:
        mine = [(f, e) for f, e, p in finished if project is None or p == project]
        recent = [e for f, e in mine if f > service_start]
        if len(recent) >= MIN_SERVICE_SAMPLES:
            return recent
        return [e for _, e in mine[-MIN_SERVICE_SAMPLES:]]

    loads = []
    for project in sorted({item.project for item in trace if item.arrival_seconds <= at}):
        mine = [i for i, item in enumerate(trace) if item.project == project]
        counts = [0] * count
        queued = in_progress = 0
        for i in mine:
            arrival, began, finish = trace[i].arrival_seconds, result.starts[i], result.finishes[i]
            if arrival > at:
                continue
            if at - arrival < count * width:
                counts[int((at - arrival) // width)] += 1
            if began is None or began > at:
                queued += 1
            elif finish is None or finish > at:
                in_progress += 1
        elapsed = service(project)
        if len(elapsed) < MIN_SERVICE_SAMPLES:
            elapsed = service(None)  # the pool's items: one service rate for all Projects
        if not elapsed:
            continue  # nothing finished yet: no service rate to forecast from
        rate = regular_rate(counts, width)
        loads.append(
            ProjectLoad(project, queued, in_progress, rate, statistics.fmean(elapsed), len(elapsed))
        )
    return loads


def _measured(
    trace: Sequence[Arrival], result: SimulationResult, at: float, project: str, replicas: int
) -> Drain:
    mine = [i for i, item in enumerate(trace) if item.project == project]
    present = [
        i
        for i in mine
        if trace[i].arrival_seconds <= at
        and ((finish := result.finishes[i]) is None or finish > at)
    ]
    finishes = [result.finishes[i] for i in present]
    done = (
        None
        if any(f is None for f in finishes)
        else max((f - at for f in finishes if f is not None), default=0.0)
    )
    queued = sum(1 for i in present if (began := result.starts[i]) is None or began > at)
    later = [trace[i].arrival_seconds - at for i in mine if trace[i].arrival_seconds > at]
    starts = [began - at for i in mine if (began := result.starts[i]) is not None and began > at]
    return Drain(replicas, done, _first_empty(queued, later, starts))


def replay(
    trace: list[Arrival],
    spec: AutoscalingSpec,
    *,
    min_replicas: int,
    max_replicas: int,
    start_replicas: int,
    at_seconds: float,
    startup_seconds: float = 60.0,
    rate_limit: RateLimit | None = None,
    fixed_replicas: int | None = None,
    runs: int = 25,
    seed: int = 1,
) -> Replay:
    """Replay `trace` through the pool's policy to `at_seconds`, forecast from what was
    observed then, and measure the drain with the pool held at its replicas and raised to
    its maximum from that moment. `fixed_replicas`: the pool ran that many replicas
    without autoscaling until then (`autoscaling.enabled: false`)."""
    horizon = (trace[-1].arrival_seconds if trace else 0.0) + 86400.0

    def run(after: Callable[[int], int]) -> tuple[SimulationResult, _Hold]:
        inner: Policy = (
            AgentfleetPolicy(spec, min_replicas, max_replicas, start_replicas)
            if fixed_replicas is None
            else StaticPolicy(fixed_replicas)
        )
        policy = _Hold(inner, at_seconds, after)
        result = simulate(
            trace,
            policy,
            poll_seconds=spec.poll_interval_seconds,
            startup_seconds=startup_seconds,
            horizon_seconds=horizon,
            rate_limit=rate_limit,
        )
        return result, policy

    held, held_policy = run(lambda replicas: replicas)
    raised, _ = run(lambda replicas: max(replicas, max_replicas))
    replicas = held_policy.held if held_policy.held is not None else start_replicas
    loads = observe(trace, held, at_seconds, spec.prediction.window_seconds)
    forecasts = forecast(
        loads,
        replicas=replicas,
        max_replicas=max_replicas,
        startup_seconds=startup_seconds,
        poll_seconds=spec.poll_interval_seconds,
        runs=runs,
        seed=seed,
        rate_limit=rate_limit,
    )
    return Replay(
        at_seconds,
        replicas,
        forecasts,
        {
            load.project: _measured(trace, held, at_seconds, load.project, replicas)
            for load in loads
        },
        {
            load.project: _measured(trace, raised, at_seconds, load.project, max_replicas)
            for load in loads
        },
    )
