"""A real Prometheus server whose scrape targets can change while it runs.

Host processes (the operator, the queue exporter) come from a file_sd file that
Prometheus re-reads every second, so tests and the demo add and remove them without a
reload. Pods are discovered the way a cluster's Prometheus finds them:
`scrape_pods()` adds a `kubernetes_sd_configs` job against the local API server that
keeps Pods annotated `prometheus.io/scrape: "true"` and scrapes their Pod IP (the host
routes to the node's Pod range).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

import yaml

from agentfleet.dev.localenv.binaries import find_binary
from agentfleet.dev.localenv.lifecycle import Service
from agentfleet.dev.localenv.processes import ManagedProcess, free_port


class PrometheusServer(Service):
    def __init__(
        self,
        workdir: Path | None = None,
        scrape_interval: str = "1s",
        rule_files: list[Path] | None = None,
        address: str = "127.0.0.1",
    ) -> None:
        """`address`: where it listens; the host end of the local node's link makes it
        reachable from Pods (an in-cluster operator queries it)."""
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="agentfleet-prom-"))
        self.port = free_port()
        self.address = address
        self.url = f"http://{address}:{self.port}"
        self.scrape_interval = scrape_interval
        self.rule_files = rule_files or []
        self.targets_file = self.workdir / "targets.json"
        self.process: ManagedProcess | None = None
        self._targets: dict[str, dict[str, str]] = {}
        self._targets_lock = threading.Lock()
        self._pod_discovery: dict[str, Any] | None = None

    def _write_config(self) -> Path:
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
            },
            "scrape_configs": [
                {
                    "job_name": "agentfleet",
                    "file_sd_configs": [
                        {"files": [str(self.targets_file)], "refresh_interval": "1s"}
                    ],
                }
            ],
        }
        if self._pod_discovery is not None:
            config["scrape_configs"].append(self._pod_discovery)
        if self.rule_files:
            config["rule_files"] = [str(p) for p in self.rule_files]
        path = self.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def set_targets(self, targets: dict[str, dict[str, str]]) -> None:
        """Replace the scrape targets: {"host:port": {label: value}}."""
        with self._targets_lock:
            self._targets = dict(targets)
            self._write_targets()

    def _write_targets(self) -> None:
        groups = [{"targets": [t], "labels": labels} for t, labels in self._targets.items()]
        tmp = self.targets_file.with_name(f".targets.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(groups))
        tmp.replace(self.targets_file)  # atomic, so Prometheus never reads half a file

    def add_target(self, address: str, **labels: str) -> None:
        with self._targets_lock:
            self._targets[address] = labels
            self._write_targets()

    def remove_target(self, address: str) -> None:
        with self._targets_lock:
            if self._targets.pop(address, None) is not None:
                self._write_targets()

    def scrape_pods(
        self,
        api_server: str,
        ca: Path,
        cert: Path,
        key: Path,
        namespaces: list[str] | None = None,
    ) -> None:
        """Discover and scrape annotated Pods through the API server (all namespaces, or
        these), keeping the labels the Pods export themselves (honor_labels), as the
        chart's PodMonitor does."""
        discovery: dict[str, Any] = {
            "role": "pod",
            "api_server": api_server,
            "tls_config": {"ca_file": str(ca), "cert_file": str(cert), "key_file": str(key)},
        }
        if namespaces:
            discovery["namespaces"] = {"names": list(namespaces)}
        meta = "__meta_kubernetes_pod_"
        self._pod_discovery = {
            "job_name": "kubernetes-pods",
            "honor_labels": True,
            "kubernetes_sd_configs": [discovery],
            "relabel_configs": [
                {
                    "source_labels": [f"{meta}annotation_prometheus_io_scrape"],
                    "regex": "true",
                    "action": "keep",
                },
                {"source_labels": [f"{meta}phase"], "regex": "Running", "action": "keep"},
                {
                    "source_labels": [f"{meta}ip", f"{meta}annotation_prometheus_io_port"],
                    "regex": "(.+);(.+)",
                    "replacement": "$1:$2",
                    "target_label": "__address__",
                },
                {
                    "source_labels": [f"{meta}annotation_prometheus_io_path"],
                    "regex": "(.+)",
                    "target_label": "__metrics_path__",
                },
                {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
                {"source_labels": [f"{meta}name"], "target_label": "pod"},
            ],
        }
        if self.process is not None and self.process.running():
            self._write_config()
            request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status != 200:
                    raise RuntimeError(f"Prometheus did not reload: {response.status}")

    def start(self, timeout: float = 30.0) -> Self:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.targets_file.exists():
            self.set_targets({})
        config = self._write_config()
        self.process = ManagedProcess(
            "prometheus",
            [
                str(find_binary("prometheus")),
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address={self.address}:{self.port}",
                "--web.enable-lifecycle",
                "--log.level=warn",
            ],
            self.workdir / "logs",
        )
        self.process.start()
        self.process.wait_until(
            lambda: urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).status == 200,
            timeout,
            "ready (/-/ready)",
        )
        return self

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query through the HTTP API; the `result` list of a vector."""
        qs = urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{qs}", timeout=5) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus query failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
