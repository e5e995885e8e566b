"""Queue and worker metrics with values you choose, served over HTTP for Prometheus.

The autoscaler's integration tests and benchmarks drive it through a real Prometheus
without running Redis and workers: they publish `agentfleet_queue_depth`,
`agentfleet_queue_oldest_wait_seconds` and `agentfleet_worker_busy` under the same names
and labels the queue and the workers export, and move the values to cross thresholds.
"""

from __future__ import annotations

from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Gauge, start_http_server

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

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
