"""Every queue rule against a real Redis: lanes, routing, reclaim, retries, dead-letter,
exactly-once completion, transitions, boost and emergency stop.

Heartbeat timeouts and backoffs pass on the test's `ManualClock` (see conftest.py), not in
real time; only waiting for work (blocking claims) takes real time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from functools import partial

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.queue import (
    Arrival,
    Claim,
    CompletionOutcome,
    FailOutcome,
    Lane,
    ManualClock,
    RetryPolicy,
    StageQueueStats,
    Subscription,
    WorkItem,
    WorkQueue,
)
from agentfleet.dev.localenv import RedisServer
from agentfleet.dev.localenv.waiting import async_wait_for

pytestmark = pytest.mark.integration

NAMESPACE = "team-a"

QueueFactory = Callable[..., WorkQueue]


def item(
    item_id: str, project: str = "shop", stage: Stage = Stage.GENESIS, **fields: object
) -> WorkItem:
    return WorkItem.model_validate(
        {"id": item_id, "namespace": NAMESPACE, "project": project, "stage": stage, **fields}
    )


def subscription(
    consumer: str = "pod-1", stage: Stage = Stage.GENESIS, **fields: object
) -> Subscription:
    return Subscription.model_validate(
        {"namespace": NAMESPACE, "stage": stage, "consumer": consumer, **fields}
    )


async def drain(queue: WorkQueue, sub: Subscription) -> list[str]:
    """Claim and complete until nothing is left; the ids in the order they came."""
    ids = []
    while (claim := await queue.claim(sub)) is not None:
        ids.append(claim.item.id)
        await queue.complete(claim, follow_ups=[])
    return ids


async def reclaim(queue: WorkQueue, clock: ManualClock, sub: Subscription) -> Claim:
    """Let the heartbeat timeout pass in silence; the next claim takes the item over."""
    clock.advance(queue.heartbeat_timeout)
    claim = await queue.claim(sub)
    assert claim is not None, f"{sub.consumer} should have reclaimed an item"
    return claim


async def come_due(queue: WorkQueue, clock: ManualClock, sub: Subscription) -> Claim:
    """Let the longest backoff pass; the next claim takes the retried item."""
    clock.advance(queue.retry_policy.max_delay_seconds)
    claim = await queue.claim(sub)
    assert claim is not None, f"{sub.consumer} should have claimed the retried item"
    return claim


# ------------------------------------------------------------------------ lanes & routing


async def test_lanes_are_read_highest_first_and_in_order_within_a_lane(queue: WorkQueue) -> None:
    await queue.enqueue(
        item("low-1", lane=Lane.LOW),
        item("normal-1"),
        item("high-1", lane=Lane.HIGH),
        item("urgent-1", lane=Lane.URGENT),
        item("normal-2"),
        item("high-2", lane=Lane.HIGH),
    )
    assert await drain(queue, subscription()) == [
        "urgent-1",
        "high-1",
        "high-2",
        "normal-1",
        "normal-2",
        "low-1",
    ]


async def test_specialty_lanes_come_first_and_general_is_the_fallback(queue: WorkQueue) -> None:
    await queue.enqueue(
        item("general-urgent", lane=Lane.URGENT),
        item("tdd-low", specialty="tdd", lane=Lane.LOW),
        item("ml-normal", specialty="ai-ml"),
    )
    tdd_pool = subscription("tdd-pod", specialties=("tdd",))
    general_pool = subscription("general-pod")
    assert await drain(queue, general_pool) == ["general-urgent"]
    assert await drain(queue, tdd_pool) == ["tdd-low"]
    await queue.enqueue(item("general-2"), item("tdd-2", specialty="tdd", lane=Lane.LOW))
    assert await drain(queue, tdd_pool) == ["tdd-2", "general-2"]
    assert await queue.claim(general_pool) is None
    ml = await queue.claim(subscription("ml-pod", specialties=("ai-ml",)))
    assert ml is not None
    assert ml.item.id == "ml-normal"


async def test_items_reach_only_workers_of_their_stage(queue: WorkQueue) -> None:
    await queue.enqueue(item("dev-1", stage=Stage.DEVELOPMENT), item("gen-1"))
    assert await drain(queue, subscription(stage=Stage.CONTENT)) == []
    assert await drain(queue, subscription(stage=Stage.DEVELOPMENT)) == ["dev-1"]
    assert await drain(queue, subscription(stage=Stage.GENESIS)) == ["gen-1"]


async def test_a_pool_can_serve_selected_projects_or_all_of_them(queue: WorkQueue) -> None:
    await queue.enqueue(item("shop-1", project="shop"), item("blog-1", project="blog"))
    assert await drain(queue, subscription("shop-pod", projects=("shop",))) == ["shop-1"]
    await queue.enqueue(item("new-1", project="brand-new"))
    assert sorted(await drain(queue, subscription("any-pod"))) == ["blog-1", "new-1"]


async def test_a_worker_takes_the_projects_of_a_lane_in_turn(queue: WorkQueue) -> None:
    await queue.enqueue(
        *[item(f"{project}-{n}", project=project) for n in range(3) for project in ("a", "b", "c")]
    )
    projects = []
    for _ in range(6):
        claim = await queue.claim(subscription())
        assert claim is not None
        projects.append(claim.item.project)
    assert sorted(projects[:3]) == ["a", "b", "c"]
    assert projects[3:] == projects[:3]


def blocked_clients(queue: WorkQueue) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        clients: int = (await queue.redis.info("clients"))["blocked_clients"]
        return clients

    return count


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """For tests that count blocked clients: nobody else's may block on this server."""
    with RedisServer() as server:
        yield server


