"""The operator under test: `agentfleet operator` as a subprocess against the real control
plane, serving namespaces named `afop-*` (so it never touches other areas' namespaces).

Its log is printed when a test fails, and every test checks that it is still running:
whatever a test throws at the API server, the operator must not crash.
"""

from __future__ import annotations

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
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agentfleet.core.api.workerpool import DEFAULT_WORKER_IMAGE
from agentfleet.dev.localenv import ManagedProcess, RedisServer, find_binary, free_port
from agentfleet.dev.localenv.cluster import LocalCluster
from agentfleet.dev.localenv.controlplane import write_kubeconfig
from agentfleet.dev.localenv.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[3]
NAMESPACE_PREFIX = "afop-"
RESYNC_SECONDS = 3
PROJECT_STATUS_SECONDS = 2

Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class RunningOperator:
    process: ManagedProcess
    health_port: int
    metrics_port: int
    api_port: int
    """The read API (`--api-port`), on every interface: the API server's service proxy
    reaches it on the host's address (tests/e2e/operator/test_cli_read_api.py)."""

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def get(self, path: str, port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            body: bytes = response.read()
            return body.decode()


def operator_command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "agentfleet", "operator", "--log-format", "full", *extra]


def start_operator(
    kubeconfig: Path, log_dir: Path, name: str, args: list[str], redis_url: str | None = None
) -> RunningOperator:
    health, metrics, api = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "AGENTFLEET_RESYNC_SECONDS": str(RESYNC_SECONDS),
        "AGENTFLEET_PROJECT_STATUS_SECONDS": str(PROJECT_STATUS_SECONDS),
    }
    if redis_url:
        env["AGENTFLEET_REDIS_URL"] = redis_url
    command = operator_command(
        "--health-port", str(health), "--metrics-port", str(metrics), "--api-port", str(api),
        *args,
    )  # fmt: skip
    process = ManagedProcess(name, command, log_dir, env=env)
    process.start()
    running = RunningOperator(process, health, metrics, api)
    process.wait_until(lambda: running.get("/healthz", health) is not None, 60, "healthy")
    return running


RELAY = """
import asyncio, sys

async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()

async def relay(reader, writer):
    upstream_reader, upstream_writer = await asyncio.open_connection(sys.argv[1], sys.argv[2])
    await asyncio.gather(
        pipe(reader, upstream_writer), pipe(upstream_reader, writer), return_exceptions=True
    )

async def main():
    server = await asyncio.start_server(relay, "0.0.0.0", 8083)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"""
"""A TCP relay from a Pod's port 8083 to the operator on the host (the Pod's argv)."""


def expose_read_api(
    api_client: client.ApiClient, namespace: str, name: str, address: str, port: int
) -> str:
    """A Service `name` (port `api`) in front of an operator's read API running on this
    host, as the chart's Service is in front of the operator's Pods: the API server's
    service proxy only dials Pod IPs (an endpoint must name its Pod), so a relay Pod
    forwards to the host's `address` and `port`. Returns what `--operator-service` takes
    once the relay is Ready."""
    core = client.CoreV1Api(api_client)
    labels = {"app.kubernetes.io/name": name}
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": f"{name}-relay", "labels": labels},
            "spec": {
                "terminationGracePeriodSeconds": 0,
                "containers": [
                    {
                        "name": "relay",
                        "image": DEFAULT_WORKER_IMAGE,
                        "imagePullPolicy": "Never",
                        "command": ["python3", "-c", RELAY, address, str(port)],
                        "ports": [{"name": "api", "containerPort": 8083}],
                        "readinessProbe": {"tcpSocket": {"port": 8083}, "periodSeconds": 1},
                    }
                ],
            },
        },
    )
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": name},
            "spec": {
                "selector": labels,
                "ports": [{"name": "api", "port": 8083, "targetPort": "api"}],
            },
        },
    )

    def ready() -> bool:
        pod = core.read_namespaced_pod(f"{name}-relay", namespace)
        conditions = (pod.status and pod.status.conditions) or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    wait_for(ready, 90, f"the read API relay Pod {namespace}/{name}-relay Ready", interval=0.5)
    return f"{namespace}/{name}:api"


