"""A real Prometheus server whose scrape targets can change while it runs.

Targets come from a file_sd file that Prometheus re-reads every second, so tests and the
demo can add and remove endpoints (workers, exporters) without a reload.
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

from agentfleet.localenv.binaries import find_binary
from agentfleet.localenv.lifecycle import Service
from agentfleet.localenv.processes import ManagedProcess, free_port


class PrometheusServer(Service):
    def __init__(
        self,
        workdir: Path | None = None,
        scrape_interval: str = "1s",
        rule_files: list[Path] | None = None,
    ) -> None:
        self._owns_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="agentfleet-prom-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scrape_interval = scrape_interval
        self.rule_files = rule_files or []
        self.targets_file = self.workdir / "targets.json"
        self.process: ManagedProcess | None = None
        self._targets: dict[str, dict[str, str]] = {}
        self._targets_lock = threading.Lock()  # the pod runner edits targets from threads

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
                f"--web.listen-address=127.0.0.1:{self.port}",
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
