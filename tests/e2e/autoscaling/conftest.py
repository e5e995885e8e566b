"""The whole closed loop on this machine: a `LocalStack` on the session's local cluster
(real control plane and node: worker Pods run in containers), with its own Redis,
Prometheus scraping every second (worker Pods discovered through the API server), the
queue exporter and the operator process with the autoscaler, plus readers for what the
tests look at; and two peered replicas of the operator on the shared cluster. Every log is
printed when a test fails."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.core.queue import WorkQueue
from agentfleet.dev.localenv import (
    BinaryNotFoundError,
    ManagedProcess,
    PrometheusServer,
    find_binary,
    free_port,
)
from agentfleet.dev.localenv.cluster import LocalCluster
from agentfleet.dev.localenv.stack import CRD_DIR, LocalStack
from agentfleet.operator.autoscaler.synthetic import SyntheticQueueMetrics

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

    def exec_in_pods(self, pool: str, *command: str) -> None:
        """Run a command in the worker container of each live Pod of the pool."""
        for pod in self.pods(pool):
            self.stack.kubectl("exec", "-n", self.namespace, pod, "-c", "worker", "--", *command)

    def queue(self) -> WorkQueue:
        return WorkQueue.from_url(self.stack.redis_url)

    def run(self, coroutine: Any) -> Any:
        return asyncio.run(coroutine)


@pytest.fixture
def stack(
    local_cluster: LocalCluster, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[LocalStack]:
    local = LocalStack(
        namespace=f"autoscaling-{uuid.uuid4().hex[:6]}",
        workdir=tmp_path / "stack",
        cluster=local_cluster,
    )
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


# ----------------------------------------------------------- operators with peering


@pytest.fixture(scope="session")
def crds(kubeconfig: Path) -> None:
    kubectl = [str(find_binary("kubectl")), f"--kubeconfig={kubeconfig}"]
    subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*kubectl, "wait", "--for=condition=established", "--timeout=60s",
         "crd/workerpools.agentfleet.dev", "crd/kopfpeerings.kopf.dev"],
        check=True,
        capture_output=True,
    )  # fmt: skip


@pytest.fixture
def synthetic_metrics(prometheus_server: PrometheusServer) -> Iterator[SyntheticQueueMetrics]:
    """Queue and worker series with values the test sets, scraped by the shared Prometheus."""
    published = SyntheticQueueMetrics()
    prometheus_server.add_target(published.address)
    yield published
    prometheus_server.remove_target(published.address)
    published.close()


@dataclass
class PeeredOperator:
    process: ManagedProcess
    metrics_port: int

    def metric(self, name: str, **labels: str) -> float | None:
        """A sample from this replica's /metrics; None when the series does not exist."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return None


@pytest.fixture
def peered_operator(
    kubeconfig: Path,
    crds: None,
    namespace: str,
    prometheus_server: PrometheusServer,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Callable[[int], PeeredOperator]]:
    """Starts replicas of the operator serving `namespace` through one peering object;
    kopf makes the one with the highest priority active and pauses the others."""
    replicas: dict[int, PeeredOperator] = {}

    def start(priority: int) -> PeeredOperator:
        health, metrics = free_port(), free_port()
        process = ManagedProcess(
            f"operator-{priority}",
            [
                sys.executable, "-m", "agentfleet", "operator", "--namespace", namespace,
                "--priority", str(priority), "--health-port", str(health),
                "--metrics-port", str(metrics), "--log-format", "plain",
            ],
            tmp_path / "logs",
            env={
                **os.environ,
                "KUBECONFIG": str(kubeconfig),
                "AGENTFLEET_PROMETHEUS_URL": prometheus_server.url,
            },
        )  # fmt: skip
        replica = PeeredOperator(process, metrics)
        replicas[priority] = replica
        process.start()
        process.wait_until(
            lambda: replica.metric("python_info") is not None, 60, "serving /metrics"
        )
        return replica

    try:
        yield start
    finally:
        report = getattr(request.node, "rep_call", None)
        for priority, replica in replicas.items():
            if report is not None and report.failed:
                print(f"---- operator {priority} ----\n{replica.process.log_tail(80)}")
            replica.process.stop()