class Objects:
    """Reads of the objects the tests look at, in one namespace, as plain dicts."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.api_client = api_client
        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def _plain(self, obj: object) -> dict[str, object]:
        plain: dict[str, object] = self.api_client.sanitize_for_serialization(obj)
        return plain

    def custom_object(self, plural: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                "agentfleet.dev", "v1alpha1", self.namespace, plural, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return found

    def pool(self, name: str) -> dict[str, Any] | None:
        return self.custom_object("workerpools", name)

    def project(self, name: str) -> dict[str, Any] | None:
        return self.custom_object("projects", name)

    def create(self, plural: str, name: str, spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
        kind = {"workerpools": "WorkerPool", "projects": "Project"}[plural]
        body = {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name, **meta},
            "spec": spec,
        }
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            "agentfleet.dev", "v1alpha1", self.namespace, plural, body
        )
        return created

    def patch(self, plural: str, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            "agentfleet.dev",
            "v1alpha1",
            self.namespace,
            plural,
            name,
            patch,
            _content_type="application/merge-patch+json",
        )

    def deployment(self, name: str) -> dict[str, Any] | None:
        try:
            found = self.apps.read_namespaced_deployment(name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return self._plain(found)

    def deployments(self) -> dict[str, dict[str, Any]]:
        items = self.apps.list_namespaced_deployment(self.namespace).items
        return {d.metadata.name: self._plain(d) for d in items}

    def condition(self, obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
        for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
            if condition["type"] == kind:
                found: dict[str, Any] = condition
                return found
        return None

    def wait_condition(
        self,
        plural: str,
        name: str,
        kind: str,
        status: str,
        reason: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            obj = self.custom_object(plural, name)
            condition = self.condition(obj, kind)
            if condition is None or condition["status"] != status:
                return None
            if reason is not None and condition["reason"] != reason:
                return None
            return obj

        return wait_for(check, timeout, f"{plural}/{name} {kind}={status} ({reason or 'any'})")

    def events(self, name: str) -> list[dict[str, Any]]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return [self._plain(e) for e in items]

    def event_reasons(self, name: str) -> set[str]:
        return {str(e["reason"]) for e in self.events(name)}

    def wait_event(self, name: str, reason: str, timeout: float = 15) -> None:
        """Events are posted asynchronously, a moment after the action they report."""
        wait_for(lambda: reason in self.event_reasons(name), timeout, f"{reason} Event on {name}")

    def wait_reconciled(self, plural: str, name: str, timeout: float = 30) -> dict[str, Any]:
        """Ready=True computed from the current generation."""

        def check() -> dict[str, Any] | None:
            obj = self.custom_object(plural, name) or {}
            ready = self.condition(obj, "Ready")
            current = (obj.get("status") or {}).get("observedGeneration") == obj.get(
                "metadata", {}
            ).get("generation")
            return obj if current and ready and ready["status"] == "True" else None

        return wait_for(check, timeout, f"{plural}/{name} reconciled at its generation")


@pytest.fixture(scope="session")
def kubectl(kubeconfig: Path) -> Kubectl:
    binary = str(find_binary("kubectl"))

    def run(
        *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [binary, f"--kubeconfig={kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds"))
    kubectl(
        "wait",
        "--for=condition=established",
        "--timeout=60s",
        "crd/projects.agentfleet.dev",
        "crd/workerpools.agentfleet.dev",
        "crd/kopfpeerings.kopf.dev",
    )


@pytest.fixture(scope="session")
def operator(
    kubeconfig: Path,
    crds: None,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningOperator]:
    running = start_operator(
        kubeconfig,
        tmp_path_factory.mktemp("operator"),
        "operator",
        ["--namespace", f"{NAMESPACE_PREFIX}*", "--standalone"],
        redis_url=redis_server.url,
    )
    yield running
    running.process.stop()


@pytest.fixture
def op_namespace(
    api_client: client.ApiClient, operator: RunningOperator, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace the operator serves; the operator's log is printed if the test
    fails, and the test fails if the operator died."""
    core = client.CoreV1Api(api_client)
    name = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for(
        lambda: core.read_namespaced_service_account("default", name), 30, f"default SA in {name}"
    )
    yield name
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"---- operator log (last 150 lines) ----\n{operator.process.log_tail(150)}")
    core.delete_namespace(name)
    assert operator.process.running(), (
        f"the operator exited during the test:\n{operator.process.log_tail(80)}"
    )


@pytest.fixture
def objects(api_client: client.ApiClient, op_namespace: str) -> Objects:
    return Objects(api_client, op_namespace)


