"""The scaling decision: one pure function from (policy, pool state, signals, now) to the
replicas a WorkerPool should run and why.

The operator's loop and the simulator both call `decide`; nothing here does I/O or reads
a clock, so every rule is unit- and property-tested on its own.

Rules, in order of precedence:

1. Autoscaling disabled or paused: hold the current replicas.
2. Outside [min, max] (someone edited the bounds or scaled by hand): move to the nearest
   bound at once; bounds are configuration, not data, so no timer holds this back.
3. ANY available signal above its scale-up threshold (utilization only while an item
   waits, by default): scale up, by `scaleUp.step` or, with `sizing: backlog` and a known
   service time, to busy + ceil(waiting x service time / drainSeconds), at least one
   more (capped at max, never below the prediction floor). From zero replicas the first
   waiting item adds exactly one ("activation").
4. The forecast floor (`prediction`): fewer replicas than the forecast work keeps busy,
   ceil(forecast arrival rate x service time), raises the pool to it; a scale-down leaves
   enough that an arriving item rarely waits (Erlang C, `waitProbability`), but not so
   many that the forecast work would leave them below the scale-down utilization.
   Rules 3 and 4 are held while the model API rate-limits the pool (`rateLimit`): more
   Pods would add cost without throughput.
5. A signal is missing (Prometheus unreachable, slow, or no series): never scale down.
   After `fallback.failureThreshold` consecutive polls with missing data the pool is raised
   to `fallback.replicas` if that is set and higher; otherwise it holds.
6. ALL signals below their scale-down thresholds: remove `scaleDown.step` replicas or, with
   `sizing: backlog`, every idle replica (never below min, what the forecast keeps, or one
   while any item is still waiting, so scale-to-zero never strands work).
7. Anything in between: hold.

Scale-ups wait `scaleUp.stabilizationSeconds` after the last change in either direction,
scale-downs `scaleDown.cooldownSeconds`; a decision held back by a timer or a rate limit
says so (`blocked_by`) together with what it would have done.

The threshold signals (queue depth, oldest wait, utilization) are required: missing, they
stop scale-downs. The others (service time, arrival rates, the rate-limit signals) only
refine a decision: absent means "no information", and the rule that needs one falls back
to the plain documented behaviour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentfleet.core.api.autoscaling import AutoscalingSpec


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"
    NONE = "none"


class Trigger(StrEnum):
    """The low-cardinality cause of a decision: the `reason` label of the decisions metric."""

    QUEUE_DEPTH = "queue_depth"
    OLDEST_WAIT = "oldest_wait"
    UTILIZATION = "utilization"
    ACTIVATION = "activation"
    IDLE = "idle"
    FALLBACK = "fallback"
    MIN_REPLICAS = "min_replicas"
    MAX_REPLICAS = "max_replicas"
    AT_MAX_REPLICAS = "at_max_replicas"
    AT_MIN_REPLICAS = "at_min_replicas"
    ITEMS_WAITING = "items_waiting"
    WITHIN_THRESHOLDS = "within_thresholds"
    STABILIZATION = "stabilization"
    COOLDOWN = "cooldown"
    METRICS_UNAVAILABLE = "metrics_unavailable"
    PREDICTION = "prediction"
    RATE_LIMITED = "rate_limited"
    PAUSED = "paused"
    DISABLED = "disabled"


Blocker = Literal["stabilization", "cooldown", "rate_limit"]


class Signals(BaseModel):
    """What the metrics source observed for one pool; None means unavailable."""

    model_config = ConfigDict(frozen=True)

    queue_depth: float | None = Field(default=None, ge=0)
    oldest_wait_seconds: float | None = Field(default=None, ge=0)
    utilization: float | None = Field(default=None, ge=0)
    service_seconds: float | None = Field(default=None, ge=0)
    """Mean seconds a worker of the pool spent per item over the prediction window."""
    arrival_rate: float | None = Field(default=None, ge=0)
    """Items per second that arrived for the pool over the prediction window."""
    seasonal_arrival_rate: float | None = Field(default=None, ge=0)
    """Items per second that arrived one prediction period ago, over the lookahead."""
    throttled_fraction: float | None = Field(default=None, ge=0, le=1)
    """Share of the pool's model calls answered 429 or 529 over the last two minutes."""
    api_headroom: float | None = Field(default=None, ge=0, le=1)
    """Lowest remaining share of the model API's rate-limit budget the workers were told."""
    error: str | None = None
    """Why a signal is missing (e.g. "Prometheus unreachable: connection refused")."""

    @classmethod
    def unavailable(cls, error: str) -> Signals:
        return cls(error=error)


