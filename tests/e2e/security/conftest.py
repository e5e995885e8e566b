"""A hostile world for the agent boundary tests: a `LocalStack` on the session's local
cluster whose namespace enforces the Pod Security `restricted` profile, two Projects
served by one development pool (`alpha` with GitHub App credentials, `beta`, the
attacker's, with a personal access token), canary values in every Secret the product
uses, and the services an attacker would aim at, all real: the GitHub and Anthropic test
servers, a private HTTP service and an allowed destination on the host end of the node's
link, the API server, Redis (with its password), the kubelet.

Everything the product sent anywhere is kept so that the tests can search it for the
canaries: every request the test servers received, the repositories' commits, issues,
comments and pull requests, every container's log, the operator's and exporter's logs and
every /metrics page.
"""

from __future__ import annotations

import base64
import os
import secrets
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client

from agentfleet.core.api.project import CREDENTIAL_APP_KEYS, CREDENTIAL_TOKEN_KEY
from agentfleet.core.github.credentials import WEBHOOK_SECRET_KEY
from agentfleet.dev.localenv import find_binary
from agentfleet.dev.localenv.cluster import LocalCluster
from agentfleet.dev.localenv.stack import LocalStack
from agentfleet.dev.testing import FakeAnthropic, FakeGitHub
from agentfleet.dev.testing._http import FakeHTTPServer, Request, Response

GROUP, VERSION = "agentfleet.dev", "v1alpha1"
POOL = "dev"
APP_ID, INSTALLATION_ID = 4242, 777
BASE_CLAUDE_MD = "# Conventions\n\nKeep functions small and tested.\n"
ALLOWED_BODY = "allowed-destination-ok"
PRIVATE_BODY = "private-service-secret-page"


def canary(kind: str) -> str:
    """A unique, greppable value; shaped like the real credential where it has a shape."""
    return f"{kind}CANARY{secrets.token_hex(12)}"


@dataclass
class Canaries:
    github_token: str = field(default_factory=lambda: "ghp_" + canary("pat"))
    anthropic_key: str = field(default_factory=lambda: "sk-ant-" + canary("model"))
    webhook_alpha: str = field(default_factory=lambda: canary("hookA"))
    webhook_beta: str = field(default_factory=lambda: canary("hookB"))
    app_key_pem: str = ""
    app_public_pem: str = ""

    def __post_init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.app_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.app_public_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    @property
    def app_key_marker(self) -> str:
        """A run of the private key's body: finding it anywhere means the key leaked."""
        body = "".join(self.app_key_pem.strip().splitlines()[1:-1])
        return body[100:160]

    def everywhere_forbidden(self) -> dict[str, str]:
        """Values that may never appear in anything the product sent or wrote."""
        return {
            "App private key": self.app_key_marker,
            "alpha webhook secret": self.webhook_alpha,
            "beta webhook secret": self.webhook_beta,
        }

    def outside_own_auth(self) -> dict[str, str]:
        """Values allowed only in their own service's authentication header."""
        return {"GitHub token": self.github_token, "Anthropic key": self.anthropic_key}

    def all(self) -> dict[str, str]:
        return {**self.everywhere_forbidden(), **self.outside_own_auth()}


class Page(FakeHTTPServer):
    """A host HTTP service answering every GET with one body."""

    def __init__(self, body: str) -> None:
        super().__init__()
        self.body = body
        self.route("GET", r"/.*", self._page)

    def _page(self, request: Request) -> Response:
        return Response(200, self.body.encode(), {"Content-Type": "text/plain"})


