"""The whole local environment in one object: what `make demo`, the closed-loop e2e test
and the benchmarks run.

Real control plane, real Redis, real Prometheus (1 s scrape), the queue exporter, the
operator as its own process (exactly the `agentfleet operator` a Deployment would run),
and the pod runner standing in for kubelet. Everything is torn down by `stop()`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Self

from kubernetes import client, config

from agentfleet.localenv.binaries import find_binary
from agentfleet.localenv.controlplane import ControlPlane
from agentfleet.localenv.lifecycle import Service
from agentfleet.localenv.podrunner import PodRunner
from agentfleet.localenv.processes import ManagedProcess, free_port
from agentfleet.localenv.prometheus import PrometheusServer
from agentfleet.localenv.redis import RedisServer

REPO_ROOT = Path(__file__).resolve().parents[3]
CRD_DIR = REPO_ROOT / "crds"


class LocalStack(Service):
    def __init__(
        self,
        namespace: str = "agentfleet-demo",
        workdir: Path | None = None,
        operator_env: dict[str, str] | None = None,
        worker_env: dict[str, str] | None = None,
        heartbeat_timeout: float = 300.0,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="agentfleet-stack-"))
        self.namespace = namespace
        self.operator_env = operator_env or {}
        self.worker_env = worker_env or {}
        self.heartbeat_timeout = heartbeat_timeout
        self.controlplane = ControlPlane(workdir=self.workdir / "controlplane")
        self.redis = RedisServer(workdir=self.workdir / "redis", appendonly=True)
        self.prometheus = PrometheusServer(workdir=self.workdir / "prometheus")
        self.exporter: ManagedProcess | None = None
        self.operator: ManagedProcess | None = None
        self.operator_metrics_port = free_port()
        self.operator_health_port = free_port()
        self.runner: PodRunner | None = None
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
        self.controlplane.start()
        self.redis.start()
        self.prometheus.start()
        self.api = config.new_client_from_config(config_file=str(self.controlplane.kubeconfig))
        self.kubectl("apply", "--server-side", "-f", str(CRD_DIR))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        client.CoreV1Api(self.api).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace))
        )
        self._start_exporter()
        self.start_operator()
        self.runner = PodRunner(
            self.api,
            self.namespace,
            self.workdir / "pods",
            prometheus=self.prometheus,
            extra_env={
                "AGENTFLEET_HEARTBEAT_TIMEOUT": str(self.heartbeat_timeout),
                "AGENTFLEET_HEARTBEAT_INTERVAL": str(min(10.0, self.heartbeat_timeout / 4)),
                **self.worker_env,
            },
        ).start()

    def _start_exporter(self) -> None:
        port = free_port()
        self.exporter = ManagedProcess(
            "queue-exporter",
            [
                sys.executable,
                "-m",
                "agentfleet",
                "queue-exporter",
                "--redis-url",
                self.redis.url,
                "--port",
                str(port),
                "--address",
                "127.0.0.1",
                "--heartbeat-timeout",
                str(self.heartbeat_timeout),
            ],
            self.workdir / "logs",
        )
        self.exporter.start()
        self.exporter.wait_until(
            lambda: _http_ok(f"http://127.0.0.1:{port}/metrics"), 30, "serving /metrics"
        )
        self.prometheus.add_target(f"127.0.0.1:{port}", job_role="queue-exporter")

    def start_operator(self) -> ManagedProcess:
        """(Re)start the operator process; tests stop and start it to prove recovery."""
        env = {
            **os.environ,
            "KUBECONFIG": str(self.controlplane.kubeconfig),
            "AGENTFLEET_REDIS_URL": self.redis.url,
            "AGENTFLEET_PROMETHEUS_URL": self.prometheus.url,
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
        if self.runner is not None:
            self.runner.stop()
        for proc in (self.operator, self.exporter):
            if proc is not None:
                proc.stop()
        self.prometheus.stop()
        self.redis.stop()
        if self.api is not None:
            self.api.close()
        self.controlplane.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ----------------------------------------------------------------- helpers
    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(find_binary("kubectl")), "--kubeconfig", str(self.controlplane.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def logs(self, lines: int = 60) -> str:
        parts = [self.controlplane.logs(lines)]
        for proc in (self.operator, self.exporter, self.redis.process, self.prometheus.process):
            if proc is not None:
                parts.append(f"----- {proc.name} ({proc.log_path}) -----\n{proc.log_tail(lines)}")
        return "\n".join(parts)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return bool(resp.status == 200)