class ScaleState(BaseModel):
    """What the autoscaler knows about a pool besides its metrics."""

    model_config = ConfigDict(frozen=True)

    current_replicas: int = Field(ge=0)
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=0)
    last_scale_up_time: float | None = None
    """Seconds (on the caller's clock) of the last applied scale-up; None: never."""
    last_scale_down_time: float | None = None
    consecutive_failures: int = Field(default=0, ge=0)
    """Polls in a row, before this one, in which a required signal was missing."""

    @model_validator(mode="after")
    def _bounds_ordered(self) -> ScaleState:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) exceeds maxReplicas ({self.max_replicas})"
            )
        return self

    @property
    def last_scale_time(self) -> float | None:
        times = [t for t in (self.last_scale_up_time, self.last_scale_down_time) if t is not None]
        return max(times) if times else None


class Decision(BaseModel):
    model_config = ConfigDict(frozen=True)

    current_replicas: int
    desired_replicas: int
    direction: Direction
    trigger: Trigger
    reason: str
    """Human explanation, e.g. "queue_depth=14 > 10"."""
    blocked_by: Blocker | None = None
    wanted_replicas: int
    """What the rules asked for before a timer or a rate limit held it back (== desired
    when not blocked)."""
    metrics_available: bool
    missing_signals: tuple[str, ...] = ()
    metrics_error: str | None = None
    consecutive_failures: int
    """Polls in a row, including this one, with a required signal missing."""
    signals: Signals
    """What the decision was based on (shown in the pool's status)."""

    @property
    def changed(self) -> bool:
        return self.desired_replicas != self.current_replicas

    @property
    def event_reason(self) -> str:
        """The Kubernetes Event reason (CamelCase)."""
        if self.direction is Direction.UP:
            return "ScaledUp"
        if self.direction is Direction.DOWN:
            return "ScaledDown"
        if self.blocked_by is not None:
            return "ScaleBlocked"
        return "ScaleHeld"

    @property
    def summary(self) -> str:
        """One line for an Event or a log: "ScaledUp 2→4: queue_depth=14 > 10"."""
        return f"{self.event_reason} {self.current_replicas}→{self.desired_replicas}: {self.reason}"


def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _seconds(value: float) -> str:
    return f"{value:.0f}s"


def _polls(count: int) -> str:
    return f"{count} poll" if count == 1 else f"{count} polls"


def _fraction(value: float) -> str:
    return f"{value:.2f}"


def _rate(per_second: float) -> str:
    return f"{per_second * 3600:.1f}/h"


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0:
        days = seconds // 86400
        return "1 day" if days == 1 else f"{days} days"
    if seconds % 3600 == 0:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0:
        return f"{seconds // 60}m"
    return f"{seconds}s"


def _utilization_ignored(policy: AutoscalingSpec, signals: Signals) -> bool:
    """Utilization is above its threshold, but nothing waits, so it does not count."""
    return (
        policy.scale_up.utilization_needs_backlog
        and signals.utilization is not None
        and signals.utilization > policy.scale_up.utilization_above
        and not (signals.queue_depth is not None and signals.queue_depth > 0)
    )


def _high_signals(policy: AutoscalingSpec, signals: Signals) -> list[tuple[Trigger, str]]:
    up = policy.scale_up
    high: list[tuple[Trigger, str]] = []
    if signals.queue_depth is not None and signals.queue_depth > up.queue_depth_above:
        high.append(
            (
                Trigger.QUEUE_DEPTH,
                f"queue_depth={_count(signals.queue_depth)} > {up.queue_depth_above}",
            )
        )
    if (
        signals.oldest_wait_seconds is not None
        and signals.oldest_wait_seconds > up.oldest_wait_seconds_above
    ):
        high.append(
            (
                Trigger.OLDEST_WAIT,
                f"oldest_wait={_seconds(signals.oldest_wait_seconds)}"
                f" > {_seconds(up.oldest_wait_seconds_above)}",
            )
        )
    if (
        signals.utilization is not None
        and signals.utilization > up.utilization_above
        and not _utilization_ignored(policy, signals)
    ):
        text = f"utilization={_fraction(signals.utilization)} > {_fraction(up.utilization_above)}"
        if up.utilization_needs_backlog and not high:
            if signals.queue_depth is None:
                raise ValueError("utilization needs a backlog, but queue depth is unknown")
            text += f" with {_count(signals.queue_depth)} waiting"
        high.append((Trigger.UTILIZATION, text))
    return high


