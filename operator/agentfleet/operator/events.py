"""Every Event the operator posts, by the reconciler, the autoscaler and intake, goes
through one `EventRecorder`: a `v1` Event on the object, posted in the background through
the operator's one API client, so no reconcile or scaling decision waits for it.

`source.component` names the writer (`agentfleet-reconciler`, `agentfleet-autoscaler`,
`agentfleet-intake`: the same names as their status field managers), so
`kubectl get events --field-selector source=agentfleet-autoscaler` shows one writer's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from agentfleet.core.api.base import API_GROUP, API_VERSION

log = logging.getLogger("agentfleet.events")

MAX_MESSAGE_LENGTH = 1024
"""Longer messages are cut (as kubectl and kopf do), with an ellipsis."""
POSTERS = 4
"""Events posted at once; at start-up a thousand new pools post a few thousand."""


class EventSink(Protocol):
    async def create_event(self, namespace: str, body: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class ObjectRef:
    """The object an Event is about."""

    kind: str
    namespace: str
    name: str
    uid: str
    api_version: str = f"{API_GROUP}/{API_VERSION}"


@dataclass(frozen=True)
class Event:
    ref: ObjectRef
    type: str
    """Normal or Warning."""
    reason: str
    message: str
    component: str
    """The writer: agentfleet-reconciler, agentfleet-autoscaler or agentfleet-intake."""


def event_body(event: Event, instance: str, now: datetime) -> dict[str, Any]:
    """The `v1` Event as posted."""
    stamp = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    message = event.message
    if len(message) > MAX_MESSAGE_LENGTH:
        message = message[: MAX_MESSAGE_LENGTH - 3] + "..."
    ref = event.ref
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
        "involvedObject": {
            "apiVersion": ref.api_version,
            "kind": ref.kind,
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": ref.uid,
        },
        "type": event.type,
        "reason": event.reason,
        "message": message,
        "source": {"component": event.component},
        "reportingComponent": f"{API_GROUP}/{event.component.removeprefix('agentfleet-')}",
        "reportingInstance": instance,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventRecorder:
    """Queues Events and posts them in the background; `post` never blocks or raises."""

    def __init__(self, sink: EventSink, instance: str | None = None) -> None:
        self.sink = sink
        self.instance = instance or socket.gethostname()
        self._queue: asyncio.Queue[tuple[Event, datetime]] = asyncio.Queue()
        self._posters: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._posters = [
            asyncio.create_task(self._post_forever(), name=f"event-poster-{n}")
            for n in range(POSTERS)
        ]

    def post(self, ref: ObjectRef, type: str, reason: str, message: str, component: str) -> None:
        event = Event(ref, type, reason, message, component)
        self._queue.put_nowait((event, datetime.now(UTC)))

    def normal(self, ref: ObjectRef, reason: str, message: str, component: str) -> None:
        self.post(ref, "Normal", reason, message, component)

    def warning(self, ref: ObjectRef, reason: str, message: str, component: str) -> None:
        self.post(ref, "Warning", reason, message, component)

    async def _post_forever(self) -> None:
        while True:
            event, at = await self._queue.get()
            try:
                await self.sink.create_event(
                    event.ref.namespace, event_body(event, self.instance, at)
                )
            except Exception as error:  # an Event is never worth failing anything for
                log.warning(
                    "posting %s Event for %s/%s failed: %s",
                    event.reason,
                    event.ref.namespace,
                    event.ref.name,
                    error,
                )
            finally:
                self._queue.task_done()

    async def close(self, timeout: float = 5.0) -> None:
        """Post what is queued (for at most `timeout` seconds), then stop."""
        if self._posters:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout)
        for task in self._posters:
            task.cancel()
        for task in self._posters:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._posters = []
