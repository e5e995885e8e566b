"""Pure queue rules: read order, pipeline transitions, dead-letter items and backoff.

The Redis adapter asks these functions what to do and only carries the answers out, so
every rule here is unit-tested without a server.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from agentfleet.core.api import Stage
from agentfleet.core.pipeline.ids import follow_up_id
from agentfleet.core.pipeline.payloads import DEAD_LETTER_KEY, DeadLetter
from agentfleet.core.queue.models import (
    GENERAL_SPECIALTY,
    LANES_BY_PRIORITY,
    CompletionOutcome,
    Lane,
    RetryPolicy,
    TraceEntry,
    WorkItem,
)


def read_order(specialties: Sequence[str]) -> list[tuple[str, Lane]]:
    """The (specialty, lane) pairs a worker reads, first to last.

    A specialty pool exists to work its specialty, so all of its specialty lanes (in the
    configured order, highest lane first) come before the general fallback; otherwise a
    deep general backlog would starve the specialty work nobody else can take.
    """
    named = [name for name in dict.fromkeys(specialties) if name != GENERAL_SPECIALTY]
    return [(name, lane) for name in [*named, GENERAL_SPECIALTY] for lane in LANES_BY_PRIORITY]


def next_stage(item: WorkItem) -> Stage | None:
    """The stage after the item's in its pipeline; None at the end or off the pipeline."""
    if item.stage not in item.pipeline:
        return None
    position = item.pipeline.index(item.stage)
    return item.pipeline[position + 1] if position + 1 < len(item.pipeline) else None


def _traced(
    item: WorkItem, worker: str, outcome: CompletionOutcome, at: datetime
) -> tuple[TraceEntry, ...]:
    entry = TraceEntry(
        item_id=item.id,
        stage=item.stage,
        outcome=outcome.value,
        worker=worker,
        attempts=item.attempts,
        finished_at=at,
        enqueued_at=item.enqueued_at,
        error=item.last_error if outcome is CompletionOutcome.DEAD_LETTERED else None,
    )
    return (*item.trace, entry)


def default_follow_ups(
    item: WorkItem, worker: str, finished_at: datetime, output: Mapping[str, Any] | None = None
) -> list[WorkItem]:
    """On success, one item for the next pipeline stage carrying the payload forward.

    The follow-up keeps the project, lane and pipeline, drops the specialty (the next
    stage has its own pools) and merges the handler's `output` into the payload.
    """
    stage = next_stage(item)
    if stage is None:
        return []
    return [
        WorkItem(
            id=follow_up_id(item.id, stage),
            namespace=item.namespace,
            project=item.project,
            stage=stage,
            lane=item.lane,
            payload={**item.payload, **(output or {})},
            enqueued_at=finished_at,
            trace=_traced(item, worker, CompletionOutcome.SUCCEEDED, finished_at),
            pipeline=item.pipeline,
        )
    ]


def review_item(item: WorkItem, error: str, worker: str, at: datetime) -> WorkItem | None:
    """The dead-letter route: a review item carrying the failure's context.

    Review work that itself fails has nowhere further to go and is parked instead (None).
    """
    if item.stage is Stage.REVIEW:
        return None
    failed = item.model_copy(update={"last_error": error})
    return WorkItem(
        id=follow_up_id(item.id, Stage.REVIEW),
        namespace=item.namespace,
        project=item.project,
        stage=Stage.REVIEW,
        lane=item.lane,
        payload={
            **item.payload,
            DEAD_LETTER_KEY: DeadLetter(
                item_id=item.id,
                stage=item.stage.value,
                specialty=item.specialty,
                attempts=item.attempts,
                error=error,
            ).model_dump(),
        },
        enqueued_at=at,
        trace=_traced(failed, worker, CompletionOutcome.DEAD_LETTERED, at),
        last_error=error,
        pipeline=item.pipeline,
    )


def retry_delay(policy: RetryPolicy, attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before the next attempt after `attempts` failed ones.

    Exponential (base * 2^(attempts-1)) capped at the maximum, with "equal jitter": half
    the delay is fixed, half random, so a burst of failures does not retry in lockstep.
    """
    exponent = max(attempts - 1, 0)
    delay = min(policy.max_delay_seconds, policy.base_delay_seconds * 2.0**exponent)
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def should_dead_letter(policy: RetryPolicy, item: WorkItem, retryable: bool) -> bool:
    return not retryable or item.attempts >= policy.attempts_for(item.stage)