def _busy(state: ScaleState, signals: Signals) -> float:
    """Busy workers: utilization is busy over current replicas (0 without replicas)."""
    if state.current_replicas == 0 or signals.utilization is None:
        return 0.0
    return min(1.0, signals.utilization) * state.current_replicas


def _scale_up_target(
    policy: AutoscalingSpec, state: ScaleState, signals: Signals
) -> tuple[int, str]:
    """Replicas a scale-up asks for (uncapped), and how they were sized ("" for a step)."""
    up = policy.scale_up
    current = state.current_replicas
    if up.sizing == "step" or signals.service_seconds is None or signals.queue_depth is None:
        return current + up.step, ""
    busy = _busy(state, signals)
    waiting = signals.queue_depth
    # The busy workers keep their items; the waiting ones need workers of their own, as many
    # as take them all within drainSeconds at the observed service time.
    need = math.ceil(busy + waiting * signals.service_seconds / up.drain_seconds - 1e-9)
    target = max(current + 1, need)
    how = (
        f"sized {_count(round(busy, 1))} busy + {_count(waiting)} waiting"
        f" x {_seconds(signals.service_seconds)} / {_seconds(up.drain_seconds)}"
        f" = {max(need, 0)}"
    )
    if need <= current:
        how += f", at least {target}"
    return target, how


def _forecast(policy: AutoscalingSpec, signals: Signals) -> tuple[float, str] | None:
    """The forecast arrival rate (items/s) and where it comes from; None: no forecast."""
    prediction = policy.prediction
    candidates: list[tuple[float, str]] = []
    if signals.arrival_rate is not None:
        candidates.append((signals.arrival_rate, f"last {_duration(prediction.window_seconds)}"))
    if prediction.period_seconds > 0 and signals.seasonal_arrival_rate is not None:
        candidates.append(
            (
                signals.seasonal_arrival_rate,
                f"next {_duration(prediction.lookahead_seconds)}"
                f" {_duration(prediction.period_seconds)} ago",
            )
        )
    if not candidates:
        return None
    return max(candidates, key=lambda candidate: candidate[0])


def erlang_c(servers: int, load: float) -> float:
    """The probability that an arriving item waits, with `servers` workers and `load`
    Erlangs of Poisson work (Erlang C); 1 when the workers cannot keep up."""
    if servers <= load:
        return 1.0
    blocking = 1.0  # Erlang B by its recursion, B(0) = 1
    for count in range(1, servers + 1):
        blocking = load * blocking / (count + load * blocking)
    return servers * blocking / (servers - load * (1 - blocking))


def servers_for(load: float, wait_probability: float, limit: int) -> int:
    """The fewest workers (at most `limit`) with which an item waits with at most
    `wait_probability`. One pass of the Erlang B recursion: linear in the answer."""
    blocking = 1.0
    servers = 0
    while servers < max(1, limit):
        servers += 1
        blocking = load * blocking / (servers + load * blocking)
        if servers > load:
            waiting = servers * blocking / (servers - load * (1 - blocking))
            if waiting <= wait_probability:
                return servers
    return servers


@dataclass(frozen=True)
class _Floor:
    """What the forecast asks of the pool."""

    raise_to: int
    """Replicas the forecast work keeps busy: ceil(load). Fewer, and the pool is raised."""
    keep: int
    """Replicas a scale-down leaves at least: enough that an item arriving at the forecast
    rate finds a worker idle but for `waitProbability` (Erlang C), yet no more than the
    fewest with which forecast work alone leaves them below scaleDown.utilizationBelow
    (0.5 workers' worth keeps 2, at 0.25, not Erlang C's 3). Above
    `raise_to`, so a forecast hovering at a whole number does not flap the pool."""
    why: str


def _prediction_floor(
    policy: AutoscalingSpec, state: ScaleState, signals: Signals
) -> _Floor | None:
    """The forecast floor (clamped to the bounds), or None without a forecast."""
    prediction = policy.prediction
    if not prediction.enabled or signals.service_seconds is None:
        return None
    forecast = _forecast(policy, signals)
    if forecast is None:
        return None
    rate, source = forecast
    load = rate * signals.service_seconds

    def bounded(replicas: float) -> int:
        return min(state.max_replicas, max(state.min_replicas, math.ceil(replicas - 1e-9)))

    limit = max(1, state.max_replicas)
    keep = servers_for(load, prediction.wait_probability, limit)
    idle_limit = policy.scale_down.utilization_below
    if idle_limit > 0:
        keep = min(keep, math.ceil(min(load / idle_limit, limit) - 1e-9))
    return _Floor(
        raise_to=bounded(load),
        keep=max(bounded(load), bounded(keep)),
        why=(
            f"forecast {_rate(rate)} ({source}) x {_seconds(signals.service_seconds)} per item"
            f" keeps {load:.1f} workers busy"
        ),
    )


