"""How fast the operator builds, corrects and scales WorkerPools on the local control plane.

Starts a fresh control plane and `agentfleet operator` (standalone, one namespace), then:
1. creates N WorkerPools and times until every one has its Deployment and Ready=True;
2. edits a Deployment's replicas by hand and times until the operator restores them;
3. changes a WorkerPool's spec.replicas (what `kubectl scale` does) and times until the
   Deployment follows.
Prints the figures and the operator's resident memory.

    .venv/bin/python benchmarks/operator_reconcile.py [--pools 100] [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client, config

from agentfleet.dev.localenv import ControlPlane, ManagedProcess, find_binary, free_port
from agentfleet.dev.localenv.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "bench"
GROUP = ("agentfleet.dev", "v1alpha1", NAMESPACE, "workerpools")


def _ready_pools(custom: client.CustomObjectsApi) -> int:
    items = custom.list_namespaced_custom_object(*GROUP)["items"]
    return sum(
        1
        for pool in items
        for c in (pool.get("status") or {}).get("conditions") or []
        if c["type"] == "Ready" and c["status"] == "True"
    )


def _timed(action: Any, done: Any, poll: float = 0.01) -> float:
    start = time.monotonic()
    action()
    wait_for(done, 30, "the operator to act", interval=poll)
    return time.monotonic() - start


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pools", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    with ControlPlane() as plane, tempfile.TemporaryDirectory() as logs:
        kubectl = [str(find_binary("kubectl")), f"--kubeconfig={plane.kubeconfig}"]
        subprocess.run(
            [*kubectl, "apply", "--server-side", "-f", str(REPO_ROOT / "crds")],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *kubectl,
                "wait",
                "--for=condition=established",
                "--timeout=60s",
                "crd/workerpools.agentfleet.dev",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*kubectl, "create", "namespace", NAMESPACE], check=True, capture_output=True
        )
        api = config.new_client_from_config(config_file=str(plane.kubeconfig))
        custom = client.CustomObjectsApi(api)
        apps = client.AppsV1Api(api)

        health = free_port()
        operator = ManagedProcess(
            "operator",
            [
                sys.executable,
                "-m",
                "agentfleet",
                "operator",
                "--namespace",
                NAMESPACE,
                "--standalone",
                "--log-format",
                "plain",
                "--health-port",
                str(health),
                "--metrics-port",
                "0",
            ],
            Path(logs),
            env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
        )
        operator.start()
        operator.wait_until(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz").status == 200,
            60,
            "healthy",
        )
        try:
            start = time.monotonic()
            for n in range(args.pools):
                custom.create_namespaced_custom_object(
                    *GROUP[:3],
                    GROUP[3],
                    {
                        "apiVersion": "agentfleet.dev/v1alpha1",
                        "kind": "WorkerPool",
                        "metadata": {"name": f"pool-{n}"},
                        "spec": {
                            "stage": "development",
                            "minReplicas": 1,
                            "maxReplicas": 10,
                            "autoscaling": {"enabled": False},
                        },
                    },
                )
            created = time.monotonic() - start
            wait_for(
                lambda: _ready_pools(custom) == args.pools,
                600,
                f"{args.pools} pools Ready",
                interval=0.2,
            )
            built = time.monotonic() - start
            print(
                f"{args.pools} WorkerPools created in {created:.2f}s; all Deployments built "
                f"and Ready=True after {built:.2f}s ({args.pools / built:.1f} pools/s)"
            )

            def replicas_are(name: str, wanted: int) -> bool:
                deployment = apps.read_namespaced_deployment(name, NAMESPACE)
                return bool(deployment.spec.replicas == wanted)

            drift: list[float] = []
            scale: list[float] = []
            for n in range(args.rounds):
                name = f"pool-{n % args.pools}"
                drift.append(
                    _timed(
                        lambda name=name: apps.patch_namespaced_deployment_scale(
                            name, NAMESPACE, {"spec": {"replicas": 7}}
                        ),
                        lambda name=name: (
                            apps.read_namespaced_deployment(name, NAMESPACE).spec.replicas == 1
                        ),
                    )
                )
                wanted = 2 + n % 5
                scale.append(
                    _timed(
                        lambda name=name, wanted=wanted: (
                            custom.patch_namespaced_custom_object_scale(
                                *GROUP[:3],
                                GROUP[3],
                                name,
                                {"spec": {"replicas": wanted}},
                                _content_type="application/merge-patch+json",
                            )
                        ),
                        lambda name=name, wanted=wanted: (
                            apps.read_namespaced_deployment(name, NAMESPACE).spec.replicas == wanted
                        ),
                    )
                )
                custom.patch_namespaced_custom_object(
                    *GROUP[:3],
                    GROUP[3],
                    name,
                    {"spec": {"replicas": None}},
                    _content_type="application/merge-patch+json",
                )
                wait_for(partial(replicas_are, name, 1), 30, "back to minReplicas")
            for label, values in (
                ("hand edit of Deployment replicas restored", drift),
                ("WorkerPool scale -> Deployment replicas", scale),
            ):
                print(
                    f"{label}: median {statistics.median(values) * 1000:.0f} ms, "
                    f"p95 {_percentile(values, 0.95) * 1000:.0f} ms over {len(values)} rounds"
                )
            print(f"operator RSS: {_rss_mb(operator.pid):.0f} MB with {args.pools} pools")
        finally:
            operator.stop()
            api.close()


if __name__ == "__main__":
    main()
