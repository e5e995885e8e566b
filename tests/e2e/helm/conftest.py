"""agentfleet installed as a user installs it: `helm install` of charts/agentfleet into the
local cluster, with the images `make images` built and the node imported, two operator
replicas (one active through kopf peering), the bundled Redis and the queue exporter in
Pods, and a host Prometheus that finds the operator, exporter and worker Pods with
`kubernetes_sd_configs` against the API server and scrapes them by Pod IP.

The installation is shared by the tests of this folder (module scope): each test gets a
namespace of its own that the operator watches, with a Project and a WorkerPool whose
workers run the `command` handler. Every log (cluster, Prometheus, the Pods of the
release and of the test's namespace) is printed when a test fails.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.core.api import Stage
from agentfleet.core.queue import Lane, WorkItem, WorkQueue
from agentfleet.dev.chartcrds import adopt_crds
from agentfleet.dev.localenv import PrometheusServer, find_binary
from agentfleet.dev.localenv.cluster import LocalCluster
from agentfleet.dev.localenv.waiting import wait_for

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "agentfleet"
LOCAL_VALUES = REPO / "examples" / "helm" / "values-local.yaml"
RELEASE = "af"
PSA_ENFORCE = "pod-security.kubernetes.io/enforce"
PSA_WARN = "pod-security.kubernetes.io/warn"
OPERATOR = f"{RELEASE}-agentfleet"
HEARTBEAT_TIMEOUT = 10
TEAMS = ("team-a", "team-b", "team-c", "team-d", "team-e")
GROUP = ("agentfleet.dev", "v1alpha1")
# The `command` handler runs a shell command; this one runs the item's own `run` field.
RUN_PAYLOAD = (
    "python3 -c 'import json, os, subprocess, sys; "
    'sys.exit(subprocess.call(json.loads(os.environ["AGENTFLEET_ITEM_PAYLOAD"])["run"], '
    "shell=True))'"
)


def run(*argv: str, stdin: str | None = None, timeout: float = 300) -> str:
    result = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:4])} ... failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@dataclass
class Installation:
    cluster: LocalCluster
    api: client.ApiClient
    prometheus: PrometheusServer
    system: str
    """The release's namespace."""
    teams: dict[str, str]
    """Team name -> its namespace (the operator watches these)."""
    used: set[str] = field(default_factory=set)

    # ------------------------------------------------------------- tools
    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        kubectl = str(find_binary("kubectl"))
        return run(kubectl, "--kubeconfig", str(self.cluster.kubeconfig), *args, stdin=stdin)

    def helm(self, *args: str) -> str:
        return run(str(find_binary("helm")), "--kubeconfig", str(self.cluster.kubeconfig), *args)

    def take_team(self) -> str:
        """A namespace the operator watches, for one test."""
        for team, namespace in self.teams.items():
            if team not in self.used:
                self.used.add(team)
                return namespace
        raise AssertionError("every team namespace is taken: add one to TEAMS")

    # ------------------------------------------------------------- reads
    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Live (not terminating) Pods, as dicts."""
        listing = json.loads(
            self.kubectl("get", "pods", "-n", namespace, "-l", selector, "-o", "json")
        )
        return [p for p in listing["items"] if not p["metadata"].get("deletionTimestamp")]

    def ready(self, pod: dict[str, Any]) -> bool:
        conditions = pod.get("status", {}).get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def operator_pods(self) -> list[dict[str, Any]]:
        return self.pods(self.system, "app.kubernetes.io/component=operator")

    def pod_metric(self, pod: dict[str, Any], port: int, name: str, **labels: str) -> float:
        """The sum of the samples of a Pod's /metrics with these labels, read by Pod IP."""
        text = httpx.get(f"http://{pod['status']['podIP']}:{port}/metrics", timeout=5).text
        return sum(
            float(sample.value)
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    def redis_url(self) -> str:
        """The bundled Redis through its Service IP (the host routes the Service range),
        with the password the chart generated."""
        ip = self.kubectl(
            "get",
            "service",
            "agentfleet-redis",
            "-n",
            self.system,
            "-o",
            "jsonpath={.spec.clusterIP}",
        )
        secret = client.CoreV1Api(self.api).read_namespaced_secret("agentfleet-redis", self.system)
        password = base64.b64decode(secret.data["password"]).decode()
        return f"redis://:{password}@{ip}:6379/0"

    def run_queue(self, work: Any) -> Any:
        async def go() -> Any:
            queue = WorkQueue.from_url(self.redis_url())
            try:
                return await work(queue)
            finally:
                await queue.close()

        return asyncio.run(go())

    def enqueue(self, *items: WorkItem) -> None:
        self.run_queue(lambda queue: queue.enqueue(*items))

    def completions(self, namespace: str) -> tuple[Counter[str], dict[str, dict[str, str]]]:
        log: list[dict[str, str]] = self.run_queue(lambda queue: queue.completion_log(namespace))
        return Counter(e["id"] for e in log), {e["id"]: e for e in log}

    def in_flight(self, namespace: str, project: str) -> int:
        stats = self.run_queue(lambda queue: queue.stats(namespace, project))
        development = stats.stages.get(Stage.DEVELOPMENT)
        return 0 if development is None else int(development.in_flight)

    def pool(self, namespace: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            *GROUP, namespace, "workerpools", name
        )
        return found

    def deployment_replicas(self, namespace: str, name: str) -> int:
        replicas: int = (
            client.AppsV1Api(self.api).read_namespaced_deployment(name, namespace).spec.replicas
        )
        return replicas

    # ------------------------------------------------------------- writes
    @staticmethod
    def item(namespace: str, key: str, command: str = "sleep 1") -> WorkItem:
        """A development item for project `web`; its payload says what the worker runs."""
        return WorkItem(
            id=f"web/{key}/development",
            namespace=namespace,
            project="web",
            stage=Stage.DEVELOPMENT,
            lane=Lane.NORMAL,
            payload={"run": command},
        )

    def apply_pool(
        self,
        namespace: str,
        name: str,
        min_replicas: int,
        max_replicas: int,
        egress: list[dict[str, Any]] | None = None,
    ) -> None:
        manifest = {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": name},
            "spec": {
                "stage": "development",
                "handler": "command",
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
                "terminationGracePeriodSeconds": 30,
                # Items sleep: a small share of the two-core node each.
                "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}},
                "env": [
                    {"name": "AGENTFLEET_COMMAND", "value": RUN_PAYLOAD},
                    {"name": "AGENTFLEET_HEARTBEAT_TIMEOUT", "value": str(HEARTBEAT_TIMEOUT)},
                    {"name": "AGENTFLEET_HEARTBEAT_INTERVAL", "value": "2"},
                ],
                "egress": egress or [],
                "autoscaling": {
                    "pollIntervalSeconds": 2,
                    "scaleUp": {"step": 2, "stabilizationSeconds": 0},
                    "scaleDown": {"step": 3, "cooldownSeconds": 6},
                },
            },
        }
        self.kubectl("-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    def logs(self) -> str:
        parts = [self.cluster.logs(40)]
        if self.prometheus.process is not None:
            parts.append(f"----- prometheus -----\n{self.prometheus.process.log_tail(30)}")
        for namespace in [self.system, *self.teams.values()]:
            parts.append(self.kubectl("get", "pods,events", "-n", namespace, "-o", "wide"))
            for pod in self.pods(namespace, ""):
                name = pod["metadata"]["name"]
                for container in pod["spec"]["containers"]:
                    try:
                        log = self.kubectl(
                            "logs", "-n", namespace, name, "-c", container["name"], "--tail=40"
                        )
                    except AssertionError as exc:
                        log = str(exc)
                    parts.append(f"----- {namespace}/{name}/{container['name']} -----\n{log}")
        return "\n".join(parts)


@pytest.fixture(scope="module")
def installation(
    local_cluster: LocalCluster,
    api_client: client.ApiClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Installation]:
    network = local_cluster.network
    assert network is not None
    suffix = uuid.uuid4().hex[:6]
    system = f"agentfleet-system-{suffix}"
    teams = {team: f"{team}-{suffix}" for team in TEAMS}
    pki = local_cluster.controlplane.pki
    prometheus = PrometheusServer(
        workdir=tmp_path_factory.mktemp("prometheus"), address=network.host_ip
    )
    prometheus.scrape_pods(
        local_cluster.server, pki.ca.cert, pki.admin.cert, pki.admin.key, [system, *teams.values()]
    )
    prometheus.start()
    installed = Installation(local_cluster, api_client, prometheus, system, teams)
    # Every namespace enforces Pod Security `restricted`: the release's Pods (operator,
    # exporter, Redis) and the workers the operator creates must all be admitted.
    for namespace in [system, *teams.values()]:
        installed.kubectl("create", "namespace", namespace)
        installed.kubectl(
            "label", "namespace", namespace, f"{PSA_ENFORCE}=restricted", f"{PSA_WARN}=restricted"
        )
    for namespace in teams.values():
        installed.kubectl(
            "-n", namespace, "create", "secret", "generic", "web-github", "--from-literal=token=t"
        )
    values = {
        "replicaCount": 2,
        "watchNamespaces": list(teams.values()),
        "prometheus": {"url": prometheus.url},
        "queueExporter": {"heartbeatTimeoutSeconds": HEARTBEAT_TIMEOUT},
        "operator": {"logFormat": "plain"},
        # Cluster DNS on this node is CoreDNS as a node process, not a kube-dns Pod.
        "workerNetworkPolicy": {"dnsCidrs": [f"{network.node_ip}/32"]},
        "networkPolicy": {
            # The local API server listens on a free port of the host, not 443/6443.
            "kubeApiPorts": [urlsplit(local_cluster.server).port],
            # The tests read and write the queue from the host, through the Service.
            "redis": {
                "extraIngress": [
                    {
                        "from": [{"ipBlock": {"cidr": f"{network.host_ip}/32"}}],
                        "ports": [{"port": 6379, "protocol": "TCP"}],
                    }
                ]
            },
        },
    }
    values_file = tmp_path_factory.mktemp("values") / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    # The chart renders the CRDs; others in this cluster (earlier tests) hand them over.
    kubectl = [str(find_binary("kubectl")), "--kubeconfig", str(local_cluster.kubeconfig)]
    adopt_crds(kubectl, RELEASE, system)
    try:
        try:
            installed.helm(
                "install", RELEASE, str(CHART), "--namespace", system,
                "-f", str(LOCAL_VALUES), "-f", str(values_file),
                "--wait", "--timeout", "180s",
            )  # fmt: skip
        except AssertionError as failed:
            # What kept the release from becoming ready, next to helm's "context deadline".
            raise AssertionError(f"{failed}\n{_pod_report(installed, system)}") from None
        for namespace in teams.values():
            installed.kubectl(
                "-n", namespace, "apply", "-f", "-",
                stdin="apiVersion: agentfleet.dev/v1alpha1\nkind: Project\nmetadata: {name: web}\n"
                "spec: {repository: acme/web, credentialsSecretRef: {name: web-github}}\n",
            )  # fmt: skip
        yield installed
    finally:
        try:
            installed.helm(
                "uninstall", RELEASE, "--namespace", system, "--wait", "--timeout", "120s"
            )
        finally:
            for namespace in [*teams.values(), system]:
                installed.kubectl("delete", "namespace", namespace, "--wait=false")
            core = client.CoreV1Api(api_client)
            for namespace in [*teams.values(), system]:
                wait_for(
                    lambda ns=namespace: not core.list_namespaced_pod(ns).items,  # type: ignore[misc]
                    120,
                    f"the Pods of {namespace} gone",
                )
            prometheus.stop()


def _pod_report(installed: Installation, namespace: str) -> str:
    """The namespace's Pods, their recent Events and the last log lines of each container."""
    parts = [installed.kubectl("-n", namespace, "get", "pods", "-o", "wide")]
    parts.append(installed.kubectl("-n", namespace, "get", "events", "--sort-by=.lastTimestamp"))
    pods = json.loads(installed.kubectl("-n", namespace, "get", "pods", "-o", "json"))
    for pod in pods["items"]:
        for container in pod["spec"]["containers"]:
            name = f"{pod['metadata']['name']}/{container['name']}"
            try:
                logs = installed.kubectl(
                    "-n", namespace, "logs", pod["metadata"]["name"], "-c", container["name"],
                    "--tail=40",
                )  # fmt: skip
            except AssertionError as error:
                logs = str(error)
            parts.append(f"---- {name} ----\n{logs}")
    return "\n".join(parts)


@pytest.fixture
def report_on_failure(
    installation: Installation, request: pytest.FixtureRequest
) -> Iterator[Installation]:
    yield installation
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(installation.logs())
