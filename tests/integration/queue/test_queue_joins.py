"""Joins (a master issue's fan-out) against a real Redis: registration, the window, the
count kept by the scripts that finish children, timeouts and the summary item.

Timeouts pass on the test's `ManualClock`: nothing here waits in real time."""

from __future__ import annotations

import pytest

from agentfleet.core.api import Stage
from agentfleet.core.queue import (
    ChildState,
    Claim,
    CompletionOutcome,
    Family,
    FanOut,
    ManualClock,
    Subscription,
    WorkItem,
    WorkQueue,
)

pytestmark = pytest.mark.integration

NAMESPACE = "team-a"
MASTER = f"{NAMESPACE}/shop/issue-1/genesis"
SUMMARY = f"{MASTER}/master-summary"


def child(n: int) -> WorkItem:
    return WorkItem(
        id=f"{NAMESPACE}/shop/issue-{n}/development",
        namespace=NAMESPACE,
        project="shop",
        stage=Stage.DEVELOPMENT,
        payload={"issue": n, "parent": 1, "task": n - 1},
        pipeline=(Stage.GENESIS, Stage.DEVELOPMENT),
    )


def summary_item(join_id: str = MASTER) -> WorkItem:
    return WorkItem(
        id=f"{join_id}/master-summary",
        namespace=NAMESPACE,
        project="shop",
        stage=Stage.GENESIS,
        payload={"issue": 1},
    )


def fan_out(children: range, window: int = 2, timeout: float = 60.0) -> FanOut:
    return FanOut(
        join_id=MASTER,
        children=tuple(child(n) for n in children),
        summary=summary_item(),
        window=window,
        timeout_seconds=timeout,
        parent=1,
        family=tuple(children),
    )


DEVELOPER = Subscription(namespace=NAMESPACE, stage=Stage.DEVELOPMENT, consumer="dev-1")
GENESIS = Subscription(namespace=NAMESPACE, stage=Stage.GENESIS, consumer="genesis-1")


async def claim(queue: WorkQueue, subscription: Subscription = DEVELOPER) -> Claim:
    claimed = await queue.claim(subscription)
    if claimed is None:
        raise AssertionError(f"nothing to claim for {subscription.stage.value}")
    return claimed


async def waiting(queue: WorkQueue, ids: list[str]) -> list[str]:
    """Which of `ids` the queue holds (waiting, in flight or retrying)."""
    return [i for i in ids if await queue.get(NAMESPACE, i) is not None]


async def test_children_beyond_the_window_are_released_as_earlier_ones_finish(
    queue: WorkQueue,
) -> None:
    ids = [child(n).id for n in range(2, 7)]
    result = await queue.fan_out(fan_out(range(2, 7), window=2))
    assert result.registered and result.released == tuple(ids[:2])
    assert await waiting(queue, ids) == ids[:2]
    assert await queue.get(NAMESPACE, SUMMARY) is None

    first = await claim(queue)
    assert first.item.id == ids[0]
    # The step that completes a child releases the next one, nobody else.
    await queue.complete(first, follow_ups=[])
    assert await waiting(queue, ids) == ids[1:3]
    state = await queue.join(NAMESPACE, MASTER)
    assert state is not None
    assert (state.open, state.running, state.window) == (4, 2, 2)
    assert state.children[ids[0]].state is ChildState.SUCCEEDED
    assert state.children[ids[4]].state is ChildState.HELD

    for _ in range(3):
        await queue.complete(await claim(queue), follow_ups=[])
        assert await queue.get(NAMESPACE, SUMMARY) is None
    # The last child: its completion enqueues the summary in the same step.
    last = await claim(queue)
    assert last.item.id == ids[4]
    await queue.complete(last, follow_ups=[])
    summary = await claim(queue, GENESIS)
    assert summary.item.id == SUMMARY
    state = await queue.join(NAMESPACE, MASTER)
    assert state is not None and (state.open, state.running) == (0, 0)
    assert state.summarised_at is not None
    assert {c.state for c in state.children.values()} == {ChildState.SUCCEEDED}


async def test_a_dead_lettered_child_counts_with_its_error_and_still_goes_to_review(
    queue: WorkQueue,
) -> None:
    await queue.fan_out(fan_out(range(2, 4), window=5))
    failed = await claim(queue)
    assert (await queue.fail(failed, "tests fail", retryable=False)).review_item_id
    retried = await claim(queue)
    await queue.fail(retried, "flaky")  # a retry is not a finish
    state = await queue.join(NAMESPACE, MASTER)
    assert state is not None and state.open == 1
    assert state.children[failed.item.id].state is ChildState.DEAD_LETTERED
    assert state.children[failed.item.id].error == "tests fail"
    assert state.children[failed.item.id].attempts == 1
    assert await queue.get(NAMESPACE, SUMMARY) is None
    assert await queue.get(NAMESPACE, f"{failed.item.id}/review") is not None


