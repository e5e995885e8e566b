"""The one Event mechanism: what a posted Event looks like, and that posting never blocks
or fails the caller."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from agentfleet.operator.events import (
    MAX_MESSAGE_LENGTH,
    Event,
    EventRecorder,
    ObjectRef,
    event_body,
)

pytestmark = pytest.mark.unit

POOL = ObjectRef("WorkerPool", "team", "dev", "uid-1")


def test_the_event_names_its_writer_and_its_object() -> None:
    event = Event(POOL, "Normal", "ScaledUp", "1→3: queue_depth=59 > 10", "agentfleet-autoscaler")
    body = event_body(event, "op-0", datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC))

    assert body["source"] == {"component": "agentfleet-autoscaler"}
    assert body["reportingComponent"] == "agentfleet.dev/autoscaler"
    assert body["reportingInstance"] == "op-0"
    assert body["involvedObject"] == {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "WorkerPool",
        "name": "dev",
        "namespace": "team",
        "uid": "uid-1",
    }
    assert (body["type"], body["reason"]) == ("Normal", "ScaledUp")
    assert body["firstTimestamp"] == body["lastTimestamp"] == "2026-03-01T12:00:00Z"


def test_long_messages_are_cut() -> None:
    event = Event(POOL, "Warning", "ApplyFailed", "x" * 5000, "agentfleet-reconciler")
    message = event_body(event, "op", datetime.now(UTC))["message"]
    assert len(message) == MAX_MESSAGE_LENGTH and message.endswith("...")


class _Sink:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        if body["reason"] == "Broken":
            raise OSError("API server unreachable")
        self.posted.append(body)


async def test_events_are_posted_in_the_background_and_a_failure_is_only_logged() -> None:
    sink = _Sink()
    recorder = EventRecorder(sink, instance="op")
    recorder.start()
    recorder.warning(POOL, "Broken", "lost", "agentfleet-reconciler")
    recorder.normal(POOL, "Created", "Created Deployment dev", "agentfleet-reconciler")
    await recorder.close(timeout=5)
    await asyncio.sleep(0)

    assert [b["reason"] for b in sink.posted] == ["Created"]