THROTTLED_WINDOW_SECONDS = 120
"""The window of the throttled share: the share of model calls answered 429/529 is a rate
over these seconds in Prometheus."""


class ThrottledReading(BaseModel):
    """The last throttled share Prometheus gave for a pool, and when."""

    model_config = ConfigDict(frozen=True)

    value: float = Field(ge=0, le=1)
    read_at: float


def carry_throttled(
    signals: Signals, last: ThrottledReading | None, now: float
) -> tuple[Signals, ThrottledReading | None]:
    """Fill a missing throttled share with the last one read, while it is younger than its
    own window; return the signals to decide on and the reading to remember.

    A failed or empty query says nothing about the 429s, and the 429s a share counted stay
    in Prometheus' window for two minutes: a hold must not lapse for one poll because a
    query timed out or a Pod's series restarted. A newer reading always wins, so a limit
    that clears is seen at the first poll that reads it."""
    if signals.throttled_fraction is not None:
        return signals, ThrottledReading(value=signals.throttled_fraction, read_at=now)
    if last is None or now - last.read_at >= THROTTLED_WINDOW_SECONDS:
        return signals, None
    return signals.model_copy(update={"throttled_fraction": last.value}), last


def _rate_limited(policy: AutoscalingSpec, signals: Signals) -> str | None:
    """Why the model API is limiting the pool's throughput, or None."""
    limit = policy.rate_limit
    if not limit.enabled:
        return None
    throttled = signals.throttled_fraction
    if throttled is not None and throttled > limit.throttled_above:
        return (
            f"throttled={_fraction(throttled)} > {_fraction(limit.throttled_above)}"
            " of model calls answered 429/529"
        )
    if (
        limit.headroom_below > 0
        and signals.api_headroom is not None
        and signals.api_headroom < limit.headroom_below
    ):
        return (
            f"api_headroom={_fraction(signals.api_headroom)} < {_fraction(limit.headroom_below)}"
            " of the rate-limit budget left"
        )
    return None


def _missing_signals(state: ScaleState, signals: Signals) -> tuple[str, ...]:
    missing = []
    if signals.queue_depth is None:
        missing.append("queue_depth")
    if signals.oldest_wait_seconds is None:
        missing.append("oldest_wait")
    # With no replicas there are no workers to report, so utilization cannot be required.
    if signals.utilization is None and state.current_replicas > 0:
        missing.append("utilization")
    return tuple(missing)


def _low_summary(policy: AutoscalingSpec, signals: Signals, current: int) -> tuple[bool, str]:
    """Whether every signal is below its scale-down threshold, and the comparison text."""
    down = policy.scale_down
    if signals.queue_depth is None or signals.oldest_wait_seconds is None:
        raise ValueError("the scale-down test needs queue depth and oldest wait")
    parts = []
    all_low = True
    low = signals.queue_depth < down.queue_depth_below
    all_low &= low
    parts.append(
        f"queue_depth={_count(signals.queue_depth)} {'<' if low else '>='} {down.queue_depth_below}"
    )
    low = signals.oldest_wait_seconds < down.oldest_wait_seconds_below
    all_low &= low
    parts.append(
        f"oldest_wait={_seconds(signals.oldest_wait_seconds)} {'<' if low else '>='} "
        f"{_seconds(down.oldest_wait_seconds_below)}"
    )
    if current > 0:
        if signals.utilization is None:
            raise ValueError("the scale-down test needs utilization while replicas run")
        low = signals.utilization < down.utilization_below
        all_low &= low
        parts.append(
            f"utilization={_fraction(signals.utilization)} {'<' if low else '>='} "
            f"{_fraction(down.utilization_below)}"
        )
    return all_low, ", ".join(parts)