async def test_a_waiting_claim_gets_an_item_as_soon_as_it_is_enqueued(
    make_queue: QueueFactory, private_redis: RedisServer
) -> None:
    queue = make_queue(private_redis.url)
    await queue.enqueue(item("first"))
    first = await queue.claim(subscription())
    assert first is not None
    waiting = asyncio.create_task(queue.claim(subscription(), wait=30))
    await async_wait_for(blocked_clients(queue), 5, "the claim to block waiting for work")
    await queue.enqueue(item("wanted"))
    claim = await asyncio.wait_for(waiting, 30)
    assert claim is not None
    assert claim.item.id == "wanted"
    assert claim.wait_seconds >= 0


async def test_a_new_item_wakes_only_the_worker_that_has_waited_longest(
    make_queue: QueueFactory, private_redis: RedisServer
) -> None:
    # Waiting claims re-block every poll interval, which reorders them; 5 s keeps the
    # order of this test's three waits.
    queue = make_queue(private_redis.url, poll_interval=5.0)
    await queue.enqueue(item("first"))
    assert await queue.claim(subscription()) is not None
    waiting = {}
    for n, name in enumerate(("idle-longest", "idle-2", "idle-3"), start=1):
        waiting[name] = asyncio.create_task(queue.claim(subscription(name), wait=1.5))
        await async_wait_for(partial(_at_least, blocked_clients(queue), n), 5, f"{name} to block")
    await queue.enqueue(item("wanted"))
    results = {name: await task for name, task in waiting.items()}
    assert {name: claim.item.id for name, claim in results.items() if claim} == {
        "idle-longest": "wanted"
    }


