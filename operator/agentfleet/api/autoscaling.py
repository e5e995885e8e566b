"""The autoscaling policy of a WorkerPool (embedded as `WorkerPoolSpec.autoscaling`).

The defaults are the documented thresholds: scale up when queue depth > 10 OR oldest wait
> 30 min OR utilization > 80 %; scale down only when queue depth < 3 AND oldest wait
< 5 min AND utilization < 30 %. The same rules are enforced twice: as CEL
(`x-kubernetes-validations`) so the API server rejects a bad policy at `kubectl apply`,
and as pydantic validators so the pure decision code and the simulator reject the same
things.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, JsonValue, model_validator
from pydantic.config import JsonDict

from agentfleet.api.base import ApiModel
from agentfleet.api.grammar import PROMQL_MAX_LENGTH, TEXT_PATTERN, promql_error


def _parsed_promql(query: str) -> str:
    problem = promql_error(query)
    if problem is not None:
        raise ValueError(problem)
    return query


_THRESHOLD_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("queue_depth_below", "queue_depth_above", "queueDepth"),
    ("oldest_wait_seconds_below", "oldest_wait_seconds_above", "oldestWaitSeconds"),
    ("utilization_below", "utilization_above", "utilization"),
)


# An explicit `default: {}` in the schema makes the API server create the nested object and
# fill in its field defaults, so the CEL rules always see both thresholds.
_EMPTY_OBJECT_DEFAULT: JsonDict = {"default": {}}


def _threshold_rules() -> list[JsonValue]:
    """CEL rules: each scale-down threshold lies strictly below its scale-up threshold.

    Without the gap a signal could satisfy both rules at once and the pool would flap.
    """
    rules: list[JsonValue] = []
    for _, _, wire in _THRESHOLD_PAIRS:
        below, above = f"{wire}Below", f"{wire}Above"
        rules.append(
            {
                "rule": f"self.scaleDown.{below} < self.scaleUp.{above}",
                "message": f"scaleDown.{below} must be strictly below scaleUp.{above}",
                "fieldPath": f".scaleDown.{below}",
                "reason": "FieldValueInvalid",
            }
        )
    return rules


class ScaleUpRule(ApiModel):
    """When and how fast to add replicas. ANY signal above its threshold scales up."""

    queue_depth_above: int = Field(default=10, ge=0)
    """Scale up when more than this many items wait in the pool's queues."""

    oldest_wait_seconds_above: float = Field(default=1800.0, ge=0)
    """Scale up when the oldest waiting item has waited longer than this (seconds)."""

    utilization_above: float = Field(default=0.8, ge=0, le=1)
    """Scale up when the busy fraction of the pool's workers exceeds this (0..1)."""

    step: int = Field(default=2, ge=1)
    """Replicas added per scale-up decision (capped at maxReplicas). The default of 2 reaches
    a maximum of 10 from 1 replica in five decisions; from zero replicas the first queued
    item adds exactly one."""

    stabilization_seconds: int = Field(default=15, ge=0)
    """Minimum seconds since the last scale change (up or down) before scaling up again, so
    the pods just added get a chance to show in the metrics."""


class ScaleDownRule(ApiModel):
    """When and how fast to remove replicas. ALL signals must be below their thresholds."""

    queue_depth_below: int = Field(default=3, ge=0)
    """Scale down only when fewer than this many items wait."""

    oldest_wait_seconds_below: float = Field(default=300.0, ge=0)
    """Scale down only when the oldest waiting item has waited less than this (seconds)."""

    utilization_below: float = Field(default=0.3, ge=0, le=1)
    """Scale down only when the busy fraction of the pool's workers is below this (0..1)."""

    step: int = Field(default=1, ge=1)
    """Replicas removed per scale-down decision (never below minReplicas)."""

    cooldown_seconds: int = Field(default=300, ge=0)
    """Minimum seconds since the last scale change (up or down) before scaling down, so a
    burst that just ended does not shrink the pool right before the next one."""


class FallbackPolicy(ApiModel):
    """What to do while the pool's metrics cannot be read (Prometheus down, slow or empty)."""

    failure_threshold: int = Field(default=3, ge=1)
    """Consecutive polls with unavailable metrics before `replicas` applies."""

    replicas: int | None = Field(default=None, ge=0)
    """Replicas to run during a metrics outage (clamped to minReplicas..maxReplicas). It
    only ever raises the pool: the autoscaler never scales down on missing data. Unset:
    hold the current replicas."""


PromQL = Annotated[
    str,
    Field(min_length=1, max_length=PROMQL_MAX_LENGTH, pattern=TEXT_PATTERN),
    AfterValidator(_parsed_promql),
]


class MetricQueries(ApiModel):
    """PromQL overrides. Each must return a single number for this pool (an instant
    vector of one series, or a scalar); unset fields use the default query, which is
    batched across all pools. The API server checks their length and characters; the
    operator parses them (promql-parser) and reports one that is not PromQL as
    `Ready=False`, reason `InvalidSpec`, building nothing for the pool."""

    queue_depth: PromQL | None = None
    """PromQL returning the number of items waiting for this pool."""

    oldest_wait_seconds: PromQL | None = None
    """PromQL returning the age in seconds of the oldest item waiting for this pool."""

    utilization: PromQL | None = None
    """PromQL returning the busy fraction (0..1) of this pool's workers."""


class AutoscalingSpec(ApiModel):
    """Prometheus-driven autoscaling of the pool between minReplicas and maxReplicas."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _threshold_rules()})

    enabled: bool = True
    """Scale the pool from its metrics. When false, `replicas` is set by hand (for example
    `kubectl scale workerpool`)."""

    paused: bool = False
    """Hold the current replicas without evaluating metrics (like KEDA's paused annotation);
    the decisions resume where they stopped when set back to false."""

    poll_interval_seconds: int = Field(default=15, ge=1)
    """Seconds between two evaluations of the pool's metrics."""

    scale_up: ScaleUpRule = Field(
        default_factory=ScaleUpRule, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Thresholds, step and stabilization for adding replicas."""

    scale_down: ScaleDownRule = Field(
        default_factory=ScaleDownRule, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Thresholds, step and cooldown for removing replicas."""

    fallback: FallbackPolicy = Field(
        default_factory=FallbackPolicy, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Behaviour while metrics are unavailable."""

    queries: MetricQueries = Field(
        default_factory=MetricQueries, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """PromQL overrides for the three signals."""

    @model_validator(mode="after")
    def _down_thresholds_below_up(self) -> AutoscalingSpec:
        for below, above, wire in _THRESHOLD_PAIRS:
            low: Any = getattr(self.scale_down, below)
            high: Any = getattr(self.scale_up, above)
            if not low < high:
                raise ValueError(
                    f"scaleDown.{wire}Below ({low}) must be strictly below "
                    f"scaleUp.{wire}Above ({high})"
                )
        return self