def decide(policy: AutoscalingSpec, state: ScaleState, signals: Signals, now: float) -> Decision:
    current = state.current_replicas
    missing = _missing_signals(state, signals)
    available = not missing
    failures = 0 if available else state.consecutive_failures + 1

    def result(
        desired: int,
        trigger: Trigger,
        reason: str,
        blocked_by: Blocker | None = None,
        wanted: int | None = None,
    ) -> Decision:
        if desired > current:
            direction = Direction.UP
        elif desired < current:
            direction = Direction.DOWN
        else:
            direction = Direction.NONE
        return Decision(
            current_replicas=current,
            desired_replicas=desired,
            direction=direction,
            trigger=trigger,
            reason=reason,
            blocked_by=blocked_by,
            wanted_replicas=desired if wanted is None else wanted,
            metrics_available=available,
            missing_signals=missing,
            metrics_error=signals.error if missing else None,
            consecutive_failures=failures,
            signals=signals,
        )

    if not policy.enabled:
        return result(current, Trigger.DISABLED, "autoscaling disabled: replicas set by hand")
    if policy.paused:
        return result(current, Trigger.PAUSED, f"autoscaling paused: holding {current}")
    if current < state.min_replicas:
        return result(
            state.min_replicas,
            Trigger.MIN_REPLICAS,
            f"replicas={current} < minReplicas={state.min_replicas}",
        )
    if current > state.max_replicas:
        return result(
            state.max_replicas,
            Trigger.MAX_REPLICAS,
            f"replicas={current} > maxReplicas={state.max_replicas}",
        )

    last_change = state.last_scale_time
    since_change = math.inf if last_change is None else now - last_change

    def gated_up(target: int, trigger: Trigger, reason: str) -> Decision:
        window = policy.scale_up.stabilization_seconds
        if since_change < window and current == 0:
            # Stabilization keeps noise from adding Pods, but an item nobody can take is not
            # noise: a pool at zero still gets its first replica (as with one waiting item).
            return result(
                1,
                Trigger.ACTIVATION,
                f"activation with no replicas; scale-up to {target} held by stabilization "
                f"({since_change:.0f}s of {window}s since the last change): {reason}",
                blocked_by="stabilization" if target > 1 else None,
                wanted=target if target > 1 else None,
            )
        if since_change < window:
            return result(
                current,
                Trigger.STABILIZATION,
                f"scale-up to {target} held by stabilization "
                f"({since_change:.0f}s of {window}s since the last change): {reason}",
                blocked_by="stabilization",
                wanted=target,
            )
        return result(target, trigger, reason)

    throttled = _rate_limited(policy, signals)

    def limited_up(target: int, trigger: Trigger, reason: str) -> Decision:
        if throttled is not None and current == 0:
            # Without a replica the pool has no throughput at all: one, and no more.
            return gated_up(
                1, trigger, f"{reason}; 1 replica only while the model API limits ({throttled})"
            )
        if throttled is not None:
            return result(
                current,
                Trigger.RATE_LIMITED,
                f"scale-up to {target} held while the model API limits the pool ({throttled}):"
                f" more Pods would add cost, not throughput; wanted for {reason}",
                blocked_by="rate_limit",
                wanted=target,
            )
        return gated_up(target, trigger, reason)

    floor = _prediction_floor(policy, state, signals)
    high = _high_signals(policy, signals)
    if high:
        reason = ", ".join(text for _, text in high)
        wanted, how = _scale_up_target(policy, state, signals)
        if how:
            reason += f"; {how}"
        trigger = high[0][0]
        if floor is not None and floor.raise_to > wanted:
            wanted = floor.raise_to
            reason += f"; prediction floor {floor.raise_to}: {floor.why}"
        target = min(state.max_replicas, wanted)
        if target <= current:
            return result(
                current,
                Trigger.AT_MAX_REPLICAS,
                f"{reason}, but already at maxReplicas={state.max_replicas}",
            )
        return limited_up(target, trigger, reason)

    waiting = signals.queue_depth is not None and signals.queue_depth > 0
    if current == 0 and waiting and state.max_replicas > 0:
        if signals.queue_depth is None:
            raise ValueError("items wait, but queue depth is unknown")
        # Held by neither a rate limit (without a replica there is no throughput at all)
        # nor stabilization (which keeps noise from adding Pods; an item nobody can take
        # is not noise). The scale-down cooldown still keeps 0 -> 1 -> 0 from flapping.
        return result(
            1,
            Trigger.ACTIVATION,
            f"queue_depth={_count(signals.queue_depth)} > 0 with no replicas",
        )

    if floor is not None and floor.raise_to > current:
        return limited_up(
            floor.raise_to,
            Trigger.PREDICTION,
            f"prediction floor {floor.raise_to} > {current}: {floor.why}",
        )

    if not available:
        cause = f"metrics unavailable ({', '.join(missing)}"
        cause += f": {signals.error})" if signals.error else ")"
        fallback = policy.fallback
        if failures >= fallback.failure_threshold and fallback.replicas is not None:
            target = min(max(fallback.replicas, state.min_replicas), state.max_replicas)
            if target > current:
                return limited_up(
                    target,
                    Trigger.FALLBACK,
                    f"{cause} for {_polls(failures)}: fallback to {target} replicas",
                )
        if failures < fallback.failure_threshold and fallback.replicas is not None:
            progress = f", poll {failures} of {fallback.failure_threshold} before fallback"
        else:
            progress = f" for {_polls(failures)}"
        return result(
            current,
            Trigger.METRICS_UNAVAILABLE,
            f"{cause}{progress}: holding {current}, never scaling down on missing data",
        )

    all_low, comparison = _low_summary(policy, signals, current)
    if _utilization_ignored(policy, signals):
        if signals.utilization is None:
            raise ValueError("utilization is ignored only when it is known")
        comparison += (
            f" (utilization={_fraction(signals.utilization)}"
            f" > {_fraction(policy.scale_up.utilization_above)} with nothing waiting:"
            " no Pod to add would have work)"
        )
    if not all_low:
        return result(current, Trigger.WITHIN_THRESHOLDS, f"within thresholds: {comparison}")
    down = policy.scale_down
    keep = max(state.min_replicas, 1 if waiting else 0)
    floor_note = ""
    if floor is not None and floor.keep > keep:
        keep = floor.keep
        floor_note = (
            f"; keeping {floor.keep} for the forecast ({floor.why}; an arriving item waits"
            f" with p <= {policy.prediction.wait_probability:g} or utilization stays"
            f" >= {_fraction(policy.scale_down.utilization_below)})"
        )
    if down.sizing == "backlog":
        target = max(keep, math.ceil(_busy(state, signals) - 1e-9))
    else:
        target = max(keep, current - down.step)
    if target >= current:
        if floor_note and keep >= current:
            return result(current, Trigger.PREDICTION, f"{comparison}{floor_note}")
        if current > state.min_replicas and waiting:
            return result(
                current,
                Trigger.ITEMS_WAITING,
                f"{comparison}, but items still wait: keeping {current}",
            )
        if current > state.min_replicas:
            return result(
                current,
                Trigger.WITHIN_THRESHOLDS,
                f"{comparison}, but no worker is idle: keeping {current}",
            )
        return result(
            current,
            Trigger.AT_MIN_REPLICAS,
            f"{comparison}, already at minReplicas={state.min_replicas}",
        )
    reason = comparison + (floor_note if target == keep and floor_note else "")
    cooldown = down.cooldown_seconds
    if since_change < cooldown:
        return result(
            current,
            Trigger.COOLDOWN,
            f"scale-down to {target} held by cooldown "
            f"({since_change:.0f}s of {cooldown}s since the last change): {reason}",
            blocked_by="cooldown",
            wanted=target,
        )
    return result(target, Trigger.IDLE, reason)


