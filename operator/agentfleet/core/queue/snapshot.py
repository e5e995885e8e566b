"""A namespace's queue figures, decoded from one read of Redis (the `snapshot` script).

Both `WorkQueue.stats` (Project status) and the Prometheus collector are built on this,
so the counts people see in `kubectl get project` and in Grafana always agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentfleet.core.api import Stage
from agentfleet.core.queue.models import (
    LANES_BY_PRIORITY,
    CompletionOutcome,
    Lane,
    ProjectQueueStats,
    StageQueueStats,
)

Route = tuple[Stage, str]
"""(stage, specialty): the lanes of one stage and specialty, one per priority."""


@dataclass(frozen=True)
class LaneFigures:
    """One stream: a project's lane of one stage and specialty."""

    project: str
    stage: Stage
    specialty: str
    lane: Lane
    waiting: int
    """Not yet delivered, plus delivered to a worker that stopped heartbeating."""
    in_flight: int
    oldest_waiting_ms: int | None
    """Epoch milliseconds at which the longest-waiting item became deliverable."""


@dataclass(frozen=True)
class NamespaceSnapshot:
    namespace: str
    lanes: tuple[LaneFigures, ...] = ()
    retrying: Counter[tuple[str, Stage]] = field(default_factory=Counter)
    completed: Counter[tuple[str, Stage, CompletionOutcome]] = field(default_factory=Counter)
    held_projects: frozenset[str] = frozenset()
    enqueued: Counter[tuple[str, Stage, str]] = field(default_factory=Counter)
    """New items ever enqueued, by (project, stage, specialty): the arrivals."""
    retrying_lanes: Counter[tuple[str, Stage, str, Lane]] = field(default_factory=Counter)
    """`retrying` by the lane each item goes back to: (project, stage, specialty, lane)."""

    def projects(self) -> list[str]:
        names = {lane.project for lane in self.lanes}
        names.update(project for project, _ in self.retrying)
        names.update(project for project, _, _ in self.completed)
        return sorted(names)

    def project_stats(self, project: str) -> ProjectQueueStats:
        held = project in self.held_projects
        stages: dict[Stage, StageQueueStats] = {}

        def stage_stats(stage: Stage) -> StageQueueStats:
            return stages.setdefault(stage, StageQueueStats())

        for lane in self.lanes:
            if lane.project != project:
                continue
            stats = stage_stats(lane.stage)
            if held:
                stats.held += lane.waiting
            else:
                stats.pending += lane.waiting
            stats.in_flight += lane.in_flight
        for (name, stage), count in self.retrying.items():
            if name == project:
                stage_stats(stage).retrying += count
        for (name, stage, outcome), count in self.completed.items():
            if name != project:
                continue
            if outcome is CompletionOutcome.SUCCEEDED:
                stage_stats(stage).completed += count
            else:
                stage_stats(stage).dead_lettered += count
        return ProjectQueueStats(
            namespace=self.namespace,
            project=project,
            held=held,
            stages={stage: stages[stage] for stage in Stage if stage in stages},
        )


def parse_stream_key(base: str, key: str) -> tuple[str, Stage, str, Lane]:
    """`<base>:q:<project>:<stage>:<specialty>:<lane>` into its parts."""
    project, stage, specialty, lane = key[len(base) + len(":q:") :].split(":")
    return project, Stage(stage), specialty, Lane(lane)


def encode_routes(routes: Iterable[Route]) -> str:
    """How `WorkQueue.declare_lanes` stores a project's routes (sorted, so an unchanged
    declaration writes the same value)."""
    return ",".join(sorted({f"{stage.value} {specialty}" for stage, specialty in routes}))


def decode_routes(value: str) -> list[Route]:
    routes = []
    for part in value.split(","):
        if part:
            stage, specialty = part.split(" ")
            routes.append((Stage(stage), specialty))
    return routes


def _declared_lanes(
    declared: Sequence[str], existing: set[tuple[str, Stage, str, Lane]]
) -> list[LaneFigures]:
    """Empty figures for every declared lane that has no stream yet (never held an
    item): an idle lane reads 0, not "no data"."""
    lanes = []
    for project, value in zip(declared[::2], declared[1::2], strict=True):
        for stage, specialty in decode_routes(value):
            for lane in LANES_BY_PRIORITY:
                if (project, stage, specialty, lane) in existing:
                    continue
                lanes.append(
                    LaneFigures(
                        project=project,
                        stage=stage,
                        specialty=specialty,
                        lane=lane,
                        waiting=0,
                        in_flight=0,
                        oldest_waiting_ms=None,
                    )
                )
    return lanes


def parse_snapshot(namespace: str, base: str, raw: Sequence[Any]) -> NamespaceSnapshot:
    """Decode the `snapshot` script's reply. Lanes the operator declared for a project
    (`WorkQueue.declare_lanes`) that have no stream yet are listed with zero figures.

    A stream's undelivered count is the consumer group's `lag` when Redis knows it; after
    entries were deleted past the group's position (a priority boost moves entries out)
    Redis reports no lag, and the count is the stream length minus the pending entries,
    which holds because every acknowledged entry is deleted in the same script.
    """
    streams, retry_routes, counts, held, *rest = raw
    lanes = []
    for key, length, pending, lag, stale, oldest, oldest_stale in streams:
        project, stage, specialty, lane = parse_stream_key(base, key)
        undelivered = lag if lag >= 0 else max(length - pending, 0)
        starts = [ms for ms in (oldest, oldest_stale) if ms >= 0]
        lanes.append(
            LaneFigures(
                project=project,
                stage=stage,
                specialty=specialty,
                lane=lane,
                waiting=undelivered + stale,
                in_flight=pending - stale,
                oldest_waiting_ms=min(starts) if starts else None,
            )
        )
    seen = {(lane.project, lane.stage, lane.specialty, lane.lane) for lane in lanes}
    lanes += _declared_lanes(rest[0] if rest else [], seen)
    retrying: Counter[tuple[str, Stage]] = Counter()
    retrying_lanes: Counter[tuple[str, Stage, str, Lane]] = Counter()
    for route in retry_routes:
        project, stage, specialty, lane = route.split(" ")
        retrying[project, Stage(stage)] += 1
        retrying_lanes[project, Stage(stage), specialty, Lane(lane)] += 1
    completed: Counter[tuple[str, Stage, CompletionOutcome]] = Counter()
    enqueued: Counter[tuple[str, Stage, str]] = Counter()
    for name, value in zip(counts[::2], counts[1::2], strict=True):
        project, stage, kind, detail = name.split(" ")
        if kind == "completed":
            completed[project, Stage(stage), CompletionOutcome(detail)] += int(value)
        elif kind == "enqueued":
            enqueued[project, Stage(stage), detail] += int(value)
    return NamespaceSnapshot(
        namespace=namespace,
        lanes=tuple(lanes),
        retrying=retrying,
        completed=completed,
        held_projects=frozenset(held),
        enqueued=enqueued,
        retrying_lanes=retrying_lanes,
    )
