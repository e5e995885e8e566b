"""The work queue: Redis Streams with priority lanes, heartbeats, retries and transitions.

`WorkQueue` is the adapter (redis.asyncio); the models and the pure rules it follows are
importable without a server. `QueueCollector` exports the queue's Prometheus metrics.
Time comes from a `Clock` (`agentfleet.core.queue.clock`): the system clock, or a
`ManualClock` a test advances.
"""

from agentfleet.core.queue.clock import Clock, ManualClock, system_clock
from agentfleet.core.queue.models import (
    GENERAL_SPECIALTY,
    LANES_BY_PRIORITY,
    Arrival,
    BudgetExhausted,
    ChildState,
    Claim,
    CompleteResult,
    CompletionOutcome,
    CompletionRecord,
    DaySpend,
    FailOutcome,
    FailResult,
    Family,
    FanOut,
    FanOutResult,
    InFlight,
    JoinChild,
    JoinState,
    Lane,
    PendingFeedback,
    ProjectQueueStats,
    RetryPolicy,
    StageQueueStats,
    Subscription,
    TraceEntry,
    WorkItem,
)
from agentfleet.core.queue.routing import default_follow_ups, next_stage, read_order, review_item
from agentfleet.core.queue.snapshot import LaneFigures, NamespaceSnapshot
from agentfleet.core.queue.workqueue import CONNECTION_ERRORS, WorkQueue

__all__ = [
    "CONNECTION_ERRORS",
    "GENERAL_SPECIALTY",
    "LANES_BY_PRIORITY",
    "Arrival",
    "BudgetExhausted",
    "ChildState",
    "Claim",
    "Clock",
    "CompleteResult",
    "CompletionOutcome",
    "CompletionRecord",
    "DaySpend",
    "FailOutcome",
    "FailResult",
    "Family",
    "FanOut",
    "FanOutResult",
    "InFlight",
    "JoinChild",
    "JoinState",
    "Lane",
    "LaneFigures",
    "ManualClock",
    "NamespaceSnapshot",
    "PendingFeedback",
    "ProjectQueueStats",
    "RetryPolicy",
    "StageQueueStats",
    "Subscription",
    "TraceEntry",
    "WorkItem",
    "WorkQueue",
    "default_follow_ups",
    "next_stage",
    "read_order",
    "review_item",
    "system_clock",
]