@dataclass
class World:
    stack: LocalStack
    api: client.ApiClient
    namespace: str
    host_ip: str
    node_ip: str
    github: FakeGitHub
    model: FakeAnthropic
    allowed: Page
    private: Page
    canaries: Canaries
    workdir: Path
    runtime: str = "builtin"
    """The development pool's `spec.agent.runtime`: the whole corpus runs once per runtime."""
    main_sha: str = ""
    """beta's main branch as seeded: nothing may move it."""

    # ------------------------------------------------------------- cluster
    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def custom(self) -> client.CustomObjectsApi:
        return client.CustomObjectsApi(self.api)

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        result = subprocess.run(
            [str(find_binary("kubectl")), "--kubeconfig", str(self.stack.cluster.kubeconfig),
             *args],
            input=stdin, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args[:3])}: {result.stderr}")
        return result.stdout + (result.stderr if not check else "")

    def worker_pods(self) -> list[client.V1Pod]:
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"agentfleet.dev/pool={POOL}"
        ).items
        return [p for p in pods if p.metadata.deletion_timestamp is None]

    def container_logs(self) -> dict[str, str]:
        """Every container's log (current and previous runs) of every Pod of the namespace."""
        logs: dict[str, str] = {}
        for pod in self.core.list_namespaced_pod(self.namespace).items:
            for container in pod.spec.containers:
                for previous in (False, True):
                    try:
                        text = self.core.read_namespaced_pod_log(
                            pod.metadata.name, self.namespace, container=container.name,
                            previous=previous,
                        )  # fmt: skip
                    except client.ApiException:
                        continue
                    logs[f"{pod.metadata.name}/{container.name}{'/previous' * previous}"] = text
        return logs

    # ------------------------------------------------------------- git
    def seed(self, repository: str, files: dict[str, str], links: dict[str, str]) -> str:
        """The first commit of `repository` (files and symbolic links), pushed straight into
        the fake's bare repository; returns its sha."""
        bare = self.github.workdir / f"{repository}.git"
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            git = ["git", "-C", str(work), "-c", "user.name=owner", "-c", "user.email=o@x"]
            subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
            for path, text in files.items():
                (work / path).parent.mkdir(parents=True, exist_ok=True)
                (work / path).write_text(text)
            for path, target in links.items():
                (work / path).parent.mkdir(parents=True, exist_ok=True)
                os.symlink(target, work / path)
            subprocess.run([*git, "add", "-A"], check=True)
            subprocess.run([*git, "commit", "-qm", "seed"], check=True)
            subprocess.run([*git, "push", "-q", str(bare), "main"], check=True)
            return subprocess.run(
                [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
            ).stdout.strip()

    def push_branch(self, repository: str, branch: str, files: dict[str, str]) -> None:
        """A branch on top of main with `files` changed, as someone with push access would."""
        bare = self.github.workdir / f"{repository}.git"
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "w"
            subprocess.run(["git", "clone", "-q", str(bare), str(work)], check=True)
            git = ["git", "-C", str(work), "-c", "user.name=x", "-c", "user.email=x@x"]
            subprocess.run([*git, "checkout", "-qb", branch], check=True)
            for path, text in files.items():
                (work / path).write_text(text)
            subprocess.run([*git, "commit", "-qam", "edit agent instructions"], check=True)
            subprocess.run([*git, "push", "-q", "origin", branch], check=True)

    def git_history(self, repository: str) -> str:
        """Every commit on every ref with its full patch (what was pushed)."""
        bare = self.github.workdir / f"{repository}.git"
        return subprocess.run(
            ["git", "-C", str(bare), "log", "--all", "-p", "--binary", "--format=%H %an%n%B"],
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    # ------------------------------------------------------------- resources
    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("-n", self.namespace, "apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    def secret(self, name: str, data: dict[str, str]) -> None:
        self.core.create_namespaced_secret(
            self.namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=name),
                data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            ),
        )


@pytest.fixture(scope="module", params=["builtin", "claude-code"])
def world(local_cluster: LocalCluster, request: pytest.FixtureRequest) -> Iterator[World]:
    network = local_cluster.network
    assert network is not None, "the agent boundary tests need the local node"
    namespace = f"sec-{uuid.uuid4().hex[:6]}"
    workdir = Path(tempfile.mkdtemp(prefix="agentfleet-boundary-"))
    canaries = Canaries()
    stack = LocalStack(
        namespace=namespace, workdir=workdir / "stack", heartbeat_timeout=30,
        cluster=local_cluster,
    ).start()  # fmt: skip
    assert stack.api is not None
    github = FakeGitHub(workdir / "github").listen_on(network.host_ip).start()
    model = FakeAnthropic(api_key=canaries.anthropic_key).listen_on(network.host_ip).start()
    allowed = Page(ALLOWED_BODY).listen_on(network.host_ip).start()
    private = Page(PRIVATE_BODY).listen_on(network.host_ip).start()
    world = World(
        stack=stack, api=stack.api, namespace=namespace, host_ip=network.host_ip,
        node_ip=network.node_ip, github=github, model=model, allowed=allowed,
        private=private, canaries=canaries, workdir=workdir, runtime=request.param,
    )  # fmt: skip
    try:
        # Pods of this namespace must pass the `restricted` profile to be admitted at all.
        world.core.patch_namespace(
            namespace,
            {
                "metadata": {
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                    }
                }
            },
        )
        yield world
    finally:
        for server in (private, allowed, model, github):
            server.stop()
        try:
            world.kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=90s",
                          check=False)  # fmt: skip
        finally:
            stack.stop()


def credentials(world: World) -> None:
    """The Secrets of both Projects and of the model, every value a canary."""
    c = world.canaries
    app_id_key, private_key_key = CREDENTIAL_APP_KEYS
    world.secret(
        "alpha-github",
        {
            app_id_key: str(APP_ID),
            private_key_key: c.app_key_pem,
            "installation-id": str(INSTALLATION_ID),
            WEBHOOK_SECRET_KEY: c.webhook_alpha,
        },
    )
    world.secret(
        "beta-github", {CREDENTIAL_TOKEN_KEY: c.github_token, WEBHOOK_SECRET_KEY: c.webhook_beta}
    )
    world.secret("model", {"ANTHROPIC_API_KEY": c.anthropic_key})
