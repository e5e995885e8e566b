"""Queue and worker metrics with values you choose, served over HTTP for Prometheus.

The autoscaler's integration tests and benchmarks drive it through a real Prometheus
without running Redis and workers: they publish `agentfleet_queue_depth`,
`agentfleet_queue_oldest_wait_seconds` and `agentfleet_worker_busy` under the same names
and labels the queue and the workers export, and move the values to cross thresholds;
and, for the optional signals, the arrivals (`agentfleet_queue_enqueued_total`), the
workers' processing time (`agentfleet_worker_processing_seconds`) and the agents' model
API answers (`agentfleet_agent_model_responses_total`,
`agentfleet_agent_ratelimit_headroom`).
"""

from __future__ import annotations

from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

QUEUE_LABELS = ["namespace", "project", "stage", "specialty", "lane"]


class SyntheticQueueMetrics:
    """An HTTP endpoint serving the queue and worker metrics with the values you set."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.queue_depth = Gauge(
            "agentfleet_queue_depth", "Items waiting.", QUEUE_LABELS, registry=self.registry
        )
        self.oldest_wait = Gauge(
            "agentfleet_queue_oldest_wait_seconds",
            "Age of the oldest waiting item.",
            QUEUE_LABELS,
            registry=self.registry,
        )
        self.worker_busy = Gauge(
            "agentfleet_worker_busy",
            "1 while the worker holds an item.",
            ["namespace", "pool", "pod"],
            registry=self.registry,
        )
        self.enqueued_total = Counter(
            "agentfleet_queue_enqueued",
            "New items enqueued.",
            ["namespace", "project", "stage", "specialty"],
            registry=self.registry,
        )
        self.processing_seconds = Histogram(
            "agentfleet_worker_processing_seconds",
            "Time the handler spent on an item.",
            ["namespace", "pool", "stage"],
            buckets=(60, 300, 600, 1200, 3600),
            registry=self.registry,
        )
        self.model_responses = Counter(
            "agentfleet_agent_model_responses",
            "Model API responses by pool, model and status.",
            ["namespace", "pool", "model", "status"],
            registry=self.registry,
        )
        self.ratelimit_headroom = Gauge(
            "agentfleet_agent_ratelimit_headroom",
            "Share of the model API's rate-limit budget left.",
            ["namespace", "pool", "model"],
            registry=self.registry,
        )
        self._server: WSGIServer
        self._thread: Thread
        self._server, self._thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.address = f"127.0.0.1:{self._server.server_port}"

    def queue(
        self,
        namespace: str,
        stage: str,
        depth: float,
        oldest_wait: float,
        project: str = "web",
        specialty: str = "general",
        lane: str = "normal",
    ) -> None:
        labels = (namespace, project, stage, specialty, lane)
        self.queue_depth.labels(*labels).set(depth)
        self.oldest_wait.labels(*labels).set(oldest_wait)

    def busy(self, namespace: str, pool: str, *pods_busy: int) -> None:
        for index, busy in enumerate(pods_busy):
            self.worker_busy.labels(namespace, pool, f"{pool}-{index}").set(busy)

    def enqueued(
        self,
        namespace: str,
        stage: str,
        count: int,
        project: str = "web",
        specialty: str = "general",
    ) -> None:
        """`count` more items arrived (0 creates the series)."""
        self.enqueued_total.labels(namespace, project, stage, specialty).inc(count)

    def processed(self, namespace: str, pool: str, stage: str, *seconds: float) -> None:
        """The pool's workers finished items that took these many seconds."""
        child = self.processing_seconds.labels(namespace, pool, stage)
        for value in seconds:
            child.observe(value)

    def responses(
        self, namespace: str, pool: str, status: str, count: int = 1, model: str = "claude"
    ) -> None:
        """The pool's agents got `count` more model API answers with this status."""
        self.model_responses.labels(namespace, pool, model, status).inc(count)

    def headroom(self, namespace: str, pool: str, share: float, model: str = "claude") -> None:
        self.ratelimit_headroom.labels(namespace, pool, model).set(share)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
