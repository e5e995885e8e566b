"""The scaling decision: one pure function from (policy, pool state, signals, now) to the
replicas a WorkerPool should run and why.

The operator's loop and the simulator both call `decide`; nothing here does I/O or reads
a clock, so every rule is unit- and property-tested on its own.

Rules, in order of precedence:

1. Autoscaling disabled or paused: hold the current replicas.
2. Outside [min, max] (someone edited the bounds or scaled by hand): move to the nearest
   bound at once; bounds are configuration, not data, so no timer holds this back.
3. ANY available signal above its scale-up threshold: add `scaleUp.step` replicas (capped
   at max). From zero replicas, the first waiting item adds exactly one ("activation").
4. A signal is missing (Prometheus unreachable, slow, or no series): never scale down.
   After `fallback.failureThreshold` consecutive polls with missing data the pool is raised
   to `fallback.replicas` if that is set and higher; otherwise it holds.
5. ALL signals below their scale-down thresholds: remove `scaleDown.step` replicas (floored
   at min, and at one while any item is still waiting, so scale-to-zero never strands
   work).
6. Anything in between: hold.

Scale-ups wait `scaleUp.stabilizationSeconds` after the last change in either direction,
scale-downs `scaleDown.cooldownSeconds`; a decision held back by a timer says so
(`blocked_by`) together with what it would have done.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentfleet.api.autoscaling import AutoscalingSpec


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
    PAUSED = "paused"
    DISABLED = "disabled"


class Signals(BaseModel):
    """What the metrics source observed for one pool; None means unavailable."""

    model_config = ConfigDict(frozen=True)

    queue_depth: float | None = Field(default=None, ge=0)
    oldest_wait_seconds: float | None = Field(default=None, ge=0)
    utilization: float | None = Field(default=None, ge=0)
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
    blocked_by: Literal["stabilization", "cooldown"] | None = None
    wanted_replicas: int
    """What the rules asked for before a timer held it back (== desired when not blocked)."""
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
    if signals.utilization is not None and signals.utilization > up.utilization_above:
        high.append(
            (
                Trigger.UTILIZATION,
                f"utilization={_fraction(signals.utilization)} > {_fraction(up.utilization_above)}",
            )
        )
    return high


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
    assert signals.queue_depth is not None
    assert signals.oldest_wait_seconds is not None
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
        assert signals.utilization is not None
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
        blocked_by: Literal["stabilization", "cooldown"] | None = None,
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

    high = _high_signals(policy, signals)
    if high:
        reason = ", ".join(text for _, text in high)
        target = min(state.max_replicas, current + policy.scale_up.step)
        if target == current:
            return result(
                current,
                Trigger.AT_MAX_REPLICAS,
                f"{reason}, but already at maxReplicas={state.max_replicas}",
            )
        return gated_up(target, high[0][0], reason)

    waiting = signals.queue_depth is not None and signals.queue_depth > 0
    if current == 0 and waiting and state.max_replicas > 0:
        assert signals.queue_depth is not None
        return gated_up(
            1,
            Trigger.ACTIVATION,
            f"queue_depth={_count(signals.queue_depth)} > 0 with no replicas",
        )

    if not available:
        cause = f"metrics unavailable ({', '.join(missing)}"
        cause += f": {signals.error})" if signals.error else ")"
        fallback = policy.fallback
        if failures >= fallback.failure_threshold and fallback.replicas is not None:
            target = min(max(fallback.replicas, state.min_replicas), state.max_replicas)
            if target > current:
                return gated_up(
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
    if not all_low:
        return result(current, Trigger.WITHIN_THRESHOLDS, f"within thresholds: {comparison}")
    floor = max(state.min_replicas, 1 if waiting else 0)
    target = max(floor, current - policy.scale_down.step)
    if target >= current:
        if current > state.min_replicas:
            return result(
                current,
                Trigger.ITEMS_WAITING,
                f"{comparison}, but items still wait: keeping {current}",
            )
        return result(
            current,
            Trigger.AT_MIN_REPLICAS,
            f"{comparison}, already at minReplicas={state.min_replicas}",
        )
    cooldown = policy.scale_down.cooldown_seconds
    if since_change < cooldown:
        return result(
            current,
            Trigger.COOLDOWN,
            f"scale-down to {target} held by cooldown "
            f"({since_change:.0f}s of {cooldown}s since the last change): {comparison}",
            blocked_by="cooldown",
            wanted=target,
        )
    return result(target, Trigger.IDLE, comparison)
