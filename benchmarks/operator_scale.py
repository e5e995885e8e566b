"""The operator (with its autoscaler) against 1,000 WorkerPools on the local control plane:
its memory and the time to evaluate every pool once.

Set-up: the real control plane, a real Prometheus scraping (every second) an exporter that
publishes queue and worker series for every pool (`SyntheticQueueMetrics`), and
`agentfleet operator --all-namespaces` as its own process with AGENTFLEET_PROMETHEUS_URL,
authenticated with a ServiceAccount token as in a cluster.
No Redis and no pod runner: Pods are created and stay Pending, so no worker processes
share the machine. The pools are spread over namespaces and stages; each has its own
specialty lane. One in ten has 5 items waiting (it activates from 0 to 1 replica), the
others are idle at minReplicas 0.

Measured, from the operator's own /metrics and /proc:

- the time to create the pools, and until the operator has a Deployment for every one
  (counted from one watch, so the observer adds no load), with the API server's requests
  per pool by verb and resource and its CPU time (from its own /metrics);
- when the first poll over all pools (a first status write for each) is done, then each
  following poll's `agentfleet_autoscaler_evaluation_seconds` (fetch + decide + apply for
  all due pools) and how many decisions every pool got meanwhile (one per interval);
- the operator's RSS (VmRSS) and peak (VmHWM) from /proc/<pid>/status.

Targets: peak RSS (VmHWM) < 300 MB; the first pass over the new pools (a Deployment for
every one) within 60 s of the first create; and every pool evaluated within one poll
interval (15 s): each poll decides for all pools and takes less than the interval.

    .venv/bin/python benchmarks/operator_scale.py [--pools 1000] [--namespaces 4] [--polls 3]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, config, watch
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.core.api import Stage
from agentfleet.dev.localenv import (
    ControlPlane,
    ManagedProcess,
    PrometheusServer,
    find_binary,
    free_port,
)
from agentfleet.dev.localenv.stack import CRD_DIR
from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.operator.autoscaler.synthetic import SyntheticQueueMetrics

POLL_SECONDS = 15
RSS_TARGET_MB = 300.0
FIRST_PASS_TARGET_SECONDS = 60.0
STAGES = (Stage.GENESIS, Stage.DEVELOPMENT, Stage.CONTENT, Stage.REVIEW)


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MB."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) / 1024
    return figures


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def decisions_per_pool(
    samples: dict[str, list[tuple[dict[str, str], float]]],
) -> dict[tuple[str, str], float]:
    counts: dict[tuple[str, str], float] = {}
    for labels, value in samples.get("agentfleet_scaling_decisions_total", []):
        key = (labels["namespace"], labels["pool"])
        counts[key] = counts.get(key, 0.0) + value
    return counts


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    return sum(value for _, value in samples.get(name, []))


def service_account_kubeconfig(plane: ControlPlane, kubectl: list[str]) -> Path:
    """A kubeconfig holding a ServiceAccount token, as the operator authenticates in a
    cluster (the API server caches token reviews; a client certificate is verified on
    every request). Bound to cluster-admin: RBAC is not what is measured here."""
    for command in (
        ["create", "namespace", "agentfleet-system"],
        ["-n", "agentfleet-system", "create", "serviceaccount", "agentfleet-operator"],
        [
            "create", "clusterrolebinding", "agentfleet-operator", "--clusterrole=cluster-admin",
            "--serviceaccount=agentfleet-system:agentfleet-operator",
        ],
    ):  # fmt: skip
        subprocess.run([*kubectl, *command], check=True, capture_output=True)
    token = subprocess.run(
        [*kubectl, "-n", "agentfleet-system", "create", "token", "agentfleet-operator",
         "--duration=24h"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    ca = base64.b64encode(plane.pki.ca.cert.read_bytes()).decode()
    path = plane.workdir / "operator.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {"server": plane.server, "certificate-authority-data": ca},
                    }
                ],
                "users": [{"name": "operator", "user": {"token": token}}],
                "contexts": [
                    {"name": "local", "context": {"cluster": "local", "user": "operator"}}
                ],
                "current-context": "local",
            }
        )
    )
    path.chmod(0o600)
    return path


class DeploymentCounter:
    """Counts the Deployments that exist, from one watch: the observer must not load the
    API server it measures (listing a thousand Deployments every two seconds did)."""

    def __init__(self, apps: client.AppsV1Api) -> None:
        self.apps = apps
        self.names: set[tuple[str, str]] = set()
        self.changed = threading.Condition()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="deployment watch", daemon=True)

    def start(self) -> DeploymentCounter:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            listing = self.apps.list_deployment_for_all_namespaces()
            with self.changed:
                self.names |= {(d.metadata.namespace, d.metadata.name) for d in listing.items}
                self.changed.notify_all()
            try:
                for event in watch.Watch().stream(
                    self.apps.list_deployment_for_all_namespaces,
                    resource_version=listing.metadata.resource_version,
                    timeout_seconds=60,
                ):
                    meta = event["object"].metadata
                    with self.changed:
                        self.names.add((meta.namespace, meta.name))
                        self.changed.notify_all()
                    if self.stop.is_set():
                        return
            except client.ApiException as error:
                if error.status != 410:  # expired: list again
                    raise

    def wait(self, count: int, timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.names) >= count, timeout):
                raise TimeoutError(f"{len(self.names)} of {count} Deployments after {timeout}s")


def apiserver_load(kubeconfig: Path) -> tuple[dict[tuple[str, str], float], float]:
    """Requests served so far by (verb, resource[/subresource]), and the API server's
    CPU seconds, from its own /metrics."""
    text = subprocess.run(
        [str(find_binary("kubectl")), "--kubeconfig", str(kubeconfig), "get", "--raw", "/metrics"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    requests: dict[tuple[str, str], float] = {}
    cpu = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "apiserver_request_total":
                labels = sample.labels
                resource = labels.get("resource", "")
                if labels.get("subresource"):
                    resource += "/" + labels["subresource"]
                if labels.get("dry_run"):
                    resource += " (dry run)"
                key = (labels.get("verb", ""), resource)
                requests[key] = requests.get(key, 0.0) + sample.value
            elif sample.name == "process_cpu_seconds_total":
                cpu = sample.value
    return requests, cpu


def print_apiserver_load(
    before: tuple[dict[tuple[str, str], float], float],
    after: tuple[dict[tuple[str, str], float], float],
    pools: int,
) -> None:
    counts = {key: after[0][key] - before[0].get(key, 0.0) for key in after[0]}
    served = sum(counts.values())
    print(
        f"the API server served {served:.0f} requests ({served / pools:.1f} per pool) using "
        f"{after[1] - before[1]:.1f}s of CPU; the most frequent, per pool:"
    )
    ranked = sorted(counts.items(), key=lambda item: -item[1])
    for (verb, resource), count in ranked[:12]:
        if count >= pools / 10:
            print(f"  {count / pools:5.2f}  {verb} {resource}")


def pool_body(index: int, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": f"pool-{index:04d}", "namespace": namespace},
        "spec": {
            "stage": STAGES[index % len(STAGES)].value,
            "specialties": [f"lane-{index:04d}"],
            "minReplicas": 0,
            "maxReplicas": 3,
            "autoscaling": {"pollIntervalSeconds": POLL_SECONDS},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pools", type=int, default=1000)
    parser.add_argument("--namespaces", type=int, default=4)
    parser.add_argument("--polls", type=int, default=3, help="full polls to measure")
    parser.add_argument(
        "--without-autoscaler",
        action="store_true",
        help="run the operator without a Prometheus URL (its memory without the autoscaler)",
    )
    parser.add_argument(
        "--operator-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment of the operator process (repeatable)",
    )
    args = parser.parse_args()
    extra_env = dict(pair.split("=", 1) for pair in args.operator_env)

    workdir = Path(tempfile.mkdtemp(prefix="agentfleet-operator-scale-"))
    plane = ControlPlane(workdir=workdir / "controlplane")
    prometheus = PrometheusServer(workdir=workdir / "prometheus")
    exporter = SyntheticQueueMetrics()
    operator: ManagedProcess | None = None
    namespaces = [f"scale-{n}" for n in range(args.namespaces)]
    print(f"starting the control plane and Prometheus ({workdir}) ...", flush=True)
    try:
        plane.start()
        prometheus.start()
        prometheus.set_targets({exporter.address: {}})
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        core, custom, apps = (
            client.CoreV1Api(api),
            client.CustomObjectsApi(api),
            client.AppsV1Api(api),
        )
        for command in (
            ["apply", "--server-side", "-f", str(CRD_DIR)],
            ["wait", "--for=condition=Established", "crd", "--all", "--timeout=60s"],
        ):
            subprocess.run(
                [str(find_binary("kubectl")), "--kubeconfig", str(plane.kubeconfig), *command],
                check=True,
                capture_output=True,
            )
        for namespace in namespaces:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))

        pools = [(i, namespaces[i % len(namespaces)]) for i in range(args.pools)]
        for namespace in namespaces:
            for stage in STAGES:
                exporter.queue(namespace, stage.value, depth=0, oldest_wait=0)
        for i, namespace in pools:
            stage_name = STAGES[i % len(STAGES)].value
            waiting = 5 if i % 10 == 0 else 0
            exporter.queue(
                namespace, stage_name, depth=waiting, oldest_wait=30 if waiting else 0,
                specialty=f"lane-{i:04d}",
            )  # fmt: skip
            exporter.busy(namespace, f"pool-{i:04d}", 0)

        operator_kubeconfig = service_account_kubeconfig(
            plane, [str(find_binary("kubectl")), "--kubeconfig", str(plane.kubeconfig)]
        )
        metrics_port, health_port = free_port(), free_port()
        url = prometheus.url
        operator = ManagedProcess(
            "operator",
            [
                sys.executable, "-m", "agentfleet", "operator", "--all-namespaces",
                "--standalone", "--health-port", str(health_port),
                "--metrics-port", str(metrics_port), "--log-format", "plain",
            ],
            workdir / "logs",
            env={
                **os.environ,
                "KUBECONFIG": str(operator_kubeconfig),
                **({} if args.without_autoscaler else {"AGENTFLEET_PROMETHEUS_URL": url}),
                **extra_env,
            },
        )  # fmt: skip
        operator.start()
        operator.wait_until(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz").status == 200,
            60,
            "healthy",
        )
        idle = proc_status(operator.pid)
        print(f"operator up (pid {operator.pid}), RSS {idle['VmRSS']:.0f} MB with no pools")

        counter = DeploymentCounter(apps).start()
        load_before = apiserver_load(plane.kubeconfig)
        t0, cpu_before = time.monotonic(), cpu_seconds(operator.pid)
        with ThreadPoolExecutor(8) as threads:
            list(
                threads.map(
                    lambda p: custom.create_namespaced_custom_object(
                        "agentfleet.dev", "v1alpha1", p[1], "workerpools", pool_body(*p)
                    ),
                    pools,
                )
            )
        created = time.monotonic() - t0
        print(f"created {args.pools} WorkerPools in {created:.1f}s", flush=True)

        counter.wait(args.pools, 1800)
        counter.stop.set()
        reconciled = time.monotonic() - t0
        first_pass_cpu = cpu_seconds(operator.pid) - cpu_before
        print(f"the operator had a Deployment for every pool {reconciled:.1f}s after the "
              f"first create, using {first_pass_cpu:.1f}s of CPU (machine load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)", flush=True)  # fmt: skip
        print_apiserver_load(load_before, apiserver_load(plane.kubeconfig), args.pools)

        if args.without_autoscaler:
            settle_until = time.monotonic() + 2 * POLL_SECONDS
            rss: list[float] = []
            while time.monotonic() < settle_until:
                rss.append(proc_status(operator.pid)["VmRSS"])
                time.sleep(1)
            final = proc_status(operator.pid)
            print(
                f"without the autoscaler: operator RSS {final['VmRSS']:.0f} MB, "
                f"peak VmHWM {final['VmHWM']:.0f} MB"
            )
            first_pass_ok = reconciled < FIRST_PASS_TARGET_SECONDS
            rss_ok = final["VmHWM"] < RSS_TARGET_MB
            print(
                f"targets: RSS < {RSS_TARGET_MB:.0f} MB: {'met' if rss_ok else 'MISSED'}; "
                f"first pass < {FIRST_PASS_TARGET_SECONDS:.0f}s: "
                f"{'met' if first_pass_ok else 'MISSED'} ({reconciled:.1f}s)"
            )
            return 0 if rss_ok and first_pass_ok else 1

        def known() -> bool:
            replicas = scrape(metrics_port).get("agentfleet_pool_current_replicas", [])
            return bool(len(replicas) >= args.pools)

        wait_for(known, 600, "every pool evaluated at least once", interval=1)
        known_at = time.monotonic() - t0
        print(f"the autoscaler had evaluated every pool {known_at:.1f}s after the first create")

        # The poll running now decides for every pool for the first time: a status write
        # (conditions, metrics) for each, a scale-up for the pools with items waiting.
        first = total(scrape(metrics_port), "agentfleet_autoscaler_evaluation_seconds_count")
        cold = wait_for(
            lambda: (
                (now := scrape(metrics_port))
                and total(now, "agentfleet_autoscaler_evaluation_seconds_count") > first
                and now
            ),
            600,
            "the first poll over every pool",
            interval=0.5,
        )
        print(
            "first poll over every pool (first status write for each) finished "
            f"{time.monotonic() - t0:.1f}s after the first create",
            flush=True,
        )

        durations: list[float] = []
        rss = []
        last = cold
        cpu_start, wall_start = cpu_seconds(operator.pid), time.monotonic()
        while len(durations) < args.polls:
            time.sleep(0.5)
            now = scrape(metrics_port)
            rss.append(proc_status(operator.pid)["VmRSS"])
            polls = total(now, "agentfleet_autoscaler_evaluation_seconds_count") - total(
                last, "agentfleet_autoscaler_evaluation_seconds_count"
            )
            if not polls:
                continue
            took = total(now, "agentfleet_autoscaler_evaluation_seconds_sum") - total(
                last, "agentfleet_autoscaler_evaluation_seconds_sum"
            )
            durations.append(took / polls)
            print(f"poll {len(durations)}: {took / polls:.2f}s", flush=True)
            last = now
        window = time.monotonic() - wall_start
        busy = (cpu_seconds(operator.pid) - cpu_start) / window
        reconciles = (
            total(last, "agentfleet_operator_reconciles_total")
            - total(cold, "agentfleet_operator_reconciles_total")
        ) / window
        # Decisions per pool over the window: every pool must get one per poll interval.
        per_pool = decisions_per_pool(last)
        before = decisions_per_pool(cold)
        fewest = min(per_pool.get(key, 0) - before.get(key, 0) for key in per_pool)
        intervals = int(window // POLL_SECONDS)
        print(
            f"every pool decided at least {fewest:.0f} times in {window:.0f}s "
            f"({intervals} full poll intervals); pools evaluated: {len(per_pool)}"
        )
        print(
            f"while polling: operator CPU {busy:.0%} of one core, {reconciles:.1f} WorkerPool "
            f"reconciles/s (the operator's resync)"
        )
        final = proc_status(operator.pid)
        # What the pools told their users: one Created each, a ScaledUp per activation,
        # and nothing else on a quiet run (a Warning here is a defect to look at).
        census: dict[str, int] = {}
        warnings: dict[str, str] = {}
        for event in core.list_event_for_all_namespaces().items:
            if event.involved_object.kind == "WorkerPool":
                census[event.reason] = census.get(event.reason, 0) + (event.count or 1)
                if event.type == "Warning":
                    warnings.setdefault(event.reason, event.message)
        print(
            "WorkerPool Events by reason: "
            + ", ".join(f"{reason} {n}" for reason, n in sorted(census.items()))
        )
        for reason, message in sorted(warnings.items()):
            print(f"  e.g. Warning {reason}: {message}")
        replicas = total(last, "agentfleet_pool_desired_replicas")
        print(f"pools at 1 replica (items waiting): {replicas:.0f}")
        print(
            f"operator RSS {final['VmRSS']:.0f} MB now (max seen while polling "
            f"{max(rss):.0f} MB), peak VmHWM {final['VmHWM']:.0f} MB"
        )
    finally:
        if operator is not None:
            operator.stop()
        exporter.close()
        prometheus.stop()
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    every_pool = len(per_pool) >= args.pools and fewest >= intervals
    in_time = max(durations) < POLL_SECONDS
    rss_ok = final["VmHWM"] < RSS_TARGET_MB
    first_pass_ok = reconciled < FIRST_PASS_TARGET_SECONDS
    print(
        f"targets: RSS < {RSS_TARGET_MB:.0f} MB: {'met' if rss_ok else 'MISSED'} "
        f"(peak {final['VmHWM']:.0f} MB); first pass over the new pools < "
        f"{FIRST_PASS_TARGET_SECONDS:.0f}s: {'met' if first_pass_ok else 'MISSED'} "
        f"({reconciled:.1f}s); every pool evaluated within {POLL_SECONDS}s: "
        f"{'met' if every_pool and in_time else 'MISSED'} "
        f"(slowest poll {max(durations):.2f}s)"
    )
    return 0 if rss_ok and first_pass_ok and every_pool and in_time else 1


if __name__ == "__main__":
    sys.exit(main())
