"""The autoscaling policy of a WorkerPool (embedded as `WorkerPoolSpec.autoscaling`).

The defaults are the documented thresholds: scale up when queue depth > 10 OR oldest wait
> 30 min OR utilization > 80 %; scale down only when queue depth < 3 AND oldest wait
< 5 min AND utilization < 30 %. The same rules are enforced twice: as CEL
(`x-kubernetes-validations`) so the API server rejects a bad policy at `kubectl apply`,
and as pydantic validators so the pure decision code and the simulator reject the same
things.

How the thresholds combine, and how far a decision moves, are options with defaults that
the simulator showed to earn their place (docs/autoscaling.md, "How the rules combine"):
utilization counts only while items wait, steps are sized from the backlog and the observed
service time, a forecast of arrivals keeps the replicas the expected work needs
(`prediction`, the seeds' `workloadPrediction`), and a rate-limited model API holds
scale-ups (`rateLimit`). Each can be switched back to the plain documented rule.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, ConfigDict, Field, JsonValue, model_validator
from pydantic.config import JsonDict

from agentfleet.core.api.base import ApiModel
from agentfleet.core.api.grammar import PROMQL_MAX_LENGTH, TEXT_PATTERN, promql_error


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

    utilization_needs_backlog: bool = True
    """Utilization above its threshold counts toward a scale-up only while at least one item
    waits. Busy workers with nothing waiting are exactly the right size, and a Pod added
    then has nothing to take. false: utilization alone scales up, as the threshold table
    reads literally."""

    sizing: Literal["backlog", "step"] = "backlog"
    """How many replicas a scale-up adds. `backlog`: enough that the waiting items are
    taken within `drainSeconds` at the pool's observed service time, on top of the busy
    workers: ceil(busy + queueDepth x serviceSeconds / drainSeconds), at least one more than
    now; while the service time is unknown, `step`. `step`: always `step`."""

    drain_seconds: int = Field(default=1800, ge=1)
    """With `sizing: backlog`, the time within which a scale-up should let the pool take
    every waiting item. The default is the oldest-wait threshold: sized this way, no item
    that waits now should cross it."""

    step: int = Field(default=2, ge=1)
    """Replicas added per scale-up decision with `sizing: step`, or while the service time
    is unknown (capped at maxReplicas). The default of 2 reaches a maximum of 10 from 1
    replica in five decisions; from zero replicas the first queued item adds exactly one."""

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

    sizing: Literal["backlog", "step"] = "backlog"
    """How many replicas a scale-down removes. `backlog`: every idle replica the forecast
    does not need, in one decision: down to the busy workers, the prediction floor, one
    while items wait, or minReplicas, whichever is highest (only idle workers go; busy ones
    are never picked on purpose). `step`: `step` replicas per decision."""

    step: int = Field(default=1, ge=1)
    """Replicas removed per scale-down decision with `sizing: step` (never below
    minReplicas)."""

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


class PredictionPolicy(ApiModel):
    """Keep the replicas that forecast work will need (the seeds' `workloadPrediction`:
    "preemptively provision capacity during peak hours").

    The forecast arrival rate is the higher of the rate observed over `windowSeconds` and
    the rate observed one `periodSeconds` ago over the next `lookaheadSeconds` (the same
    hour yesterday, by default). The forecast load is that rate times the observed service
    time: the workers forecast work keeps busy (Little's law). A pool with fewer replicas
    than ceil(load) is raised to it (reason `prediction`); a scale-down keeps enough that
    an item arriving at the forecast rate finds an idle worker but for `waitProbability`
    (Erlang C), capped where forecast work alone would leave the kept replicas below
    scaleDown.utilizationBelow. Always within minReplicas..maxReplicas."""

    enabled: bool = True
    """Raise the pool to the forecast floor and keep it there. false: react to the queue
    only."""

    window_seconds: int = Field(default=7200, ge=60)
    """Arrivals and service times observed over this window make the recent forecast.
    Longer windows move the floor less often (fewer scale events); a burst counts towards
    it until it leaves the window."""

    period_seconds: int = Field(default=86400, ge=0)
    """Seasonality: the forecast also looks at what arrived one period ago (a day, by
    default), so a pool grows before a daily peak rather than after it. 0: recent arrivals
    only."""

    lookahead_seconds: int = Field(default=3600, ge=60)
    """How far past "one period ago" the seasonal forecast looks: the rate of the
    `lookaheadSeconds` that followed the same moment one period earlier."""

    wait_probability: float = Field(default=0.05, gt=0, le=1)
    """A scale-down keeps enough replicas that an item arriving at the forecast rate has to
    wait for a worker with at most this probability (0.05: 95 % start at once, so the p95
    wait of steady traffic is zero). Higher values keep fewer warm replicas."""


class RateLimitPolicy(ApiModel):
    """Scale-ups held while the model API is rate-limiting the pool: more Pods then add
    cost without throughput. Scaling resumes by itself when the limit clears."""

    enabled: bool = True
    """Hold scale-ups while the pool is rate-limited. false: ignore rate limits."""

    throttled_above: float = Field(default=0.05, ge=0, le=1)
    """Rate-limited when more than this fraction of the pool's model calls were answered
    429 (rate limited) or 529 (overloaded) over the last two minutes."""

    headroom_below: float = Field(default=0.1, ge=0, le=1)
    """Rate-limited when less than this fraction of the API's rate-limit budget remains
    (the `anthropic-ratelimit-*-remaining` over `-limit` response headers, lowest of
    requests, input and output tokens). 0: ignore the headers."""


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

    prediction: PredictionPolicy = Field(
        default_factory=PredictionPolicy, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Forecast-driven floor: keep the replicas the expected arrivals will need."""

    rate_limit: RateLimitPolicy = Field(
        default_factory=RateLimitPolicy, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """Hold scale-ups while the model API is rate-limiting the pool."""

    queries: MetricQueries = Field(
        default_factory=MetricQueries, json_schema_extra=_EMPTY_OBJECT_DEFAULT
    )
    """PromQL overrides for the three threshold signals."""

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
