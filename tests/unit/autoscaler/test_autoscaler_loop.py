"""The autoscaler loop's bookkeeping with its two adapters supplied in memory: signals from
a table (the Prometheus source is tested against the real server elsewhere) and a scaler
that keeps replicas in a dict."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest
from prometheus_client import CollectorRegistry

from agentfleet.core.api import Stage
from agentfleet.core.api.autoscaling import AutoscalingSpec
from agentfleet.core.queue import Arrival
from agentfleet.dev.localenv.waiting import async_wait_for
from agentfleet.operator.autoscaler.decision import (
    THROTTLED_WINDOW_SECONDS,
    Decision,
    Direction,
    Signals,
    Trigger,
)
from agentfleet.operator.autoscaler.loop import UNSERVED_ARRIVAL_SECONDS, AutoscalerLoop
from agentfleet.operator.autoscaler.pools import PoolKey, PoolTarget

pytestmark = pytest.mark.unit

BUSY = Signals(queue_depth=20, oldest_wait_seconds=60, utilization=0.9)
MIDDLE = Signals(queue_depth=5, oldest_wait_seconds=60, utilization=0.5)
QUIET = Signals(queue_depth=0, oldest_wait_seconds=0, utilization=0.0)


class SignalTable:
    """A MetricsSource answering from a dict; records each batch it was asked for."""

    def __init__(self) -> None:
        self.signals: dict[PoolKey, Signals] = {}
        self.batches: list[list[PoolKey]] = []
        self.failure: Exception | None = None

    async def fetch(self, pools: Sequence[PoolTarget]) -> Mapping[PoolKey, Signals]:
        self.batches.append([p.key for p in pools])
        if self.failure is not None:
            raise self.failure
        return {p.key: self.signals[p.key] for p in pools if p.key in self.signals}


class DictScaler:
    """A Scaler whose pools live in a dict; `apply` sets the replicas like a Deployment."""

    def __init__(self, *pools: PoolTarget) -> None:
        self.pools = {p.key: p for p in pools}
        self.applied: list[tuple[PoolKey, Decision]] = []
        self.broken = False

    async def list_pools(self) -> Sequence[PoolTarget]:
        return list(self.pools.values())

    async def apply(self, pool: PoolTarget, decision: Decision) -> None:
        if self.broken:
            raise RuntimeError("API server said no")
        self.applied.append((pool.key, decision))
        self.pools[pool.key] = pool.model_copy(
            update={"current_replicas": decision.desired_replicas}
        )

    def replicas(self, key: PoolKey) -> int:
        return self.pools[key].current_replicas


def make_pool(name: str, replicas: int = 2, interval: int = 15, **policy: object) -> PoolTarget:
    return PoolTarget(
        namespace="ns",
        name=name,
        stage=Stage.DEVELOPMENT,
        current_replicas=replicas,
        min_replicas=0,
        max_replicas=10,
        autoscaling=AutoscalingSpec.model_validate({"poll_interval_seconds": interval, **policy}),
    )


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"namespace": "ns", **labels})


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


async def test_one_batch_per_poll_and_each_decision_applied_and_exported(
    registry: CollectorRegistry,
) -> None:
    a, b = make_pool("a"), make_pool("b", replicas=4)
    table, scaler = SignalTable(), DictScaler(a, b)
    table.signals = {a.key: BUSY, b.key: MIDDLE}
    loop = AutoscalerLoop(table, scaler, registry=registry)

    decided = await loop.run_once(now=1000)

    assert table.batches == [[a.key, b.key]]
    assert {key: d.desired_replicas for key, d in ((p.key, d) for p, d in decided)} == {
        a.key: 4,
        b.key: 4,
    }
    assert scaler.replicas(a.key) == 4
    assert sample(registry, "agentfleet_pool_desired_replicas", pool="a") == 4
    assert sample(registry, "agentfleet_pool_current_replicas", pool="a") == 2
    assert sample(registry, "agentfleet_pool_metrics_available", pool="a") == 1
    assert (
        sample(
            registry,
            "agentfleet_scaling_decisions_total",
            pool="a",
            direction="up",
            reason="queue_depth",
        )
        == 1
    )
    assert (
        sample(
            registry,
            "agentfleet_scaling_decisions_total",
            pool="b",
            direction="none",
            reason="within_thresholds",
        )
        == 1
    )


async def test_pools_are_polled_on_the_grid_of_their_interval(registry: CollectorRegistry) -> None:
    fast, slow = make_pool("fast", interval=15), make_pool("slow", interval=60)
    table, scaler = SignalTable(), DictScaler(fast, slow)
    table.signals = {fast.key: MIDDLE, slow.key: MIDDLE}
    loop = AutoscalerLoop(table, scaler, registry=registry)

    await loop.run_once(now=1001)  # first sight: both due at once
    assert loop.next_due() == 1005
    assert await loop.run_once(now=1004) == []
    await loop.run_once(now=1005)
    await loop.run_once(now=1020)
    await loop.run_once(now=1035)
    await loop.run_once(now=1050)
    await loop.run_once(now=1080)

    # 1020 and 1080 are multiples of 60: there the slow pool joins the fast one's batch.
    assert table.batches == [
        [fast.key, slow.key],
        [fast.key],
        [fast.key, slow.key],
        [fast.key],
        [fast.key],
        [fast.key, slow.key],
    ]


async def test_the_scaler_hears_changes_and_transitions_not_every_identical_hold(
    registry: CollectorRegistry,
) -> None:
    pool = make_pool("p", interval=1)
    table, scaler = SignalTable(), DictScaler(pool)
    loop = AutoscalerLoop(table, scaler, registry=registry)

    table.signals = {pool.key: MIDDLE}
    for now in (1, 2, 3):
        await loop.run_once(now=now)
    table.signals = {pool.key: Signals.unavailable("Prometheus unreachable")}
    for now in (4, 5):
        await loop.run_once(now=now)
    table.signals = {pool.key: MIDDLE}
    await loop.run_once(now=6)

    assert [d.trigger for _, d in scaler.applied] == [
        Trigger.WITHIN_THRESHOLDS,
        Trigger.METRICS_UNAVAILABLE,
        Trigger.WITHIN_THRESHOLDS,
    ]
    assert [d.metrics_available for _, d in scaler.applied] == [True, False, True]
    hold = {"pool": "p", "direction": "none", "reason": "within_thresholds"}
    assert sample(registry, "agentfleet_scaling_decisions_total", **hold) == 4


async def test_the_scaler_hears_queue_depth_and_utilization_move_but_not_the_wait_age(
    registry: CollectorRegistry,
) -> None:
    pool = make_pool("p", interval=1)
    table, scaler = SignalTable(), DictScaler(pool)
    loop = AutoscalerLoop(table, scaler, registry=registry)

    observed = [
        Signals(queue_depth=5, oldest_wait_seconds=60, utilization=0.5),
        Signals(queue_depth=5, oldest_wait_seconds=61, utilization=0.52),  # same as shown
        Signals(queue_depth=6, oldest_wait_seconds=62, utilization=0.52),  # one more item
        Signals(queue_depth=6, oldest_wait_seconds=63, utilization=0.61),  # a tenth busier
    ]
    for now, signals in enumerate(observed, start=1):
        table.signals = {pool.key: signals}
        await loop.run_once(now=now)

    assert [d.signals for _, d in scaler.applied] == [observed[0], observed[2], observed[3]]
    assert {d.trigger for _, d in scaler.applied} == {Trigger.WITHIN_THRESHOLDS}


async def test_timers_count_from_applied_scales(registry: CollectorRegistry) -> None:
    pool = make_pool("p", interval=1, scale_down={"cooldown_seconds": 100})
    table, scaler = SignalTable(), DictScaler(pool)
    loop = AutoscalerLoop(table, scaler, registry=registry)

    table.signals = {pool.key: BUSY}
    await loop.run_once(now=1000)
    table.signals = {pool.key: QUIET}
    held = await loop.run_once(now=1050)
    released = await loop.run_once(now=1100)

    assert held[0][1].blocked_by == "cooldown"
    # Nothing waits and no worker is busy: every idle replica goes at once (min is 0).
    assert released[0][1].desired_replicas == 0
    assert [d.desired_replicas for _, d in scaler.applied] == [4, 4, 0]


async def test_a_failed_apply_is_retried_and_starts_no_timer(registry: CollectorRegistry) -> None:
    pool = make_pool("p", interval=1)
    table, scaler = SignalTable(), DictScaler(pool)
    table.signals = {pool.key: BUSY}
    loop = AutoscalerLoop(table, scaler, registry=registry)

    scaler.broken = True
    await loop.run_once(now=1000)
    assert scaler.replicas(pool.key) == 2
    assert sample(registry, "agentfleet_pool_desired_replicas", pool="p") is None

    scaler.broken = False
    # One second later: inside the 15 s stabilization had the failed scale-up counted.
    retried = await loop.run_once(now=1001)
    assert retried[0][1].desired_replicas == 4
    assert scaler.replicas(pool.key) == 4


async def test_a_failing_source_holds_every_pool_then_falls_back(
    registry: CollectorRegistry,
) -> None:
    pool = make_pool("p", interval=1, fallback={"failure_threshold": 2, "replicas": 5})
    table, scaler = SignalTable(), DictScaler(pool)
    table.failure = ConnectionError("connection refused")
    loop = AutoscalerLoop(table, scaler, registry=registry)

    first = (await loop.run_once(now=1000))[0][1]
    second = (await loop.run_once(now=1001))[0][1]

    assert first.desired_replicas == 2
    assert first.metrics_error == "metrics source failed: ConnectionError: connection refused"
    assert sample(registry, "agentfleet_pool_metrics_available", pool="p") == 0
    assert (second.trigger, second.desired_replicas) == (Trigger.FALLBACK, 5)
    assert scaler.replicas(pool.key) == 5


async def test_a_pool_missing_from_the_answer_is_unavailable(registry: CollectorRegistry) -> None:
    pool = make_pool("p")
    loop = AutoscalerLoop(SignalTable(), DictScaler(pool), registry=registry)
    decision = (await loop.run_once(now=1000))[0][1]
    assert decision.trigger is Trigger.METRICS_UNAVAILABLE
    assert decision.metrics_error == "the metrics source returned nothing for this pool"


async def test_timers_survive_a_restart_through_the_pools_status(
    registry: CollectorRegistry,
) -> None:
    pool = make_pool("p").model_copy(update={"last_scale_up_time": 990.0})
    table, scaler = SignalTable(), DictScaler(pool)
    table.signals = {pool.key: QUIET}
    fresh_loop = AutoscalerLoop(table, scaler, registry=registry)
    decision = (await fresh_loop.run_once(now=1000))[0][1]
    assert decision.blocked_by == "cooldown"


async def test_a_deleted_pool_leaves_no_series_behind(registry: CollectorRegistry) -> None:
    keep, gone = make_pool("keep"), make_pool("gone")
    table, scaler = SignalTable(), DictScaler(keep, gone)
    table.signals = {keep.key: BUSY, gone.key: BUSY}
    loop = AutoscalerLoop(table, scaler, registry=registry)
    await loop.run_once(now=1000)
    del scaler.pools[gone.key]
    await loop.run_once(now=1015)

    exported = {s.labels.get("pool") for metric in registry.collect() for s in metric.samples} - {
        None
    }
    assert exported == {"keep"}


async def test_run_polls_until_stopped(registry: CollectorRegistry) -> None:
    pool = make_pool("p", interval=1)
    table, scaler = SignalTable(), DictScaler(pool)
    table.signals = {pool.key: BUSY}
    loop = AutoscalerLoop(table, scaler, registry=registry)
    stop = asyncio.Event()
    running = asyncio.create_task(loop.run(stop, idle_seconds=0.05))

    async def polled_twice() -> bool:
        return len(table.batches) >= 2

    await async_wait_for(polled_twice, 10, "two polls of a 1 s pool")
    stop.set()
    await asyncio.wait_for(running, timeout=5)

    assert scaler.replicas(pool.key) >= 4


# ------------------------------------------------------------------ activation on arrival


def arrival(
    project: str = "web", stage: Stage = Stage.DEVELOPMENT, specialty: str = "general"
) -> Arrival:
    return Arrival(namespace="ns", project=project, stage=stage, specialty=specialty)


async def test_an_arrival_activates_a_pool_at_zero_at_once(registry: CollectorRegistry) -> None:
    cold, warm = make_pool("cold", replicas=0), make_pool("warm", replicas=2)
    other_stage = make_pool("content", replicas=0).model_copy(update={"stage": Stage.CONTENT})
    scaler = DictScaler(cold, warm, other_stage)
    loop = AutoscalerLoop(SignalTable(), scaler, registry=registry)

    decided = await loop.activate([arrival(), arrival()], now=100.0)

    assert [(pool.name, d.desired_replicas) for pool, d in decided] == [("cold", 1)]
    (_, decision), *_ = scaler.applied
    assert decision.trigger is Trigger.ACTIVATION
    assert decision.reason == (
        "an item arrived for web/development/general with no replicas (activated on arrival)"
    )
    assert scaler.replicas(warm.key) == 2 and scaler.replicas(other_stage.key) == 0
    assert sample(registry, "agentfleet_scaling_decisions_total", pool="cold",
                  direction="up", reason="activation") == 1  # fmt: skip


async def test_activation_respects_routing_and_the_rules_that_hold_scale_ups(
    registry: CollectorRegistry,
) -> None:
    tdd = make_pool("tdd", replicas=0).model_copy(update={"specialties": ("tdd",)})
    plain = make_pool("plain", replicas=0)
    shop_only = make_pool("shop", replicas=0).model_copy(update={"projects": ("shop",)})
    paused = make_pool("paused", replicas=0, paused=True)
    disabled = make_pool("disabled", replicas=0, enabled=False)
    capped = make_pool("capped", replicas=0).model_copy(update={"max_replicas": 0})
    scaler = DictScaler(tdd, plain, shop_only, paused, disabled, capped)
    loop = AutoscalerLoop(SignalTable(), scaler, registry=registry)

    # A tdd item: only the tdd pool reads that lane.
    decided = await loop.activate([arrival(specialty="tdd")], now=100.0)
    assert [pool.name for pool, _ in decided] == ["tdd"]
    # A general item for web: every development pool reads the general lane, but shop's
    # serves another project, and paused, disabled and maxReplicas 0 hold.
    decided = await loop.activate([arrival()], now=101.0)
    assert [pool.name for pool, _ in decided] == ["plain"]


async def test_an_activation_is_not_repeated_while_it_reaches_the_pool(
    registry: CollectorRegistry,
) -> None:
    pool = make_pool("cold", replicas=0)
    scaler = DictScaler(pool)
    loop = AutoscalerLoop(SignalTable(), scaler, registry=registry)
    await loop.activate([arrival()], now=100.0)
    # The operator's watch has not shown the new replica yet: the pool still reads zero.
    scaler.pools[pool.key] = pool
    assert await loop.activate([arrival()], now=102.0) == []
    # Much later (and back at zero), it activates again.
    assert len(await loop.activate([arrival()], now=200.0)) == 1


async def test_a_pool_listed_just_after_its_first_item_is_activated_when_listed(
    registry: CollectorRegistry,
) -> None:
    """A pool applied together with its first work: the arrival came before the pool was
    listed. It is activated at the first listing, not at a poll that sees the item."""
    scaler = DictScaler()
    source = SignalTable()
    loop = AutoscalerLoop(source, scaler, registry=registry)
    assert await loop.activate([arrival()], now=100.0) == []

    pool = make_pool("new", replicas=0)
    scaler.pools[pool.key] = pool
    source.signals[pool.key] = QUIET  # Prometheus has not scraped the item yet
    await loop.run_once(now=101.0)

    assert scaler.replicas(pool.key) == 1
    (_, decision), *later = scaler.applied
    assert decision.trigger is Trigger.ACTIVATION
    assert "activated on arrival" in decision.reason
    # The same pass's poll decides on the replicas the activation set, not the listing's 0.
    assert [d.current_replicas for _, d in later] == [1]


async def test_a_pool_first_listed_by_another_arrival_is_activated_for_the_earlier_one(
    registry: CollectorRegistry,
) -> None:
    scaler = DictScaler()
    loop = AutoscalerLoop(SignalTable(), scaler, registry=registry)
    await loop.activate([arrival()], now=100.0)
    pool = make_pool("new", replicas=0)
    scaler.pools[pool.key] = pool

    # An item for a lane nobody serves lists the new pool before any poll does.
    decided = await loop.activate([arrival(specialty="tdd")], now=101.0)

    assert [(p.name, d.desired_replicas) for p, d in decided] == [("new", 1)]
    assert "web/development/general" in decided[0][1].reason


async def test_an_unserved_arrival_is_forgotten_after_a_while_and_only_its_lane_counts(
    registry: CollectorRegistry,
) -> None:
    scaler = DictScaler()
    source = SignalTable()
    loop = AutoscalerLoop(source, scaler, registry=registry)
    await loop.activate([arrival(specialty="tdd"), arrival(project="shop")], now=100.0)

    # A pool for another lane (general items of web) is not activated by them...
    general = make_pool("general", replicas=0).model_copy(update={"projects": ("web",)})
    scaler.pools[general.key] = general
    source.signals[general.key] = QUIET
    await loop.run_once(now=101.0)
    assert scaler.replicas(general.key) == 0

    # ...and a pool that serves one, listed once the arrival is too old, waits for its poll.
    late = make_pool("tdd", replicas=0).model_copy(update={"specialties": ("tdd",)})
    scaler.pools[late.key] = late
    source.signals[late.key] = QUIET
    await loop.run_once(now=100.0 + UNSERVED_ARRIVAL_SECONDS)
    assert scaler.replicas(late.key) == 0


class LaggingScaler(DictScaler):
    """A DictScaler whose listing is a watch that has not caught up: applied decisions
    are recorded, and the pools listed stay as they were until `catch_up`."""

    async def apply(self, pool: PoolTarget, decision: Decision) -> None:
        if self.broken:
            raise RuntimeError("API server said no")
        self.applied.append((pool.key, decision))

    def catch_up(self, key: PoolKey, replicas: int, generation: int) -> None:
        self.pools[key] = self.pools[key].model_copy(
            update={"current_replicas": replicas, "generation": generation}
        )

    def scalings(self) -> list[tuple[int, int]]:
        return [(d.current_replicas, d.desired_replicas) for _, d in self.applied if d.changed]


async def test_a_scaling_is_not_decided_again_while_the_listing_lags(
    registry: CollectorRegistry,
) -> None:
    """In a burst the index shows a pool from before the autoscaler's own scale-up for
    several polls; deciding on it would scale (and post ScaledUp) again each poll."""
    pool = make_pool("lagging", replicas=0).model_copy(update={"generation": 1})
    table, scaler = SignalTable(), LaggingScaler(pool)
    table.signals = {pool.key: MIDDLE}
    loop = AutoscalerLoop(table, scaler, registry=registry)

    await loop.run_once(now=1000)
    await loop.run_once(now=1015)
    await loop.run_once(now=1030)
    assert scaler.scalings() == [(0, 1)]
    assert sample(registry, "agentfleet_pool_current_replicas", pool="lagging") == 1
    # Nor does an arrival activate it again once the activation hold is over.
    assert await loop.activate([arrival()], now=1100.0) == []

    # The watch catches up (generation 2 holds the scale-up); then someone scales the
    # pool by hand to 3 (generation 3), which the loop believes.
    scaler.catch_up(pool.key, replicas=1, generation=2)
    await loop.run_once(now=1045)
    scaler.catch_up(pool.key, replicas=3, generation=3)
    table.signals = {pool.key: QUIET}
    decided = await loop.run_once(now=1400)
    assert [d.current_replicas for _, d in decided] == [3]
    assert scaler.scalings() == [(0, 1), (3, 0)]


async def test_a_pool_made_again_under_the_name_is_not_taken_for_the_scaled_one(
    registry: CollectorRegistry,
) -> None:
    pool = make_pool("again", replicas=0).model_copy(update={"generation": 1, "uid": "first"})
    table, scaler = SignalTable(), LaggingScaler(pool)
    table.signals = {pool.key: MIDDLE}
    loop = AutoscalerLoop(table, scaler, registry=registry)
    await loop.run_once(now=1000)
    # Deleted and created again between two polls: generation 1 again, at zero replicas.
    scaler.pools[pool.key] = pool.model_copy(update={"uid": "second"})
    decided = await loop.run_once(now=1400)
    assert [(d.current_replicas, d.desired_replicas) for _, d in decided] == [(0, 1)]


async def test_a_failed_scaling_is_not_remembered(registry: CollectorRegistry) -> None:
    pool = make_pool("refused", replicas=0).model_copy(update={"generation": 1})
    table, scaler = SignalTable(), LaggingScaler(pool)
    table.signals = {pool.key: MIDDLE}
    loop = AutoscalerLoop(table, scaler, registry=registry)
    scaler.broken = True
    await loop.run_once(now=1000)
    scaler.broken = False
    decided = await loop.run_once(now=1015)
    assert [(d.current_replicas, d.desired_replicas) for _, d in decided] == [(0, 1)]


async def test_activation_keeps_what_the_last_poll_knew_about_the_metrics(
    registry: CollectorRegistry,
) -> None:
    pool = make_pool("cold", replicas=0)
    source, scaler = SignalTable(), DictScaler(pool)
    loop = AutoscalerLoop(source, scaler, registry=registry)
    source.failure = RuntimeError("Prometheus down")
    await loop.run_once(now=0.0)
    ((_, decision),) = await loop.activate([arrival()], now=5.0)
    assert decision.desired_replicas == 1
    assert not decision.metrics_available and decision.consecutive_failures == 1


async def test_a_rate_limit_hold_outlasts_a_poll_without_the_throttled_share(
    registry: CollectorRegistry,
) -> None:
    """A query that times out, or a worker's series that restarts, leaves one poll without
    the throttled share; the 429s it counted are still in their two-minute window, so the
    hold stays until a newer reading or the window says otherwise."""
    pool = make_pool("a", replicas=1, interval=2)
    table, scaler = SignalTable(), DictScaler(pool)
    loop = AutoscalerLoop(table, scaler, registry=registry)

    table.signals = {pool.key: BUSY.model_copy(update={"throttled_fraction": 1.0})}
    [(_, held)] = await loop.run_once(now=1000)
    assert held.trigger is Trigger.RATE_LIMITED and scaler.replicas(pool.key) == 1

    table.signals = {pool.key: BUSY}  # no throttled share this poll
    [(_, still)] = await loop.run_once(now=1002)
    assert still.trigger is Trigger.RATE_LIMITED, still.reason
    assert still.signals.throttled_fraction == 1.0
    assert scaler.replicas(pool.key) == 1

    # A newer reading wins at once: the limit cleared.
    table.signals = {pool.key: BUSY.model_copy(update={"throttled_fraction": 0.0})}
    [(_, cleared)] = await loop.run_once(now=1004)
    assert cleared.direction is Direction.UP, cleared.reason


async def test_a_remembered_throttled_share_expires_with_its_window(
    registry: CollectorRegistry,
) -> None:
    pool = make_pool("a", replicas=1, interval=2)
    table, scaler = SignalTable(), DictScaler(pool)
    loop = AutoscalerLoop(table, scaler, registry=registry)
    table.signals = {pool.key: BUSY.model_copy(update={"throttled_fraction": 1.0})}
    await loop.run_once(now=1000)

    table.signals = {pool.key: BUSY}
    [(_, inside)] = await loop.run_once(now=1000 + THROTTLED_WINDOW_SECONDS - 2)
    assert inside.trigger is Trigger.RATE_LIMITED
    [(_, after)] = await loop.run_once(now=1000 + THROTTLED_WINDOW_SECONDS)
    assert after.direction is Direction.UP, after.reason
    assert after.signals.throttled_fraction is None
