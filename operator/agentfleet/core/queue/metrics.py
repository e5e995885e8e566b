"""Prometheus metrics of the queue, read from Redis at scrape time.

`QueueCollector` is registered in the operator's registry and served on its own by
`agentfleet queue-exporter`. The autoscaler's default queries use these names:

| metric | labels |
| --- | --- |
| `agentfleet_queue_depth` | namespace, project, stage, specialty, lane |
| `agentfleet_queue_oldest_wait_seconds` | namespace, project, stage, specialty, lane |
| `agentfleet_queue_inflight` | namespace, project, stage, specialty |
| `agentfleet_queue_held` | namespace, project, stage |
| `agentfleet_queue_retrying` | namespace, project, stage |
| `agentfleet_queue_dead_lettered_total` | namespace, project, stage |
| `agentfleet_queue_completed_total` | namespace, project, stage, outcome |
| `agentfleet_queue_enqueued_total` | namespace, project, stage, specialty |
| `agentfleet_queue_redis_up` | (none) |

Depth counts deliverable items only: held items (emergency stop) are in `held`, items in
backoff in `retrying`. Items of workers that stopped heartbeating count as waiting.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError

from agentfleet.core.api import Stage
from agentfleet.core.queue.clock import Clock, system_clock
from agentfleet.core.queue.models import CompletionOutcome
from agentfleet.core.queue.scripts import namespace_base, namespaces_key, script_source
from agentfleet.core.queue.snapshot import NamespaceSnapshot, parse_snapshot

log = logging.getLogger(__name__)

LANE_LABELS = ["namespace", "project", "stage", "specialty", "lane"]
SPECIALTY_LABELS = ["namespace", "project", "stage", "specialty"]
STAGE_LABELS = ["namespace", "project", "stage"]


def queue_metric_families(snapshots: Iterable[NamespaceSnapshot], now: float) -> list[Metric]:
    """The queue's metric families from snapshots taken at `now` (epoch seconds)."""
    depth = GaugeMetricFamily(
        "agentfleet_queue_depth",
        "Items waiting to be claimed (held ones excluded).",
        labels=LANE_LABELS,
    )
    oldest = GaugeMetricFamily(
        "agentfleet_queue_oldest_wait_seconds",
        "Age of the longest-waiting deliverable item (0 when none).",
        labels=LANE_LABELS,
    )
    inflight = GaugeMetricFamily(
        "agentfleet_queue_inflight",
        "Items claimed by a worker that is still heartbeating.",
        labels=SPECIALTY_LABELS,
    )
    held = GaugeMetricFamily(
        "agentfleet_queue_held",
        "Waiting items of a project on emergency stop.",
        labels=STAGE_LABELS,
    )
    retrying = GaugeMetricFamily(
        "agentfleet_queue_retrying",
        "Failed items waiting out their retry backoff.",
        labels=STAGE_LABELS,
    )
    dead_lettered = CounterMetricFamily(
        "agentfleet_queue_dead_lettered",
        "Items sent to review after exhausting retries or failing permanently.",
        labels=STAGE_LABELS,
    )
    completed = CounterMetricFamily(
        "agentfleet_queue_completed",
        "Completion records written, by outcome.",
        labels=[*STAGE_LABELS, "outcome"],
    )
    enqueued = CounterMetricFamily(
        "agentfleet_queue_enqueued",
        "New items enqueued (arrivals; retries and releases not counted).",
        labels=SPECIALTY_LABELS,
    )
    for snapshot in snapshots:
        ns = snapshot.namespace
        in_flight: defaultdict[tuple[str, Stage, str], int] = defaultdict(int)
        held_by_stage: defaultdict[tuple[str, Stage], int] = defaultdict(int)
        for lane in snapshot.lanes:
            is_held = lane.project in snapshot.held_projects
            labels = [ns, lane.project, lane.stage.value, lane.specialty, lane.lane.value]
            deliverable = 0 if is_held else lane.waiting
            depth.add_metric(labels, deliverable)
            age = 0.0
            if deliverable and lane.oldest_waiting_ms is not None:
                age = max(0.0, now - lane.oldest_waiting_ms / 1000)
            oldest.add_metric(labels, age)
            in_flight[lane.project, lane.stage, lane.specialty] += lane.in_flight
            held_by_stage[lane.project, lane.stage] += lane.waiting if is_held else 0
        for (project, stage, specialty), count in sorted(in_flight.items()):
            inflight.add_metric([ns, project, stage.value, specialty], count)
        for (project, stage), count in sorted(held_by_stage.items()):
            held.add_metric([ns, project, stage.value], count)
        for (project, stage), count in sorted(snapshot.retrying.items()):
            retrying.add_metric([ns, project, stage.value], count)
        dead: defaultdict[tuple[str, Stage], int] = defaultdict(int)
        for (project, stage, outcome), count in sorted(snapshot.completed.items()):
            completed.add_metric([ns, project, stage.value, outcome.value], count)
            if outcome is CompletionOutcome.DEAD_LETTERED:
                dead[project, stage] += count
        for (project, stage), count in sorted(dead.items()):
            dead_lettered.add_metric([ns, project, stage.value], count)
        for (project, stage, specialty), count in sorted(snapshot.enqueued.items()):
            enqueued.add_metric([ns, project, stage.value, specialty], count)
    return [depth, oldest, inflight, held, retrying, dead_lettered, completed, enqueued]


class QueueCollector(Collector):
    """Reads every (or the given) namespace's queue from Redis on each scrape.

    A Redis outage does not fail the scrape (the operator serves other metrics from the
    same registry): the queue series are absent and `agentfleet_queue_redis_up` is 0, so
    the autoscaler sees missing metrics rather than an empty queue.

    `heartbeat_timeout` and the clock must match the workers' (see `WorkQueue`).
    """

    def __init__(
        self,
        redis: Redis[str],
        prefix: str = "agentfleet",
        heartbeat_timeout: float = 300.0,
        namespaces: Sequence[str] = (),
        clock: Clock = system_clock,
    ) -> None:
        self._redis = redis
        self._prefix = prefix
        self._stale_ms = int(heartbeat_timeout * 1000)
        self._namespaces = tuple(namespaces)
        self._clock = clock
        self._snapshot = redis.register_script(script_source("snapshot"))

    def describe(self) -> Iterable[Metric]:
        # Registration must not need Redis; the names are fixed and known without it.
        return [*queue_metric_families([], 0.0), self._up(0)]

    def snapshots(self, now: datetime | None = None) -> list[NamespaceSnapshot]:
        """Every namespace's snapshot as of `now` (default: the clock's time)."""
        now_ms = int((now or self._clock()).timestamp() * 1000)
        namespaces = self._namespaces or sorted(self._redis.smembers(namespaces_key(self._prefix)))
        result = []
        for namespace in namespaces:
            base = namespace_base(self._prefix, namespace)
            raw = self._snapshot(keys=[], args=[base, self._stale_ms, now_ms])
            result.append(parse_snapshot(namespace, base, raw))
        return result

    def collect(self) -> Iterator[Metric]:
        now = self._clock()
        try:
            snapshots = self.snapshots(now)
        except (RedisError, OSError) as exc:
            log.warning("queue metrics unavailable: cannot read Redis: %s", exc)
            yield self._up(0)
            return
        yield from queue_metric_families(snapshots, now.timestamp())
        yield self._up(1)

    @staticmethod
    def _up(value: int) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "agentfleet_queue_redis_up", "1 if the last scrape could read the queue.", value=value
        )
