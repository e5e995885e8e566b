"""Queues on the session's real Redis, isolated per test by a key prefix of their own.

Time-based rules (heartbeat timeouts, backoff) are tested on a `ManualClock` the test
advances, against the real server: the queue's scripts take the time from the client.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
from lightkube import AsyncClient, KubeConfig

from agentfleet.core.queue import ManualClock, RetryPolicy, WorkQueue
from agentfleet.dev.localenv import RedisServer
from agentfleet.operator.config import OperatorConfig
from agentfleet.operator.context import OperatorContext
from agentfleet.operator.events import EventRecorder
from agentfleet.operator.kube import Kube

FAST_RETRIES = RetryPolicy(default_max_attempts=3, base_delay_seconds=0.02, max_delay_seconds=0.1)

QueueFactory = Callable[..., WorkQueue]


@pytest.fixture
async def make_queue(redis_server: RedisServer) -> AsyncIterator[QueueFactory]:
    """`make_queue(url=None, **WorkQueue options)`; closed after the test.

    Defaults: a fresh key prefix, a 30 s heartbeat timeout (nothing is reclaimed behind a
    test's back), retries after 10-100 ms, a 0.1 s poll interval and the system clock
    (pass `clock=` for a manual one).
    """
    made: list[WorkQueue] = []

    def make(url: str | None = None, **options: object) -> WorkQueue:
        settings: dict[str, object] = {
            "prefix": f"t{uuid.uuid4().hex[:10]}",
            "heartbeat_timeout": 30.0,
            "retry_policy": FAST_RETRIES,
            "poll_interval": 0.1,
            **options,
        }
        made.append(WorkQueue.from_url(url or redis_server.url, **settings))
        return made[-1]

    yield make
    for work_queue in made:
        await work_queue.close()


@pytest.fixture
def clock() -> ManualClock:
    """The test's time: it moves only when the test advances it."""
    return ManualClock()


@pytest.fixture
def queue(make_queue: QueueFactory, clock: ManualClock) -> WorkQueue:
    """On the manual `clock`: retries come due when the test advances it."""
    return make_queue(clock=clock)


@pytest.fixture
def fast_queue(make_queue: QueueFactory, clock: ManualClock) -> WorkQueue:
    """Heartbeat timeout of 1 s on the manual `clock`, for reclaim tests."""
    return make_queue(heartbeat_timeout=1.0, clock=clock)


@pytest.fixture
async def read_api_context(queue: WorkQueue) -> AsyncIterator[OperatorContext]:
    """The operator's context as the read API sees it, on the test's `queue`, serving
    `team-*`. Reads need no API server: its client points nowhere and is never called."""
    nowhere = {
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "none", "user": {"token": "unused"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}],
        "current-context": "none",
    }
    kube = Kube(AsyncClient(KubeConfig.from_dict(nowhere)))
    config = OperatorConfig(namespaces=("team-*",), redis_url="redis://unused")
    yield OperatorContext(config=config, kube=kube, queue=queue, events=EventRecorder(kube, "test"))
    await kube.close()
