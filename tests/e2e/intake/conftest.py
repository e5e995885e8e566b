"""GitHub intake as the operator runs it: `agentfleet operator` as a subprocess against the
real control plane and a real Redis, serving namespaces named `afin-*` and GitHub
webhooks on a port of its own, with the fake GitHub as the repository host.

The operator's log is printed when a test fails, and every test checks that it is still
running afterwards: no Project's failure may take it down.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from github import Auth, Github
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.dev.localenv import ManagedProcess, RedisServer, find_binary, free_port
from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.dev.testing import FakeGitHub

REPO_ROOT = Path(__file__).resolve().parents[3]
NAMESPACE_PREFIX = "afin-"
BOT_TOKEN = "ghp_" + "1ntakeb0t" * 4
HUMAN_TOKEN = "ghp_" + "hum4nuser" * 4
GROUP = ("agentfleet.dev", "v1alpha1")


@dataclass
class IntakeOperator:
    process: ManagedProcess
    metrics_port: int
    webhook_port: int

    def metric(self, name: str, **labels: str) -> float:
        """A sample of the operator's /metrics (0 while the series does not exist)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and labels.items() <= sample.labels.items():
                    return float(sample.value)
        return 0.0

    def webhook_url(self, namespace: str, project: str) -> str:
        return f"http://127.0.0.1:{self.webhook_port}/webhooks/github/{namespace}/{project}"


@pytest.fixture(scope="session")
def fake_github(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tmp_path_factory.mktemp("fake-github")).start()
    fake.add_token(BOT_TOKEN, "agentfleet-bot")
    fake.add_token(HUMAN_TOKEN, "acme")
    yield fake
    fake.stop()
    assert not fake.errors, fake.errors


@pytest.fixture(scope="session")
def human(fake_github: FakeGitHub) -> Iterator[Github]:
    """A person using GitHub: opens issues, labels them, configures hooks."""
    github = Github(
        base_url=fake_github.base_url,
        auth=Auth.Token(HUMAN_TOKEN),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    yield github
    github.close()


@pytest.fixture(scope="session")
def intake_crds(kubeconfig: Path) -> None:
    kubectl = [str(find_binary("kubectl")), f"--kubeconfig={kubeconfig}"]
    for args in (
        ["apply", "--server-side", "--force-conflicts", "-f", str(REPO_ROOT / "crds")],
        ["wait", "--for=condition=established", "--timeout=60s", "crd/projects.agentfleet.dev"],
    ):
        subprocess.run([*kubectl, *args], check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def intake_operator(
    kubeconfig: Path,
    intake_crds: None,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[IntakeOperator]:
    health, metrics, webhook = free_port(), free_port(), free_port()
    command = [
        sys.executable,
        "-m",
        "agentfleet",
        "operator",
        "--namespace",
        f"{NAMESPACE_PREFIX}*",
        "--standalone",
        "--log-format",
        "full",
        "--health-port",
        str(health),
        "--metrics-port",
        str(metrics),
        "--webhook-port",
        str(webhook),
    ]
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "AGENTFLEET_REDIS_URL": redis_server.url}
    process = ManagedProcess("intake-operator", command, tmp_path_factory.mktemp("op"), env=env)
    process.start()
    running = IntakeOperator(process, metrics, webhook)
    process.wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{webhook}/healthz", timeout=2).is_success,
        60,
        "serving webhooks",
    )
    yield running
    process.stop()


class Cluster:
    """Objects of one test namespace, as plain dicts."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def secret(self, name: str, **data: str) -> None:
        """A Secret with these keys (`webhook_secret` becomes key `webhook-secret`)."""
        encoded = {
            key.replace("_", "-"): base64.b64encode(value.encode()).decode()
            for key, value in data.items()
        }
        self.core.create_namespaced_secret(
            self.namespace, {"metadata": {"name": name}, "data": encoded}
        )

    def project(self, name: str, **spec: Any) -> None:
        body = {
            "apiVersion": "/".join(GROUP),
            "kind": "Project",
            "metadata": {"name": name},
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(*GROUP, self.namespace, "projects", body)

    def patch(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            *GROUP,
            self.namespace,
            "projects",
            name,
            {"spec": spec},
            _content_type="application/merge-patch+json",
        )

    def condition(self, project: str, kind: str = "Intake") -> dict[str, Any] | None:
        body = self.custom.get_namespaced_custom_object(*GROUP, self.namespace, "projects", project)
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition["type"] == kind:
                found: dict[str, Any] = condition
                return found
        return None

    def wait_intake(self, project: str, status: str, reason: str) -> dict[str, Any]:
        def matches() -> dict[str, Any] | None:
            condition = self.condition(project)
            if condition and (condition["status"], condition["reason"]) == (status, reason):
                return condition
            return None

        found: dict[str, Any] = wait_for(
            matches, 30, f"{project} Intake={status} ({reason})", interval=0.2
        )
        return found

    def event_reasons(self, name: str) -> dict[str, str]:
        items = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        ).items
        return {e.reason: e.message for e in items}


@pytest.fixture
def cluster(
    api_client: client.ApiClient,
    intake_operator: IntakeOperator,
    request: pytest.FixtureRequest,
) -> Iterator[Cluster]:
    core = client.CoreV1Api(api_client)
    name = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield Cluster(api_client, name)
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"---- operator log ----\n{intake_operator.process.log_tail(120)}")
    core.delete_namespace(name)
    assert intake_operator.process.running(), intake_operator.process.log_tail(80)


@pytest.fixture
def repository(fake_github: FakeGitHub) -> str:
    """A fresh repository on the fake GitHub, `acme/<name>`."""
    name = f"shop-{uuid.uuid4().hex[:6]}"
    fake_github.create_repo("acme", name)
    return f"acme/{name}"
