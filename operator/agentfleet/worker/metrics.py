"""A worker's own Prometheus metrics, labelled from its settings.

Pool utilization is `avg(agentfleet_worker_busy{namespace=..., pool=...})`; the
autoscaler's default query relies on these names.

A worker's own metrics live in a registry of their own (tests run several workers in one
process); what the handlers record goes to the process-wide default registry (the agent
runtime's token, cost and call counters). `/metrics` serves both (`exposition_registry`).
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from agentfleet.core.api import Stage

PROCESSING_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200)

OUTCOMES = ("succeeded", "retried", "dead_lettered", "released", "lost", "budget_exhausted")
"""`released`: given back on drain; `lost`: taken over by another worker (or completed
elsewhere) before this one finished; `budget_exhausted`: given back because the project's
daily budget is spent (it runs again after 00:00 UTC)."""


class WorkerMetrics:
    def __init__(self, namespace: str, pool: str, pod: str, stage: Stage) -> None:
        self.registry = CollectorRegistry()
        self._stage = stage.value
        self.busy = Gauge(
            "agentfleet_worker_busy",
            "1 while the worker is processing an item, else 0.",
            ["namespace", "pool", "pod"],
            registry=self.registry,
        ).labels(namespace, pool, pod)
        self.busy.set(0)
        self._processed = Counter(
            "agentfleet_worker_items_processed",
            "Items this worker finished, by outcome.",
            ["namespace", "pool", "stage", "outcome"],
            registry=self.registry,
        )
        for outcome in OUTCOMES:
            self._processed.labels(namespace, pool, self._stage, outcome)
        self.processing_seconds = Histogram(
            "agentfleet_worker_processing_seconds",
            "Time the handler spent on an item.",
            ["namespace", "pool", "stage"],
            buckets=PROCESSING_BUCKETS,
            registry=self.registry,
        ).labels(namespace, pool, self._stage)
        self.wait_seconds = Histogram(
            "agentfleet_worker_wait_seconds",
            "Time from an item becoming deliverable (enqueue or retry) to its claim.",
            ["namespace", "pool", "stage"],
            buckets=WAIT_BUCKETS,
            registry=self.registry,
        ).labels(namespace, pool, self._stage)
        self._labels = (namespace, pool)

    def processed(self, outcome: str) -> None:
        self._processed.labels(*self._labels, self._stage, outcome).inc()


def exposition_registry(
    worker: CollectorRegistry, process: CollectorRegistry = REGISTRY
) -> CollectorRegistry:
    """What a worker process serves on /metrics: its own metrics, and everything recorded
    process-wide (the handlers' agent metrics, the client library's process_* series)."""
    exposed = CollectorRegistry(auto_describe=False)
    exposed.register(worker)
    exposed.register(process)
    return exposed
