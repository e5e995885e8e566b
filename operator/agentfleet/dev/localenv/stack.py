"""The whole local environment in one object: what `make demo`, the closed-loop e2e tests
and the benchmarks run.

A `LocalCluster` (control plane and a real node; shared when given, e.g. the test
session's), real Redis and Prometheus on the node link's host end (reachable from Pods;
Prometheus finds worker Pods through the API server and scrapes their Pod IPs), the queue
exporter, and the operator as its own host process (exactly the `agentfleet operator` a
Deployment runs). WorkerPools become Deployments whose Pods run the worker image in
containers on the node. `stop()` tears down what the stack started.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Self

from kubernetes import client, config

from agentfleet.dev.localenv.binaries import REPO_ROOT, find_binary
from agentfleet.dev.localenv.cluster import LocalCluster
from agentfleet.dev.localenv.lifecycle import Service
from agentfleet.dev.localenv.processes import ManagedProcess, free_port
from agentfleet.dev.localenv.prometheus import PrometheusServer
from agentfleet.dev.localenv.redis import RedisServer
from agentfleet.dev.localenv.waiting import DeadlineExceededError, wait_for

CRD_DIR = REPO_ROOT / "crds"


class LocalStack(Service):
    def __init__(
        self,
        namespace: str = "agentfleet-demo",
        workdir: Path | None = None,
        operator_env: dict[str, str] | None = None,
        heartbeat_timeout: float = 300.0,
        cluster: LocalCluster | None = None,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="agentfleet-stack-"))
        self.namespace = namespace
        self.operator_env = operator_env or {}
        self.heartbeat_timeout = heartbeat_timeout
        self._owns_cluster = cluster is None
        self.cluster = cluster or LocalCluster(workdir=self.workdir / "cluster")
        self.redis: RedisServer | None = None
        self.prometheus: PrometheusServer | None = None
        self.exporter: ManagedProcess | None = None
        self.operator: ManagedProcess | None = None
        self.operator_metrics_port = free_port()
        self.operator_health_port = free_port()
        self.api: client.ApiClient | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        if self._owns_cluster:
            self.cluster.start()
        network = self.cluster.network
        host = network.host_ip if network else "127.0.0.1"
        self.redis = RedisServer(
            workdir=self.workdir / "redis",
            appendonly=True,
            extra_address=host,
            password=secrets.token_urlsafe(24),
        ).start()
        self.prometheus = PrometheusServer(workdir=self.workdir / "prometheus", address=host)
        pki = self.cluster.controlplane.pki
        self.prometheus.scrape_pods(
            self.cluster.server, pki.ca.cert, pki.admin.cert, pki.admin.key, [self.namespace]
        )
        self.prometheus.start()
        self.api = config.new_client_from_config(config_file=str(self.cluster.kubeconfig))
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_DIR))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        core = client.CoreV1Api(self.api)
        if not core.list_namespace(field_selector=f"metadata.name={self.namespace}").items:
            core.create_namespace(
                client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace))
            )
        self._start_exporter()
        self.start_operator()

    @property
    def redis_url(self) -> str:
        """Redis as Pods (and the host) reach it."""
        if self.redis is None:
            raise RuntimeError("the stack is not started")
        return self.redis.pod_url

    def worker_env(self) -> list[dict[str, str]]:
        """`spec.env` entries for a WorkerPool of this stack: its heartbeat timing."""
        return [
            {"name": "AGENTFLEET_HEARTBEAT_TIMEOUT", "value": str(self.heartbeat_timeout)},
            {
                "name": "AGENTFLEET_HEARTBEAT_INTERVAL",
                "value": str(min(10.0, self.heartbeat_timeout / 4)),
            },
        ]

    def _start_exporter(self) -> None:
        if self.prometheus is None:
            raise RuntimeError("Prometheus is not started")
        port = free_port()
        self.exporter = ManagedProcess(
            "queue-exporter",
            [
                sys.executable,
                "-m",
                "agentfleet",
                "queue-exporter",
                "--port",
                str(port),
                "--address",
                "127.0.0.1",
                "--heartbeat-timeout",
                str(self.heartbeat_timeout),
            ],
            self.workdir / "logs",
            env={**os.environ, "AGENTFLEET_REDIS_URL": self.redis_url},
        )
        self.exporter.start()
        self.exporter.wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{port}/metrics"), 30, "serving /metrics"
        )
        self.prometheus.add_target(f"127.0.0.1:{port}", job_role="queue-exporter")

    def start_operator(self) -> ManagedProcess:
        """(Re)start the operator process; tests stop and start it to prove recovery."""
        if self.prometheus is None:
            raise RuntimeError("Prometheus is not started")
        env = {
            **os.environ,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "AGENTFLEET_REDIS_URL": self.redis_url,
            "AGENTFLEET_PROMETHEUS_URL": self.prometheus.url,
            # Cluster DNS here is CoreDNS on the node, not a kube-dns Pod.
            **(
                {"AGENTFLEET_DNS_CIDRS": f"{self.cluster.network.node_ip}/32"}
                if self.cluster.network
                else {}
            ),
            **self.operator_env,
        }
        self.operator = ManagedProcess(
            "operator",
            [
                sys.executable,
                "-m",
                "agentfleet",
                "operator",
                "--namespace",
                self.namespace,
                "--standalone",
                "--health-port",
                str(self.operator_health_port),
                "--metrics-port",
                str(self.operator_metrics_port),
                "--log-format",
                "plain",
            ],
            self.workdir / "logs",
            env=env,
        )
        self.operator.start()
        self.operator.wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{self.operator_health_port}/healthz"),
            60,
            "healthy (/healthz)",
        )
        self.prometheus.add_target(f"127.0.0.1:{self.operator_metrics_port}", job_role="operator")
        return self.operator

    def stop(self) -> None:
        for proc in (self.operator, self.exporter):
            if proc is not None:
                proc.stop()
        if self.api is not None:
            if not self._owns_cluster:
                # A shared cluster keeps running: leave no workers of this stack on it.
                self.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)
                core = client.CoreV1Api(self.api)
                with contextlib.suppress(DeadlineExceededError):
                    wait_for(
                        lambda: not core.list_namespaced_pod(self.namespace).items,
                        90,
                        f"the Pods of {self.namespace} to be gone",
                    )
            self.api.close()
        for server in (self.prometheus, self.redis):
            if server is not None:
                server.stop()
        if self._owns_cluster:
            self.cluster.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ----------------------------------------------------------------- helpers
    def add_project(self, name: str = "web", repository: str = "acme/web") -> None:
        """A Project in the stack's namespace with a placeholder credentials Secret (for
        runs whose work does not call GitHub: scaling, activation, benchmarks)."""
        secret = f"{name}-github"
        self.kubectl("-n", self.namespace, "create", "secret", "generic", secret,
                     "--from-literal=token=t")  # fmt: skip
        self.kubectl(
            "-n", self.namespace, "apply", "-f", "-",
            stdin="apiVersion: agentfleet.dev/v1alpha1\nkind: Project\n"
            f"metadata: {{name: {name}}}\n"
            f"spec: {{repository: {repository}, credentialsSecretRef: {{name: {secret}}}}}\n",
        )  # fmt: skip

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [str(find_binary("kubectl")), "--kubeconfig", str(self.cluster.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def logs(self, lines: int = 60) -> str:
        parts = [self.cluster.logs(lines)]
        servers = [
            self.operator,
            self.exporter,
            self.redis.process if self.redis else None,
            self.prometheus.process if self.prometheus else None,
        ]
        for proc in servers:
            if proc is not None:
                parts.append(f"----- {proc.name} ({proc.log_path}) -----\n{proc.log_tail(lines)}")
        pods = self.kubectl("get", "pods", "-n", self.namespace, "-o", "wide", check=False)
        parts.append(f"----- pods in {self.namespace} -----\n{pods}")
        return "\n".join(parts)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)