async def _at_least(count: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await count() >= expected


# ------------------------------------------------------------------------- idempotency


async def test_an_id_is_stored_once_whether_waiting_in_flight_or_completed(
    queue: WorkQueue,
) -> None:
    assert await queue.enqueue(item("gh-1"), item("gh-1", lane=Lane.URGENT)) == ["gh-1"]
    assert await queue.enqueue(item("gh-1")) == []
    claim = await queue.claim(subscription())
    assert claim is not None
    assert await queue.enqueue(item("gh-1")) == []
    await queue.complete(claim, follow_ups=[])
    assert await queue.enqueue(item("gh-1")) == []
    assert await queue.claim(subscription()) is None
    stats = await queue.stats(NAMESPACE, "shop")
    assert stats.stages[Stage.GENESIS] == StageQueueStats(completed=1)


# ------------------------------------------------------------------ heartbeats & reclaim


async def test_an_item_whose_worker_went_silent_is_reclaimed_by_another(
    fast_queue: WorkQueue, clock: ManualClock
) -> None:
    await fast_queue.enqueue(item("gh-1"))
    first = await fast_queue.claim(subscription("pod-a"))
    assert first is not None
    assert await fast_queue.claim(subscription("pod-b")) is None
    clock.advance(0.9)  # not yet silent for the 1 s heartbeat timeout
    assert await fast_queue.claim(subscription("pod-b")) is None
    stats = await fast_queue.stats(NAMESPACE, "shop")
    assert stats.stages[Stage.GENESIS] == StageQueueStats(in_flight=1)

    clock.advance(0.1)
    stats = await fast_queue.stats(NAMESPACE, "shop")
    assert stats.stages[Stage.GENESIS] == StageQueueStats(pending=1)
    second = await fast_queue.claim(subscription("pod-b"))
    assert second is not None
    assert second.item.id == "gh-1"
    assert second.reclaimed
    assert second.item.attempts == 2
    assert not await fast_queue.heartbeat(first)
    assert await fast_queue.heartbeat(second)
    assert (await fast_queue.fail(first, "late failure")).outcome is FailOutcome.STALE
    assert not await fast_queue.release(first)
    assert (await fast_queue.complete(second)).recorded


async def test_an_entry_a_dead_worker_read_but_never_accepted_is_reclaimed(
    fast_queue: WorkQueue, clock: ManualClock
) -> None:
    """A waiting worker's blocking XREADGROUP takes an entry outside any script; if the
    worker dies (or loses the reply) before accepting it, the entry has no lease, yet it
    is taken over once silent for the heartbeat timeout, like any other claim."""
    await fast_queue.enqueue(item("gh-1"))
    stream = f"{fast_queue.prefix}:{{{NAMESPACE}}}:q:shop:genesis:general:normal"
    assert await fast_queue.redis.xreadgroup("genesis", "ghost", {stream: ">"}, count=1)
    assert await fast_queue.claim(subscription("pod-b")) is None
    stats = await fast_queue.stats(NAMESPACE, "shop")
    assert stats.stages[Stage.GENESIS] == StageQueueStats(in_flight=1)

    clock.advance(fast_queue.heartbeat_timeout)
    stats = await fast_queue.stats(NAMESPACE, "shop")
    assert stats.stages[Stage.GENESIS] == StageQueueStats(pending=1)
    taken = await fast_queue.claim(subscription("pod-b"))
    assert taken is not None
    assert (taken.item.id, taken.item.attempts, taken.reclaimed) == ("gh-1", 1, True)
    assert (await fast_queue.complete(taken, follow_ups=[])).recorded


async def test_heartbeats_keep_an_item_with_its_worker(
    fast_queue: WorkQueue, clock: ManualClock
) -> None:
    await fast_queue.enqueue(item("long-job"))
    claim = await fast_queue.claim(subscription("pod-a"))
    assert claim is not None
    # Each round lets 0.6 s pass (well inside the 1 s timeout) and another worker look for
    # work, then heartbeats; over eight rounds the claim outlives the timeout four times.
    for _ in range(8):
        clock.advance(0.6)
        assert await fast_queue.claim(subscription("pod-b")) is None
        assert await fast_queue.heartbeat(claim)
    assert (await fast_queue.complete(claim)).recorded


async def test_a_released_item_is_delivered_again_at_once_without_using_an_attempt(
    queue: WorkQueue,
) -> None:
    await queue.enqueue(item("gh-1"), item("gh-2"))
    claim = await queue.claim(subscription("pod-a"))
    assert claim is not None
    assert claim.item.id == "gh-1"
    assert await queue.release(claim)
    again = await queue.claim(subscription("pod-b"))
    assert again is not None
    assert (again.item.id, again.item.attempts, again.reclaimed) == ("gh-1", 1, True)


async def test_holders_name_the_workers_with_items_in_flight(queue: WorkQueue) -> None:
    """What the autoscaler reads before a scale-down to keep busy Pods (deletion cost)."""
    await queue.enqueue(item("gh-1"), item("gh-2"), item("gh-3", stage=Stage.REVIEW))
    assert await queue.holders(NAMESPACE) == {}
    first = await queue.claim(subscription("pod-a"))
    second = await queue.claim(subscription("pod-a"))
    review = await queue.claim(subscription("pod-r", stage=Stage.REVIEW))
    assert first is not None and second is not None and review is not None
    assert await queue.holders(NAMESPACE) == {"pod-a": 2, "pod-r": 1}
    await queue.complete(first, follow_ups=[])
    assert await queue.release(second)
    # Handed back: held by nobody until the next claim (not by the pseudo-consumer).
    assert await queue.holders(NAMESPACE) == {"pod-r": 1}
    await queue.fail(review, "boom", retryable=True)
    assert await queue.holders(NAMESPACE) == {}


# -------------------------------------------------------------- retries & dead-letter


async def test_a_failure_is_retried_after_a_jittered_exponential_backoff(
    make_queue: QueueFactory, clock: ManualClock
) -> None:
    queue = make_queue(
        retry_policy=RetryPolicy(base_delay_seconds=60, max_delay_seconds=600), clock=clock
    )
    await queue.enqueue(item("gh-1"))
    claim = await queue.claim(subscription())
    assert claim is not None
    failed_at = clock()
    result = await queue.fail(claim, "rate limited")
    assert result.outcome is FailOutcome.RETRY_SCHEDULED
    assert result.retry_at is not None
    assert failed_at + timedelta(seconds=30) <= result.retry_at <= failed_at + timedelta(seconds=60)
    assert await queue.claim(subscription()) is None
    stats = await queue.stats(NAMESPACE, "shop")
    assert stats.stages[Stage.GENESIS] == StageQueueStats(retrying=1)
    waiting = await queue.get(NAMESPACE, "gh-1")
    assert waiting is not None
    assert (waiting.attempts, waiting.last_error) == (1, "rate limited")

    # Due at `retry_at`, not a millisecond before.
    clock.advance((result.retry_at - clock()).total_seconds() - 0.001)
    assert await queue.claim(subscription()) is None
    clock.advance(0.001)
    again = await queue.claim(subscription())
    assert again is not None
    assert (again.item.id, again.item.attempts) == ("gh-1", 2)


async def test_retries_run_out_and_the_item_goes_to_review_with_its_error(
    queue: WorkQueue, clock: ManualClock
) -> None:
    await queue.enqueue(item("gh-1", stage=Stage.DEVELOPMENT, specialty="tdd", payload={"n": 1}))
    dev = subscription(stage=Stage.DEVELOPMENT, specialties=("tdd",))
    outcomes = []
    for attempt in (1, 2, 3):
        claim = await come_due(queue, clock, dev)
        assert claim.item.attempts == attempt
        outcomes.append((await queue.fail(claim, f"tests failed ({attempt})")).outcome)
    assert outcomes == [FailOutcome.RETRY_SCHEDULED] * 2 + [FailOutcome.DEAD_LETTERED]

    record = await queue.completion(NAMESPACE, "gh-1")
    assert record is not None
    assert (record.outcome, record.error, record.follow_ups) == (
        CompletionOutcome.DEAD_LETTERED,
        "tests failed (3)",
        ("gh-1/review",),
    )
    review = await queue.claim(subscription(stage=Stage.REVIEW))
    assert review is not None
    assert review.item.id == "gh-1/review"
    assert review.item.payload["n"] == 1
    assert review.item.payload["dead_letter"]["error"] == "tests failed (3)"
    assert review.item.payload["dead_letter"]["attempts"] == 3
    assert review.item.trace[-1].outcome == "dead_lettered"
    stats = await queue.stats(NAMESPACE, "shop")
    assert stats.stages[Stage.DEVELOPMENT] == StageQueueStats(dead_lettered=1)
    assert stats.stages[Stage.REVIEW] == StageQueueStats(in_flight=1)


async def test_a_permanent_failure_goes_to_review_at_once(queue: WorkQueue) -> None:
    await queue.enqueue(item("gh-1"))
    claim = await queue.claim(subscription())
    assert claim is not None
    result = await queue.fail(claim, "issue has no description", retryable=False)
    assert (result.outcome, result.review_item_id) == (FailOutcome.DEAD_LETTERED, "gh-1/review")


async def test_review_work_that_fails_for_good_is_parked(queue: WorkQueue) -> None:
    await queue.enqueue(item("r-1", stage=Stage.REVIEW))
    claim = await queue.claim(subscription(stage=Stage.REVIEW))
    assert claim is not None
    result = await queue.fail(claim, "cannot review", retryable=False)
    assert (result.outcome, result.review_item_id) == (FailOutcome.DEAD_LETTERED, None)
    assert (await queue.parked(NAMESPACE))["r-1"]["id"] == "r-1"


async def test_a_poison_item_that_kills_its_workers_does_not_block_its_lane(
    fast_queue: WorkQueue, clock: ManualClock
) -> None:
    await fast_queue.enqueue(item("poison", lane=Lane.URGENT))
    claim = await fast_queue.claim(subscription("doomed-1"))
    assert claim is not None
    assert (claim.item.id, claim.item.attempts) == ("poison", 1)
    for attempt in (2, 3):
        # Each claimant dies (never heartbeats or settles) with the poison item in hand.
        claim = await reclaim(fast_queue, clock, subscription(f"doomed-{attempt}"))
        assert (claim.item.id, claim.item.attempts) == ("poison", attempt)
    assert await _pending(fast_queue, Stage.GENESIS) == 0
    clock.advance(fast_queue.heartbeat_timeout)  # the third claimant is given up on
    assert await _pending(fast_queue, Stage.GENESIS) == 1
    await fast_queue.enqueue(item("healthy"))
    survivor = await fast_queue.claim(subscription("survivor"))
    assert survivor is not None
    assert survivor.item.id == "healthy"
    record = await fast_queue.completion(NAMESPACE, "poison")
    assert record is not None
    assert record.outcome is CompletionOutcome.DEAD_LETTERED
    assert "stopped heartbeating" in (record.error or "")
    review = await fast_queue.get(NAMESPACE, "poison/review")
    assert review is not None
    assert review.payload["dead_letter"]["attempts"] == 3


async def test_an_unreadable_item_is_parked_and_the_lane_moves_on(queue: WorkQueue) -> None:
    await queue.enqueue(item("corrupt", lane=Lane.URGENT), item("fine"))
    await queue.redis.hset(f"{queue.prefix}:{{{NAMESPACE}}}:items", "corrupt", '{"id": 1}')
    claim = await queue.claim(subscription())
    assert claim is not None
    assert claim.item.id == "fine"
    assert (await queue.parked(NAMESPACE))["corrupt"]["unreadable"] == '{"id": 1}'
    record = await queue.completion(NAMESPACE, "corrupt")
    assert record is not None
    assert record.outcome is CompletionOutcome.DEAD_LETTERED


async def _pending(queue: WorkQueue, stage: Stage) -> int:
    return (await queue.stats(NAMESPACE, "shop")).stages[stage].pending


# ------------------------------------------------------------ exactly-once completion


async def test_a_slow_worker_coming_back_after_reclaim_completes_nothing_twice(
    fast_queue: WorkQueue, clock: ManualClock
) -> None:
    await fast_queue.enqueue(item("gh-1"))
    slow = await fast_queue.claim(subscription("slow-pod"))
    assert slow is not None
    fast = await reclaim(fast_queue, clock, subscription("fast-pod"))
    first = await fast_queue.complete(fast)
    second = await fast_queue.complete(slow)
    assert (first.recorded, first.follow_ups) == (True, ("gh-1/development",))
    assert (second.recorded, second.follow_ups) == (False, ())
    log = await fast_queue.completion_log(NAMESPACE)
    assert [(entry["id"], entry["worker"]) for entry in log] == [("gh-1", "fast-pod")]
    assert await drain(fast_queue, subscription(stage=Stage.DEVELOPMENT)) == ["gh-1/development"]


async def test_the_first_completion_wins_even_from_the_worker_that_lost_the_claim(
    fast_queue: WorkQueue, clock: ManualClock
) -> None:
    await fast_queue.enqueue(item("gh-1"))
    slow = await fast_queue.claim(subscription("slow-pod"))
    assert slow is not None
    current = await reclaim(fast_queue, clock, subscription("current-pod"))
    assert (await fast_queue.complete(slow)).recorded
    assert not await fast_queue.heartbeat(current)
    assert not (await fast_queue.complete(current)).recorded
    assert (await fast_queue.fail(current, "too late")).outcome is FailOutcome.STALE
    record = await fast_queue.completion(NAMESPACE, "gh-1")
    assert record is not None
    assert record.worker == "slow-pod"
    stats = await fast_queue.stats(NAMESPACE, "shop")
    assert stats.stages[Stage.GENESIS] == StageQueueStats(completed=1)


# -------------------------------------------------------------------- transitions


async def test_completion_queues_the_next_stage_until_the_pipeline_ends(queue: WorkQueue) -> None:
    await queue.enqueue(item("gh-9", payload={"issue": 9}, lane=Lane.HIGH))
    journey = []
    for stage in (Stage.GENESIS, Stage.DEVELOPMENT, Stage.CONTENT):
        claim = await queue.claim(subscription(f"{stage.value}-pod", stage=stage))
        assert claim is not None
        journey.append((claim.item.id, claim.item.lane, len(claim.item.trace)))
        await queue.complete(claim, output={f"{stage.value}_done": True})
    assert journey == [
        ("gh-9", Lane.HIGH, 0),
        ("gh-9/development", Lane.HIGH, 1),
        ("gh-9/development/content", Lane.HIGH, 2),
    ]
    for stage in Stage:
        assert await queue.claim(subscription(stage=stage)) is None
    record = await queue.completion(NAMESPACE, "gh-9/development/content")
    assert record is not None
    assert record.follow_ups == ()
    stats = await queue.stats(NAMESPACE, "shop")
    assert {stage: counts.completed for stage, counts in stats.stages.items()} == {
        Stage.GENESIS: 1,
        Stage.DEVELOPMENT: 1,
        Stage.CONTENT: 1,
    }


async def test_the_next_stage_sees_the_earlier_output_and_trace(queue: WorkQueue) -> None:
    await queue.enqueue(item("gh-9", payload={"issue": 9}))
    genesis = await queue.claim(subscription("genesis-pod"))
    assert genesis is not None
    await queue.complete(genesis, output={"plan": "three tasks"})
    dev = await queue.claim(subscription(stage=Stage.DEVELOPMENT))
    assert dev is not None
    assert dev.item.payload == {"issue": 9, "plan": "three tasks"}
    assert [(entry.item_id, entry.worker) for entry in dev.item.trace] == [("gh-9", "genesis-pod")]


async def test_a_handler_can_replace_the_default_follow_up(queue: WorkQueue) -> None:
    await queue.enqueue(item("master-1"))
    claim = await queue.claim(subscription())
    assert claim is not None
    subtasks = [
        item(f"master-1/task-{n}", stage=Stage.DEVELOPMENT, specialty="tdd") for n in (1, 2)
    ]
    result = await queue.complete(claim, follow_ups=subtasks)
    assert result.follow_ups == ("master-1/task-1", "master-1/task-2")
    assert sorted(
        await drain(queue, subscription(stage=Stage.DEVELOPMENT, specialties=("tdd",)))
    ) == [
        "master-1/task-1",
        "master-1/task-2",
    ]


async def test_follow_ups_cannot_leave_the_namespace(queue: WorkQueue) -> None:
    await queue.enqueue(item("gh-1"))
    claim = await queue.claim(subscription())
    assert claim is not None
    elsewhere = item("x", stage=Stage.DEVELOPMENT).model_copy(update={"namespace": "team-b"})
    with pytest.raises(ValueError, match="namespace"):
        await queue.complete(claim, follow_ups=[elsewhere])


# ------------------------------------------------------------------ boost & hold


async def test_boost_moves_a_projects_waiting_work_ahead(queue: WorkQueue) -> None:
    await queue.enqueue(
        item("other-high", project="other", lane=Lane.HIGH),
        item("shop-low", lane=Lane.LOW),
        item("shop-normal"),
        item("shop-urgent", lane=Lane.URGENT),
    )
    assert await queue.boost(NAMESPACE, "shop", Lane.URGENT) == 2
    assert await drain(queue, subscription()) == [
        "shop-urgent",
        "shop-normal",
        "shop-low",
        "other-high",
    ]


async def test_boost_keeps_counts_right_when_redis_reports_no_lag(queue: WorkQueue) -> None:
    await queue.enqueue(*[item(f"shop-{n}", lane=Lane.LOW) for n in range(5)])
    first = await queue.claim(subscription())
    assert first is not None
    assert await queue.boost(NAMESPACE, "shop", Lane.HIGH) == 4
    low_stream = f"{queue.prefix}:{{{NAMESPACE}}}:q:shop:genesis:general:low"
    # types-redis leaves xinfo_groups unannotated.
    [group] = await queue.redis.xinfo_groups(low_stream)  # type: ignore[no-untyped-call]
    assert group["lag"] is None  # entries were deleted past the group's position
    snapshot = await queue.snapshot(NAMESPACE)
    by_lane = {lane.lane: (lane.waiting, lane.in_flight) for lane in snapshot.lanes}
    assert by_lane == {Lane.LOW: (0, 1), Lane.HIGH: (4, 0)}


async def test_boost_also_applies_to_items_waiting_to_retry(
    queue: WorkQueue, clock: ManualClock
) -> None:
    await queue.enqueue(item("gh-1", lane=Lane.LOW))
    claim = await queue.claim(subscription())
    assert claim is not None
    await queue.fail(claim, "flaky")
    assert await queue.boost(NAMESPACE, "shop", Lane.URGENT) == 1
    retried = await come_due(queue, clock, subscription())
    assert (retried.item.id, retried.item.lane) == ("gh-1", Lane.URGENT)


async def test_emergency_stop_holds_a_projects_work_until_resumed(queue: WorkQueue) -> None:
    await queue.enqueue(
        item("shop-1"), item("shop-2", stage=Stage.DEVELOPMENT), item("blog-1", project="blog")
    )
    in_flight = await queue.claim(subscription(projects=("shop",)))
    assert in_flight is not None
    await queue.hold(NAMESPACE, "shop")
    await queue.enqueue(item("shop-3"))
    assert await drain(queue, subscription()) == ["blog-1"]
    assert await queue.claim(subscription(stage=Stage.DEVELOPMENT)) is None

    # Work already running finishes; its follow-up is queued and held too.
    await queue.complete(in_flight)
    stats = await queue.stats(NAMESPACE, "shop")
    assert stats.held
    assert stats.stages[Stage.GENESIS] == StageQueueStats(held=1, completed=1)
    assert stats.stages[Stage.DEVELOPMENT] == StageQueueStats(held=2)

    await queue.resume(NAMESPACE, "shop")
    assert await drain(queue, subscription()) == ["shop-3"]
    assert sorted(await drain(queue, subscription(stage=Stage.DEVELOPMENT))) == [
        "shop-1/development",
        "shop-2",
    ]


# ------------------------------------------------------------------ durability


async def test_queue_state_survives_a_redis_restart(
    make_queue: QueueFactory, clock: ManualClock
) -> None:
    with RedisServer(appendonly=True) as server:
        queue = make_queue(server.url, clock=clock)
        await queue.enqueue(item("running"), item("done"), item("retry"), item("waiting"))
        claims = {}
        for _ in range(3):
            claim = await queue.claim(subscription())
            assert claim is not None
            claims[claim.item.id] = claim
        assert sorted(claims) == ["done", "retry", "running"]
        await queue.complete(claims["done"], follow_ups=[])
        await queue.fail(claims["retry"], "flaky")

        server.restart()

        assert await queue.heartbeat(claims["running"])
        assert not (await queue.complete(claims["done"], follow_ups=[])).recorded
        assert (await queue.complete(claims["running"], follow_ups=[])).recorded
        clock.advance(queue.retry_policy.max_delay_seconds)  # the retry comes due
        assert sorted(await drain(queue, subscription())) == ["retry", "waiting"]


# ------------------------------------------------------------------------ arrivals


async def test_items_becoming_deliverable_are_announced_as_arrivals(
    queue: WorkQueue, clock: ManualClock
) -> None:
    """Enqueued, released after a drain, and due again after a failure: each time an item
    lands on a lane, a listener hears of it at once (what activates pools at zero)."""
    heard: list[Arrival] = []
    stream = queue.arrivals()
    listening = asyncio.ensure_future(anext(stream))
    # The subscription is made when the iterator first runs: let it reach Redis.
    await asyncio.sleep(0)
    await async_wait_for(queue.redis.pubsub_numpat, 5, "the pattern subscription to reach Redis")

    async def next_arrival() -> Arrival:
        nonlocal listening
        arrival = await asyncio.wait_for(listening, 5)
        listening = asyncio.ensure_future(anext(stream))
        heard.append(arrival)
        return arrival

    await queue.enqueue(item("a", stage=Stage.DEVELOPMENT, specialty="tdd"))
    assert await next_arrival() == Arrival(
        namespace=NAMESPACE, project="shop", stage=Stage.DEVELOPMENT, specialty="tdd"
    )
    # The same id again is not enqueued again, so nothing is announced: the next arrival
    # heard is the release below.
    await queue.enqueue(item("a", stage=Stage.DEVELOPMENT, specialty="tdd"))
    claim = await queue.claim(subscription(stage=Stage.DEVELOPMENT, specialties=("tdd",)))
    assert claim is not None
    await queue.release(claim)
    assert (await next_arrival()).project == "shop"
    claim = await queue.claim(subscription(stage=Stage.DEVELOPMENT, specialties=("tdd",)))
    assert claim is not None
    await queue.fail(claim, "flaky")  # retried after a short backoff: due again later
    # A claim moves retries that came due back to their lane (and takes this one).
    await come_due(queue, clock, subscription(stage=Stage.DEVELOPMENT, specialties=("tdd",)))
    assert (await next_arrival()).specialty == "tdd"
    listening.cancel()
    await stream.aclose()
    assert len(heard) == 3