def activate_on_arrival(
    policy: AutoscalingSpec,
    state: ScaleState,
    arrival: str,
    now: float,
    previous: Decision | None = None,
) -> Decision | None:
    """Scale a pool at zero replicas to one the moment the queue reports an item for it,
    rather than at its next poll (whose metrics would not show the item until the next
    scrape either): KEDA activates on its polling interval, 30 s by default.

    The decision is `decide`'s own for "one item waiting, nothing busy", so every rule
    that holds a scale-up (disabled, paused, maxReplicas 0, stabilization) holds this one
    too; None when there is nothing to do now. What the last poll knew about the metrics'
    availability is carried over: an arrival says nothing about Prometheus. `arrival`
    names what arrived, for the reason ("web/development/general")."""
    if state.current_replicas != 0:
        return None
    seen = Signals(queue_depth=1.0, oldest_wait_seconds=0.0, utilization=0.0)
    decision = decide(policy, state, seen, now)
    if decision.trigger is not Trigger.ACTIVATION or decision.direction is not Direction.UP:
        return None
    update: dict[str, object] = {
        "reason": f"an item arrived for {arrival} with no replicas (activated on arrival)"
    }
    if previous is not None:
        update |= {
            "metrics_available": previous.metrics_available,
            "missing_signals": previous.missing_signals,
            "metrics_error": previous.metrics_error,
            "consecutive_failures": previous.consecutive_failures,
        }
    return decision.model_copy(update=update)
