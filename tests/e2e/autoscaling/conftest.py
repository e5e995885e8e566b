"""The whole closed loop on this machine: a `LocalStack` (real control plane, Redis,
Prometheus scraping every second, the queue exporter, the operator process with the
autoscaler, and the pod runner standing in for kubelet), plus readers for what the tests
look at. Every log is printed when a test fails."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.localenv import BinaryNotFoundError
from agentfleet.localenv.stack import LocalStack
from agentfleet.queue import WorkQueue

GROUP, VERSION = "agentfleet.dev", "v1alpha1"


class Cluster:
    """Reads of one WorkerPool, its Deployment, Pods and Events, and of the operator's
    own /metrics (readable while Prometheus is down)."""

    def __init__(self, stack: LocalStack) -> None:
        assert stack.api is not None
        self.stack = stack
        self.namespace = stack.namespace
        self.custom = client.CustomObjectsApi(stack.api)
        self.apps = client.AppsV1Api(stack.api)
        self.core = client.CoreV1Api(stack.api)

    def pool(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "workerpools", name
        )
        return found

    def condition(self, pool: str, kind: str) -> dict[str, Any] | None:
        for condition in (self.pool(pool).get("status") or {}).get("conditions") or []:
            if condition["type"] == kind:
                found: dict[str, Any] = condition
                return found
        return None

    def deployment_replicas(self, name: str) -> int:
        replicas: int = self.apps.read_namespaced_deployment(name, self.namespace).spec.replicas
        return replicas

    def pods(self, pool: str) -> dict[str, dict[str, str]]:
        """Live Pods of the pool (not being deleted) -> their annotations."""
        items = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"agentfleet.dev/pool={pool}"
        ).items
        return {
            p.metadata.name: dict(p.metadata.annotations or {})
            for p in items
            if p.metadata.deletion_timestamp is None
        }

    def events(self, pool: str) -> list[tuple[str, str]]:
        """(reason, message) of the autoscaler's Events on the pool, oldest first."""
        items = self.core.list_namespaced_event(
            self.namespace,
            field_selector=f"involvedObject.name={pool},source=agentfleet-autoscaler",
        ).items
        items.sort(key=lambda e: (e.last_timestamp, e.metadata.creation_timestamp))
        return [(e.reason, e.message) for e in items]

    def operator_metric(self, name: str, **labels: str) -> float:
        """A sample from the operator's /metrics (0 when the series does not exist yet)."""
        url = f"http://127.0.0.1:{self.stack.operator_metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return 0.0

    def queue(self) -> WorkQueue:
        return WorkQueue.from_url(self.stack.redis.url)

    def run(self, coroutine: Any) -> Any:
        return asyncio.run(coroutine)


@pytest.fixture
def stack(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalStack]:
    local = LocalStack(namespace="autoscaling", workdir=tmp_path / "stack")
    try:
        local.start()
    except BinaryNotFoundError as exc:
        pytest.fail(f"required server binary missing: {exc}", pytrace=False)
    try:
        yield local
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            print(local.logs(120))
        local.stop()


@pytest.fixture
def cluster(stack: LocalStack) -> Cluster:
    return Cluster(stack)
