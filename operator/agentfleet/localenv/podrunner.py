"""A stand-in for kubelet on a control plane that has no nodes.

The local test and demo environment runs the real kube-apiserver and
kube-controller-manager but no kubelet, so Pods of a WorkerPool's Deployment would stay
Pending forever. The pod runner watches those Pods and runs one local `agentfleet worker`
process per Pod, with the env the Pod spec declares (literal values, downward-API
fields, Secret and ConfigMap references), reports the Pod Running and Ready through the
status subresource, registers the worker's metrics endpoint with the local Prometheus,
and on Pod deletion sends the process SIGTERM and waits up to the Pod's
terminationGracePeriodSeconds before SIGKILL, exactly the contract kubelet gives a
container. It is a test and demo device, not a container runtime: images are ignored.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from agentfleet.localenv.processes import _die_with_parent, free_port
from agentfleet.localenv.prometheus import PrometheusServer

log = logging.getLogger(__name__)

WORKER_SELECTOR = "app.kubernetes.io/name=agentfleet-worker"


@dataclass
class RunningPod:
    namespace: str
    name: str
    uid: str
    process: subprocess.Popen[bytes]
    metrics_port: int
    grace_seconds: float
    labels: dict[str, str] = field(default_factory=dict)
    stopping: bool = False
    restarts: int = 0
    restart_at: float = 0.0


class PodRunner:
    def __init__(
        self,
        api_client: client.ApiClient,
        namespace: str,
        log_dir: Path,
        prometheus: PrometheusServer | None = None,
        label_selector: str = WORKER_SELECTOR,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.core = client.CoreV1Api(api_client)
        self.namespace = namespace
        self.log_dir = log_dir
        self.prometheus = prometheus
        self.label_selector = label_selector
        self.extra_env = extra_env or {}
        self.pods: dict[str, RunningPod] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._watch: watch.Watch | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> PodRunner:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="pod-runner", daemon=True)
        self._thread.start()
        self._reaper = threading.Thread(target=self._reap_forever, name="pod-reaper", daemon=True)
        self._reaper.start()
        return self

    def _reap_forever(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._reap()
            except Exception:
                log.exception("pod runner reaper failed")

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        with self._lock:
            pods = list(self.pods.values())
        threads = [threading.Thread(target=self._terminate, args=(p,)) for p in pods]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for thread in (self._thread, self._reaper):
            if thread is not None:
                thread.join(timeout=10)

    def running_pods(self) -> list[str]:
        with self._lock:
            return sorted(p.name for p in self.pods.values() if p.process.poll() is None)

    # ------------------------------------------------------------------ watch loop
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync_and_watch()
            except Exception:
                if not self._stop.is_set():
                    log.exception("pod runner watch failed; restarting")
                    self._stop.wait(1.0)

    def _sync_and_watch(self) -> None:
        listing = self.core.list_namespaced_pod(self.namespace, label_selector=self.label_selector)
        seen = set()
        for pod in listing.items:
            seen.add(pod.metadata.uid)
            self._observe(pod)
        with self._lock:
            gone = [p for p in self.pods.values() if p.uid not in seen]
        for p in gone:
            self._begin_termination(p)
        self._watch = watch.Watch()
        for event in self._watch.stream(
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=self.label_selector,
            resource_version=listing.metadata.resource_version,
            timeout_seconds=60,
        ):
            if self._stop.is_set():
                return
            pod = event["object"]
            if event["type"] == "DELETED":
                with self._lock:
                    running = self.pods.get(pod.metadata.uid)
                if running is not None:
                    self._begin_termination(running)
            else:
                self._observe(pod)

    def _observe(self, pod: client.V1Pod) -> None:
        uid = pod.metadata.uid
        with self._lock:
            running = self.pods.get(uid)
        if pod.metadata.deletion_timestamp is not None:
            if running is not None:
                self._begin_termination(running)
            return
        if running is None:
            self._launch(pod)
        elif running.process.poll() is not None and not running.stopping:
            # restartPolicy: Always — a crashed worker comes back, as under kubelet.
            log.warning(
                "worker for pod %s exited with %s; restarting",
                pod.metadata.name,
                running.process.returncode,
            )
            self._forget(running)
            self._launch(pod)
        self._reap()

    def _reap(self) -> None:
        """Restart workers that died between events (e.g. SIGKILL in a test)."""
        with self._lock:
            dead = [
                p for p in self.pods.values() if p.process.poll() is not None and not p.stopping
            ]
        for p in dead:
            with contextlib.suppress(ApiException):
                pod = self.core.read_namespaced_pod(p.name, p.namespace)
                if pod.metadata.deletion_timestamp is None and pod.metadata.uid == p.uid:
                    self._forget(p)
                    self._launch(pod)

    # ------------------------------------------------------------------ processes
    def _launch(self, pod: client.V1Pod, restarts: int = 0) -> None:
        container = pod.spec.containers[0]
        port = free_port()
        env = dict(os.environ)
        env.update(self._container_env(pod, container))
        env.update(self.extra_env)
        env["AGENTFLEET_METRICS_PORT"] = str(port)
        env["POD_NAME"] = pod.metadata.name
        argv = self._argv(container)
        log_path = self.log_dir / f"{pod.metadata.name}.log"
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - async-signal-safe calls only
            )
        grace = pod.spec.termination_grace_period_seconds
        running = RunningPod(
            namespace=pod.metadata.namespace,
            name=pod.metadata.name,
            uid=pod.metadata.uid,
            process=proc,
            metrics_port=port,
            grace_seconds=30.0 if grace is None else float(grace),
            labels=dict(pod.metadata.labels or {}),
            restarts=restarts,
        )
        with self._lock:
            self.pods[running.uid] = running
        if self.prometheus is not None:
            self.prometheus.add_target(
                f"127.0.0.1:{port}",
                namespace=running.namespace,
                pod=running.name,
                pool=running.labels.get("agentfleet.dev/pool", ""),
            )
        self._report_running(pod, restarts)
        log.info("started worker for pod %s (pid %s, metrics :%s)", running.name, proc.pid, port)

    @staticmethod
    def _argv(container: client.V1Container) -> list[str]:
        command = list(container.command or [])
        args = list(container.args or [])
        # The image's entrypoint is `agentfleet worker`; run the same CLI from this
        # Python environment rather than whatever `agentfleet` is on $PATH.
        if command[:1] == ["agentfleet"]:
            return [sys.executable, "-m", "agentfleet", *command[1:], *args]
        if command:
            return command + args
        return [sys.executable, "-m", "agentfleet", "worker", *args]

    def _container_env(self, pod: client.V1Pod, container: client.V1Container) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.env_from or []:
            if source.secret_ref is not None:
                env.update(self._secret(pod.metadata.namespace, source.secret_ref.name))
            if source.config_map_ref is not None:
                cm = self.core.read_namespaced_config_map(
                    source.config_map_ref.name, pod.metadata.namespace
                )
                env.update(cm.data or {})
        for var in container.env or []:
            if var.value is not None:
                env[var.name] = _expand(var.value, env)
            elif var.value_from is not None:
                value = self._resolve(pod, var.value_from)
                if value is not None:
                    env[var.name] = value
        return env

    def _resolve(self, pod: client.V1Pod, source: client.V1EnvVarSource) -> str | None:
        if source.field_ref is not None:
            path = source.field_ref.field_path
            fields: dict[str, Any] = {
                "metadata.name": pod.metadata.name,
                "metadata.namespace": pod.metadata.namespace,
                "metadata.uid": pod.metadata.uid,
                "status.podIP": "127.0.0.1",
                "spec.nodeName": "agentfleet-pod-runner",
                "spec.serviceAccountName": pod.spec.service_account_name or "default",
            }
            value = fields.get(path)
            return None if value is None else str(value)
        if source.secret_key_ref is not None:
            ref = source.secret_key_ref
            data = self._secret(pod.metadata.namespace, ref.name, optional=bool(ref.optional))
            return data.get(ref.key)
        if source.config_map_key_ref is not None:
            ref = source.config_map_key_ref
            cm = self.core.read_namespaced_config_map(ref.name, pod.metadata.namespace)
            return (cm.data or {}).get(ref.key)
        return None

    def _secret(self, namespace: str, name: str, optional: bool = False) -> dict[str, str]:
        try:
            secret = self.core.read_namespaced_secret(name, namespace)
        except ApiException as exc:
            if optional and exc.status == 404:
                return {}
            raise
        return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}

    def _report_running(self, pod: client.V1Pod, restarts: int) -> None:
        now = dt.datetime.now(dt.UTC).isoformat()
        ready = [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        body = {
            "status": {
                "phase": "Running",
                "conditions": ready,
                "hostIP": "127.0.0.1",
                "podIP": "127.0.0.1",
                "startTime": now,
                "containerStatuses": [
                    {
                        "name": c.name,
                        "image": c.image or "",
                        "imageID": "",
                        "ready": True,
                        "started": True,
                        "restartCount": restarts,
                        "state": {"running": {"startedAt": now}},
                    }
                    for c in pod.spec.containers
                ],
            }
        }
        with contextlib.suppress(ApiException):
            self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, body)

    def _begin_termination(self, running: RunningPod) -> None:
        with self._lock:
            if running.stopping:
                return
            running.stopping = True
        threading.Thread(target=self._terminate, args=(running,), daemon=True).start()

    def _terminate(self, running: RunningPod) -> None:
        running.stopping = True
        proc = running.process
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=running.grace_seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self._forget(running)

    def _forget(self, running: RunningPod) -> None:
        with self._lock:
            self.pods.pop(running.uid, None)
        if self.prometheus is not None:
            self.prometheus.remove_target(f"127.0.0.1:{running.metrics_port}")


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of earlier variables in a literal value."""
    for key, val in env.items():
        value = value.replace(f"$({key})", val)
    return value


def wait_until_stopped(runner: PodRunner, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while runner.running_pods() and time.monotonic() < deadline:
        time.sleep(0.1)
