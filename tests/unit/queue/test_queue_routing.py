"""Read order, pipeline transitions, dead-letter items and backoff: the queue's rules."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.core.api import Stage
from agentfleet.core.queue import Lane, RetryPolicy, WorkItem
from agentfleet.core.queue.routing import (
    default_follow_ups,
    next_stage,
    read_order,
    retry_delay,
    review_item,
    should_dead_letter,
)

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 1, tzinfo=UTC)


def item(**changes: object) -> WorkItem:
    fields: dict[str, object] = {
        "id": "gh-7",
        "namespace": "team-a",
        "project": "shop",
        "stage": Stage.GENESIS,
    }
    return WorkItem.model_validate({**fields, **changes})


def test_general_worker_reads_lanes_highest_first() -> None:
    assert read_order([]) == [
        ("general", Lane.URGENT),
        ("general", Lane.HIGH),
        ("general", Lane.NORMAL),
        ("general", Lane.LOW),
    ]


def test_specialty_lanes_come_before_the_general_fallback() -> None:
    order = read_order(["tdd", "ai-ml", "tdd", "general"])
    assert [specialty for specialty, _ in order] == ["tdd"] * 4 + ["ai-ml"] * 4 + ["general"] * 4
    assert order[:4] == [("tdd", lane) for lane in (Lane.URGENT, Lane.HIGH, Lane.NORMAL, Lane.LOW)]


def test_next_stage_follows_the_items_pipeline() -> None:
    assert next_stage(item()) is Stage.DEVELOPMENT
    assert next_stage(item(stage=Stage.CONTENT)) is None
    assert next_stage(item(stage=Stage.GENESIS, pipeline=(Stage.GENESIS, Stage.CONTENT))) is (
        Stage.CONTENT
    )
    assert next_stage(item(stage=Stage.REVIEW)) is None


def test_follow_up_carries_payload_lane_and_trace_forward() -> None:
    parent = item(specialty="tdd", lane=Lane.HIGH, payload={"issue": 7, "plan": "old"}, attempts=2)
    [child] = default_follow_ups(parent, "pod-1", AT, output={"plan": "new"})
    assert child.id == "gh-7/development"
    assert child.stage is Stage.DEVELOPMENT
    assert child.lane is Lane.HIGH
    assert child.specialty is None
    assert child.payload == {"issue": 7, "plan": "new"}
    assert child.attempts == 0
    assert child.enqueued_at == AT
    [entry] = child.trace
    assert (entry.item_id, entry.stage, entry.outcome, entry.worker, entry.attempts) == (
        "gh-7",
        Stage.GENESIS,
        "succeeded",
        "pod-1",
        2,
    )


def test_last_stage_has_no_follow_up() -> None:
    assert default_follow_ups(item(stage=Stage.CONTENT), "pod-1", AT) == []


def test_review_item_keeps_the_failure_context() -> None:
    failed = item(stage=Stage.DEVELOPMENT, specialty="tdd", attempts=3, payload={"issue": 7})
    review = review_item(failed, "tests failed", "pod-2", AT)
    assert review is not None
    assert review.id == "gh-7/review"
    assert review.stage is Stage.REVIEW
    assert review.last_error == "tests failed"
    assert review.payload["issue"] == 7
    assert review.payload["dead_letter"] == {
        "item_id": "gh-7",
        "stage": "development",
        "specialty": "tdd",
        "attempts": 3,
        "error": "tests failed",
    }
    assert review.trace[-1].outcome == "dead_lettered"
    assert review.trace[-1].error == "tests failed"


def test_failed_review_work_has_nowhere_further_to_go() -> None:
    assert review_item(item(stage=Stage.REVIEW), "still broken", "pod-1", AT) is None


@given(
    attempts=st.integers(min_value=1, max_value=40),
    base=st.floats(min_value=0, max_value=60),
    cap=st.floats(min_value=0, max_value=600),
    seed=st.integers(),
)
def test_backoff_is_exponential_capped_and_jittered(
    attempts: int, base: float, cap: float, seed: int
) -> None:
    policy = RetryPolicy(base_delay_seconds=base, max_delay_seconds=cap)
    full = min(cap, base * 2 ** (attempts - 1))
    delay = retry_delay(policy, attempts, random.Random(seed))
    assert full / 2 <= delay <= full


def test_backoff_doubles_per_attempt_until_the_cap() -> None:
    policy = RetryPolicy(base_delay_seconds=4, max_delay_seconds=20)
    upper = [retry_delay(policy, n, random.Random(0)) for n in (1, 2, 3, 4)]
    assert 2 <= upper[0] <= 4
    assert 4 <= upper[1] <= 8
    assert 8 <= upper[2] <= 16
    assert 10 <= upper[3] <= 20


def test_jitter_spreads_retries() -> None:
    policy = RetryPolicy(base_delay_seconds=10)
    rng = random.Random(1)
    assert len({retry_delay(policy, 2, rng) for _ in range(20)}) == 20


def test_dead_letter_after_the_stages_max_attempts_or_a_permanent_failure() -> None:
    policy = RetryPolicy(default_max_attempts=3, max_attempts={Stage.DEVELOPMENT: 5})
    assert not should_dead_letter(policy, item(attempts=2), retryable=True)
    assert should_dead_letter(policy, item(attempts=3), retryable=True)
    assert not should_dead_letter(policy, item(stage=Stage.DEVELOPMENT, attempts=4), True)
    assert should_dead_letter(policy, item(attempts=1), retryable=False)
