"""The operator's plumbing, built once at start-up and handed to every handler and
extension through kopf's `memo` (`memo["context"]`): one Kubernetes API client, one Redis
pool, one Event recorder, and the hand-off from the autoscaler to the reconciler.

The indexes (one per kind, `index`) are kopf's and reach handlers as keyword arguments.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from agentfleet.core.queue import WorkQueue
from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.events import EventRecorder
from agentfleet.operator.index import PoolKey
from agentfleet.operator.kube import Kube
from agentfleet.operator.logic import ScaleNote, ScalingRecord

log = logging.getLogger("agentfleet.operator")

REQUEST_TIMEOUT_SECONDS = 60.0
"""One API request (not a watch) of ours or kopf's."""
CONNECT_TIMEOUT_SECONDS = 10.0
SCALING_LOG_LENGTH = 500


@dataclass
class OperatorContext:
    config: OperatorConfig
    kube: Kube
    queue: WorkQueue | None
    """The one Redis pool (None without --redis-url)."""
    events: EventRecorder
    scale_notes: dict[PoolKey, ScaleNote] = field(default_factory=dict)
    """The autoscaler's reason for the replicas it last asked for, per pool, until the
    reconciler records it in the pool's status (the reconciler owns lastScale*)."""
    scaling_log: deque[ScalingRecord] = field(
        default_factory=lambda: deque(maxlen=SCALING_LOG_LENGTH)
    )
    """The autoscaler's latest replica changes, every namespace, newest last (the status
    page's timeline; a restart starts it afresh, the Events stay in the API server)."""

    @classmethod
    def create(cls, config: OperatorConfig) -> OperatorContext:
        """Build (inside the running event loop) and start the Event posters."""
        kube = Kube.connect(config.kubeconfig, REQUEST_TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS)
        queue = WorkQueue.from_url(config.redis_url) if config.redis_url else None
        events = EventRecorder(kube)
        events.start()
        return cls(config=config, kube=kube, queue=queue, events=events)

    async def close(self) -> None:
        await self.events.close()
        if self.queue is not None:
            await self.queue.close()
        await self.kube.close()


def context_of(memo: Any) -> OperatorContext:
    """The context from kopf's memo (set by the operator's first startup handler)."""
    context: OperatorContext = memo["context"]
    return context
