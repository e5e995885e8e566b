"""What the operator's read API asks the queue, against a real Redis: who holds which
item and since when it heartbeated, retries by lane, the completion log since a moment,
and dead letters kept for `agentfleet retry`, which puts them back exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.queue import (
    CompletionOutcome,
    FailOutcome,
    Lane,
    ManualClock,
    StageQueueStats,
    Subscription,
    WorkItem,
    WorkQueue,
)

pytestmark = pytest.mark.integration

NAMESPACE = "team-a"


def item(item_id: str, **fields: object) -> WorkItem:
    return WorkItem.model_validate(
        {
            "id": item_id,
            "namespace": NAMESPACE,
            "project": "shop",
            "stage": Stage.DEVELOPMENT,
            **fields,
        }
    )


def subscription(consumer: str, **fields: object) -> Subscription:
    return Subscription.model_validate(
        {"namespace": NAMESPACE, "stage": Stage.DEVELOPMENT, "consumer": consumer, **fields}
    )


async def test_in_flight_names_each_worker_its_item_and_its_last_heartbeat(
    queue: WorkQueue, clock: ManualClock
) -> None:
    await queue.enqueue(item("a", specialty="tdd", lane=Lane.HIGH), item("b"), item("c"))
    first = await queue.claim(subscription("pod-1", specialties=("tdd",)))
    second = await queue.claim(subscription("pod-2"))
    assert first is not None and second is not None
    clock.advance(40)
    assert await queue.heartbeat(second)
    clock.advance(5)

    held = await queue.in_flight(NAMESPACE)

    assert [(h.worker, h.item_id, h.specialty, h.lane) for h in held] == [
        ("pod-1", "a", "tdd", Lane.HIGH),
        ("pod-2", "b", "general", Lane.NORMAL),
    ]
    assert (clock() - held[0].heartbeat_at).total_seconds() == pytest.approx(45, abs=0.01)
    assert (clock() - held[1].heartbeat_at).total_seconds() == pytest.approx(5, abs=0.01)
    assert {h.deliveries for h in held} == {1}

    await queue.complete(first, follow_ups=[])
    await queue.release(second)
    assert await queue.in_flight(NAMESPACE) == []


async def test_retrying_is_counted_by_the_lane_the_item_goes_back_to(
    queue: WorkQueue,
) -> None:
    await queue.enqueue(item("r", specialty="tdd", lane=Lane.URGENT))
    claim = await queue.claim(subscription("pod-1", specialties=("tdd",)))
    assert claim is not None
    assert (await queue.fail(claim, "flaky")).outcome is FailOutcome.RETRY_SCHEDULED

    snapshot = await queue.snapshot(NAMESPACE)

    assert dict(snapshot.retrying_lanes) == {("shop", Stage.DEVELOPMENT, "tdd", Lane.URGENT): 1}


async def test_completions_since_reads_the_log_from_a_moment_on(queue: WorkQueue) -> None:
    await queue.enqueue(item("done-1"))
    claim = await queue.claim(subscription("pod-1"))
    assert claim is not None
    await queue.complete(claim, follow_ups=[])
    logged = await queue.completions_since(NAMESPACE, queue.clock() - timedelta(minutes=5))
    assert [(e["id"], e["outcome"], e["stage"]) for e in logged] == [
        ("done-1", CompletionOutcome.SUCCEEDED.value, "development")
    ]
    # By the queue's clock: nothing was completed an hour from now.
    later = await queue.completions_since(NAMESPACE, queue.clock() + timedelta(hours=1))
    assert later == []


async def test_each_completion_logs_when_its_stage_and_its_pipeline_began(
    queue: WorkQueue, clock: ManualClock
) -> None:
    """`agentfleet metrics` shows time in the stage and the pipeline time from these."""
    began = clock()
    await queue.enqueue(item("p1", stage=Stage.GENESIS, enqueued_at=began))
    genesis = await queue.claim(
        Subscription(namespace=NAMESPACE, stage=Stage.GENESIS, consumer="pod-g")
    )
    assert genesis is not None
    clock.advance(30)
    await queue.complete(genesis)  # the default follow-up: development, queued now
    handed_over = clock()
    clock.advance(15)
    development = await queue.claim(subscription("pod-d"))
    assert development is not None
    clock.advance(45)
    await queue.complete(development, follow_ups=[])

    logged = {e["stage"]: e for e in await queue.completion_log(NAMESPACE)}

    def ms(moment: datetime) -> str:
        return str(int(moment.timestamp() * 1000))

    assert (logged["genesis"]["enqueued"], logged["genesis"]["started"]) == (ms(began),) * 2
    assert logged["development"]["enqueued"] == ms(handed_over)
    assert logged["development"]["started"] == ms(began)
    assert int(logged["development"]["at"]) - int(logged["development"]["started"]) == 90_000


async def test_dead_letters_are_kept_and_requeued_exactly_once(queue: WorkQueue) -> None:
    await queue.enqueue(item("d1", payload={"issue": 7}), item("d2"), item("ok"))
    for _ in range(3):
        claim = await queue.claim(subscription("pod-1"))
        assert claim is not None
        if claim.item.id == "ok":
            await queue.complete(claim, follow_ups=[])
        else:
            result = await queue.fail(claim, f"broken {claim.item.id}", retryable=False)
            assert result.outcome is FailOutcome.DEAD_LETTERED

    dead = await queue.dead_letters(NAMESPACE, "shop")
    assert sorted(dead) == ["d1", "d2"]
    assert dead["d1"] is not None and dead["d1"].payload == {"issue": 7}
    # As it last ran: its error and the attempts it took.
    assert (dead["d1"].last_error, dead["d1"].attempts) == ("broken d1", 1)
    assert (await queue.stats(NAMESPACE, "shop")).stages[Stage.DEVELOPMENT] == StageQueueStats(
        completed=1, dead_lettered=2
    )

    assert await queue.requeue_dead_letters(NAMESPACE, "shop", ids=["d1"]) == ["d1"]
    assert sorted(await queue.dead_letters(NAMESPACE, "shop")) == ["d2"]
    requeued = await queue.get(NAMESPACE, "d1")
    assert requeued is not None and requeued.attempts == 0
    assert await queue.completion(NAMESPACE, "d1") is None
    stage = (await queue.stats(NAMESPACE, "shop")).stages[Stage.DEVELOPMENT]
    assert (stage.pending, stage.dead_lettered, stage.completed) == (1, 1, 1)

    # Everything left, once: a second retry finds nothing more to put back.
    assert await queue.requeue_dead_letters(NAMESPACE, "shop") == ["d2"]
    assert await queue.requeue_dead_letters(NAMESPACE, "shop") == []
    claim = await queue.claim(subscription("pod-2"))
    assert claim is not None and claim.item.id in {"d1", "d2"} and claim.item.attempts == 1
    assert await queue.dead_letters(NAMESPACE, "other") == {}
