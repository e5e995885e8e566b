"""Decoding the snapshot script's reply into counts (Project status) and metrics."""

from __future__ import annotations

from typing import cast

import pytest
from prometheus_client.core import Metric

from agentfleet.core.api import Stage
from agentfleet.core.queue import StageQueueStats
from agentfleet.core.queue.metrics import queue_metric_families
from agentfleet.core.queue.snapshot import parse_snapshot

pytestmark = pytest.mark.unit

BASE = "agentfleet:{ns}"
NOW_MS = 1_000_000_000_000


def stream(project: str, stage: str, specialty: str, lane: str) -> str:
    return f"{BASE}:q:{project}:{stage}:{specialty}:{lane}"


RAW = [
    [
        # key, length, pending, lag, stale, oldest waiting t, oldest stale id ms
        [stream("shop", "genesis", "general", "high"), 5, 2, 3, 0, NOW_MS - 60_000, -1],
        # No lag after deletions past the group's position: length - pending is used.
        [stream("shop", "genesis", "tdd", "normal"), 4, 1, -1, 1, NOW_MS - 5_000, NOW_MS - 90_000],
        [stream("blog", "content", "general", "low"), 2, 0, 2, 0, NOW_MS - 1_000, -1],
    ],
    ["shop development general normal", "shop development general low"],
    [
        "shop genesis completed succeeded", "7",
        "shop genesis completed dead_lettered", "2",
        "blog content completed succeeded", "1",
        "shop genesis enqueued general", "12",
        "shop genesis enqueued tdd", "5",
    ],
    ["blog"],
]  # fmt: skip


def test_waiting_in_flight_and_oldest_per_lane() -> None:
    snapshot = parse_snapshot("ns", BASE, RAW)
    high, tdd, blog = snapshot.lanes
    assert (high.project, high.stage, high.specialty, high.lane.value) == (
        "shop",
        Stage.GENESIS,
        "general",
        "high",
    )
    assert (high.waiting, high.in_flight, high.oldest_waiting_ms) == (3, 2, NOW_MS - 60_000)
    # 4 entries - 1 pending = 3 undelivered, + 1 stale (its worker stopped heartbeating).
    assert (tdd.waiting, tdd.in_flight, tdd.oldest_waiting_ms) == (4, 0, NOW_MS - 90_000)
    assert blog.waiting == 2


def test_project_stats_count_every_stage() -> None:
    shop = parse_snapshot("ns", BASE, RAW).project_stats("shop")
    assert not shop.held
    assert shop.stages == {
        Stage.GENESIS: StageQueueStats(pending=7, in_flight=2, completed=7, dead_lettered=2),
        Stage.DEVELOPMENT: StageQueueStats(retrying=2),
    }
    # to_wire() is typed dict[str, object]; this is the JSON shape of ProjectQueueStats.
    wire_stages = cast("dict[str, dict[str, int]]", shop.to_wire()["stages"])
    assert wire_stages["genesis"]["inFlight"] == 2


def test_held_projects_items_are_held_not_pending() -> None:
    blog = parse_snapshot("ns", BASE, RAW).project_stats("blog")
    assert blog.held
    assert blog.stages[Stage.CONTENT] == StageQueueStats(held=2, completed=1)


def samples(families: list[Metric], name: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(sample.labels.values()): sample.value
        for family in families
        for sample in family.samples
        if sample.name == name
    }


def test_metric_families_exclude_held_items_from_depth() -> None:
    families = queue_metric_families([parse_snapshot("ns", BASE, RAW)], NOW_MS / 1000)
    depth = samples(families, "agentfleet_queue_depth")
    assert depth[("ns", "shop", "genesis", "general", "high")] == 3
    assert depth[("ns", "shop", "genesis", "tdd", "normal")] == 4
    assert depth[("ns", "blog", "content", "general", "low")] == 0
    oldest = samples(families, "agentfleet_queue_oldest_wait_seconds")
    assert oldest[("ns", "shop", "genesis", "general", "high")] == 60
    assert oldest[("ns", "shop", "genesis", "tdd", "normal")] == 90
    assert oldest[("ns", "blog", "content", "general", "low")] == 0
    assert samples(families, "agentfleet_queue_inflight") == {
        ("ns", "shop", "genesis", "general"): 2,
        ("ns", "shop", "genesis", "tdd"): 0,
        ("ns", "blog", "content", "general"): 0,
    }
    assert samples(families, "agentfleet_queue_held") == {
        ("ns", "shop", "genesis"): 0,
        ("ns", "blog", "content"): 2,
    }
    assert samples(families, "agentfleet_queue_retrying") == {("ns", "shop", "development"): 2}
    assert samples(families, "agentfleet_queue_dead_lettered_total") == {
        ("ns", "shop", "genesis"): 2
    }
    assert samples(families, "agentfleet_queue_completed_total") == {
        ("ns", "shop", "genesis", "succeeded"): 7,
        ("ns", "shop", "genesis", "dead_lettered"): 2,
        ("ns", "blog", "content", "succeeded"): 1,
    }
    # Arrivals, for the autoscaler's forecast.
    assert samples(families, "agentfleet_queue_enqueued_total") == {
        ("ns", "shop", "genesis", "general"): 12,
        ("ns", "shop", "genesis", "tdd"): 5,
    }


def test_declared_lanes_without_a_stream_read_zero() -> None:
    declared = ["shop", "genesis general,review general", "idle", "review general"]
    snapshot = parse_snapshot("ns", BASE, [*RAW, declared])
    figures = {
        (lane.project, lane.stage.value, lane.specialty, lane.lane.value): lane
        for lane in snapshot.lanes
    }
    # shop's genesis/general/high stream exists and keeps its figures; the other three
    # priorities of that route, and every review lane, are declared zeros.
    assert figures["shop", "genesis", "general", "high"].waiting == 3
    for lane in ("urgent", "normal", "low"):
        zero = figures["shop", "genesis", "general", lane]
        assert (zero.waiting, zero.in_flight, zero.oldest_waiting_ms) == (0, 0, None)
    assert {key for key in figures if key[0] == "idle"} == {
        ("idle", "review", "general", lane) for lane in ("urgent", "high", "normal", "low")
    }
    assert len(figures) == len(snapshot.lanes), "one figure per lane, no duplicates"
    families = {f.name: f for f in queue_metric_families([snapshot], NOW_MS / 1000)}
    idle = [s for s in families["agentfleet_queue_depth"].samples if s.labels["project"] == "idle"]
    assert [s.value for s in idle] == [0, 0, 0, 0]
    assert parse_snapshot("ns", BASE, RAW).project_stats("idle").stages == {}
    assert snapshot.project_stats("idle").stages == {Stage.REVIEW: StageQueueStats()}