async def test_children_past_their_timeout_are_timed_out_by_any_claim_and_free_the_window(
    queue: WorkQueue, clock: ManualClock
) -> None:
    ids = [child(n).id for n in range(2, 5)]
    await queue.fan_out(fan_out(range(2, 5), window=1, timeout=10))
    clock.advance(9.9)
    assert await queue.claim(GENESIS) is None
    assert await waiting(queue, ids) == ids[:1]
    clock.advance(0.2)
    # Any worker's claim (here one that finds nothing) times the first child out, which
    # releases the second, with a deadline of its own.
    assert await queue.claim(GENESIS) is None
    state = await queue.join(NAMESPACE, MASTER)
    assert state is not None
    assert state.children[ids[0]].state is ChildState.TIMED_OUT
    assert state.children[ids[0]].duration_seconds == pytest.approx(10.1)
    assert state.children[ids[1]].state is ChildState.RUNNING
    # The timed-out item stays in the queue, as it always did; its late completion no
    # longer counts in the join.
    late = await claim(queue)
    assert late.item.id == ids[0]
    await queue.complete(late, follow_ups=[])
    state = await queue.join(NAMESPACE, MASTER)
    assert state is not None and state.children[ids[0]].state is ChildState.TIMED_OUT
    assert state.open == 2
    clock.advance(10.1)
    assert await queue.claim(GENESIS) is None
    clock.advance(10.1)
    summary = await claim(queue, GENESIS)
    assert summary.item.id == SUMMARY
    state = await queue.join(NAMESPACE, MASTER)
    assert state is not None
    assert [state.children[i].state for i in ids] == [ChildState.TIMED_OUT] * 3


async def test_registering_again_changes_nothing_and_a_child_counts_once(
    queue: WorkQueue,
) -> None:
    assert (await queue.fan_out(fan_out(range(2, 4), window=1))).registered
    again = await queue.fan_out(fan_out(range(2, 4), window=1))
    assert not again.registered and again.released == ()
    first = await claim(queue)
    assert (await queue.complete(first, follow_ups=[])).recorded
    assert not (await queue.complete(first, follow_ups=[])).recorded
    state = await queue.join(NAMESPACE, MASTER)
    assert state is not None and (state.open, state.running) == (1, 1)
    await queue.complete(await claim(queue), follow_ups=[])
    assert (await claim(queue, GENESIS)).item.id == SUMMARY
    # Nothing else: one summary, no child twice.
    assert await queue.claim(DEVELOPER) is None
    assert await queue.claim(GENESIS) is None
    log = await queue.completion_log(NAMESPACE)
    assert sorted(entry["id"] for entry in log) == [child(2).id, child(3).id]


async def test_children_finished_before_the_fan_out_count_at_once(queue: WorkQueue) -> None:
    # A retry fans out again: a child whose id already completed is counted as it ended.
    await queue.enqueue(child(2))
    await queue.complete(await claim(queue), follow_ups=[])
    retry_join = f"{MASTER}/retry-failed-7"
    result = await queue.fan_out(
        fan_out(range(2, 3)).model_copy(
            update={"join_id": retry_join, "summary": summary_item(retry_join)}
        )
    )
    assert result.registered and result.released == ()
    state = await queue.join(NAMESPACE, retry_join)
    assert state is not None and state.open == 0
    assert state.children[child(2).id].state is ChildState.SUCCEEDED
    summary = await claim(queue, GENESIS)
    assert summary.item.id == f"{retry_join}/master-summary"
    done = await queue.completion(NAMESPACE, child(2).id)
    assert done is not None and done.outcome is CompletionOutcome.SUCCEEDED


async def test_the_family_is_recorded_with_the_fan_out_and_by_genesis(queue: WorkQueue) -> None:
    await queue.fan_out(fan_out(range(2, 5)))
    assert await queue.family(NAMESPACE, "shop", 3) == Family(parent=1, children=(2, 3, 4))
    assert await queue.family(NAMESPACE, "shop", 1) is None
    assert await queue.family(NAMESPACE, "other", 3) is None
    await queue.record_family(NAMESPACE, "shop", 10, [11, 12])
    assert await queue.family(NAMESPACE, "shop", 12) == Family(parent=10, children=(11, 12))
    assert await queue.join(NAMESPACE, f"{NAMESPACE}/shop/issue-10/genesis") is None


async def test_a_child_open_in_two_joins_counts_in_both(queue: WorkQueue) -> None:
    # `/agentfleet retry` while the run is still going: the retry's join registers the
    # sub-task that is still running, and its one completion ends both joins.
    await queue.fan_out(fan_out(range(2, 3)))
    running = await claim(queue)
    retry_join = f"{MASTER}/retry-failed-8"
    again = await queue.fan_out(
        fan_out(range(2, 3)).model_copy(
            update={"join_id": retry_join, "summary": summary_item(retry_join)}
        )
    )
    assert again.registered and again.released == (running.item.id,)
    await queue.complete(running, follow_ups=[])
    for join_id in (MASTER, retry_join):
        state = await queue.join(NAMESPACE, join_id)
        assert state is not None and state.open == 0
        assert state.children[running.item.id].state is ChildState.SUCCEEDED
    summaries = {(await claim(queue, GENESIS)).item.id, (await claim(queue, GENESIS)).item.id}
    assert summaries == {SUMMARY, f"{retry_join}/master-summary"}