@pytest.fixture(scope="session")
def garbage_collector_knows_crds(api_client: client.ApiClient, crds: None) -> None:
    """Wait until kube-controller-manager's garbage collector handles our kinds.

    It discovers new CRDs on its periodic resync (30 s), and an owner deleted before that
    is only noticed after a long back-off. A real cluster has had the CRDs for ages; the
    tests install them seconds before, so the cascade test first proves the collector is
    ready with a throwaway Project owning a throwaway WorkerPool.
    """
    core = client.CoreV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    namespace = f"gcprobe-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    group = ("agentfleet.dev", "v1alpha1", namespace)
    project = custom.create_namespaced_custom_object(
        *group,
        "projects",
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "Project",
            "metadata": {"name": "owner"},
            "spec": {"repository": "probe/probe", "credentialsSecretRef": {"name": "none"}},
        },
    )
    reference = {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "Project",
        "name": "owner",
        "uid": project["metadata"]["uid"],
    }
    custom.create_namespaced_custom_object(
        *group,
        "workerpools",
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": "dependent", "ownerReferences": [reference]},
            "spec": {"stage": "review"},
        },
    )
    custom.delete_namespaced_custom_object(*group, "projects", "owner")

    def collected() -> bool:
        try:
            custom.get_namespaced_custom_object(*group, "workerpools", "dependent")
        except ApiException as error:
            return bool(error.status == 404)
        return False

    wait_for(collected, 120, "the garbage collector to cascade a Project deletion", interval=1)
    core.delete_namespace(namespace)


@pytest.fixture
def operator_factory(
    kubeconfig: Path, crds: None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., RunningOperator]]:
    """Start extra operator processes (stopped, and their logs shown on failure, after
    the test)."""
    started: list[RunningOperator] = []

    def start(name: str, *args: str) -> RunningOperator:
        running = start_operator(kubeconfig, tmp_path, name, list(args))
        started.append(running)
        return running

    yield start
    report = getattr(request.node, "rep_call", None)
    for running in started:
        if report is not None and report.failed:
            print(f"---- {running.process.name} log ----\n{running.process.log_tail(80)}")
        running.process.stop()


ExposeReadApi = Callable[[str, str, int], str]


@pytest.fixture
def expose(api_client: client.ApiClient, local_cluster: LocalCluster) -> ExposeReadApi:
    """`expose(namespace, service name, port)`: a Service in front of an operator's read
    API on this host; returns its `--operator-service` value."""
    network = local_cluster.network
    if network is None:
        raise RuntimeError("the local cluster has no network")
    address = network.host_ip

    def make(namespace: str, name: str, port: int) -> str:
        return expose_read_api(api_client, namespace, name, address, port)

    return make


@pytest.fixture
def objects_factory(api_client: client.ApiClient) -> Callable[[str], Objects]:
    return lambda namespace: Objects(api_client, namespace)


EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture
def fleet(
    objects: Objects,
    kubectl: Kubectl,
    operator: RunningOperator,
    expose: ExposeReadApi,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """The examples (Secrets, Project `widgets`, its pools) in a fresh namespace, and every
    `agentfleet` the test runs pointed at the operator's read API there."""
    ns = objects.namespace
    monkeypatch.setenv(
        "AGENTFLEET_OPERATOR_SERVICE", expose(ns, "agentfleet-api", operator.api_port)
    )
    for name in ("secrets.yaml", "project.yaml", "workerpools.yaml"):
        kubectl("apply", "-n", ns, "-f", str(EXAMPLES / name))
    # The first test of the session also waits for kopf to find the pattern-matched
    # namespace (--namespace afop-*), which has taken over 30 s on a loaded machine.
    for pool in ("widgets-dev-tdd", "widgets-content"):
        objects.wait_condition("workerpools", pool, "Ready", "True", timeout=90)
    return ns


def role_kubeconfig(
    local_cluster: LocalCluster,
    kubectl: Kubectl,
    namespace: str,
    user: str,
    rules: list[dict[str, Any]],
    path: Path,
) -> Path:
    """A kubeconfig (client certificate) for `user`, bound in `namespace` to a Role of
    `rules` and nothing else."""
    pki = local_cluster.controlplane.pki
    pair = pki.client(user, user)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": user, "namespace": namespace},
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": user, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([role, binding]))
    return write_kubeconfig(path, local_cluster.server, pki.ca.cert, pair.cert, pair.key, user)
