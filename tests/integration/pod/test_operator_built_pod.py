"""A worker pod exactly as the operator builds it, run as a local process.

The Deployment comes from the operator's pure builder for a WorkerPool that names no
handler; the process gets that container's environment and nothing else (plus what a
kubelet adds: downward-API fields, the Secret volumes, the pool's envFrom Secret). It
runs a genesis item of a Project whose issue was taken in by the intake library, against
the real Redis queue, the fake model and the fake GitHub (at the API URL the Project
names, carried in the item), and its own /metrics must show what the agent spent.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from github import Auth, Github
from prometheus_client.parser import text_string_to_metric_families

from agentfleet.core.api.project import ProjectSpec
from agentfleet.core.api.workerpool import WorkerPoolSpec
from agentfleet.core.github import IssueFacts, ProjectIntake, issue_work
from agentfleet.core.queue import CompletionOutcome, WorkQueue
from agentfleet.dev.localenv import ManagedProcess, RedisServer, free_port
from agentfleet.dev.localenv.waiting import async_wait_for, wait_for
from agentfleet.dev.testing import FakeAnthropic, FakeGitHub, agents
from agentfleet.operator.children import (
    QUEUE_URL_KEY,
    PoolIdentity,
    ServedProject,
    WorkerEnvironment,
    build_deployment,
    queue_secret_name,
)

pytestmark = pytest.mark.integration

BOT_TOKEN = "ghp_" + "podb0t" * 6
HUMAN_TOKEN = "ghp_" + "hum4n" * 8
MODEL = "claude-sonnet-4-6"
PLAN: list[dict[str, object]] = [
    {"title": "Greeting", "description": "greet(name)", "files": ["greeting.py"]}
]


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(tmp_path / "github").start()
    fake.create_repo("acme", "shop")
    fake.add_token(BOT_TOKEN, "agentfleet-bot")
    fake.add_token(HUMAN_TOKEN, "acme")
    yield fake
    fake.stop()
    assert not fake.errors, fake.errors


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    fake = FakeAnthropic().start()
    fake.add_script(agents.GENESIS_SCAFFOLD, agents.scaffolder())
    fake.add_script(agents.GENESIS_PLAN, agents.planner(PLAN))
    yield fake
    fake.stop()
    assert not fake.errors, fake.errors


def container_of(deployment: dict[str, Any], name: str = "worker") -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = next(c for c in containers if c["name"] == name)
    return found


def start_pod(
    deployment: dict[str, Any],
    root: Path,
    pod_name: str,
    secrets: dict[str, dict[str, str]],
) -> tuple[ManagedProcess, int, list[ManagedProcess]]:
    """What a kubelet would do with the Deployment's pod template, on this machine: each
    volume is a directory under `root` (Secret volumes hold their files), each container a
    process whose paths are mapped onto its mounts, and a free port stands in for the pod's
    own network namespace. Returns the worker, its metrics port and every process."""
    template = deployment["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in template["volumes"]}
    for name, volume in volumes.items():
        local = root / "volumes" / name
        local.mkdir(parents=True)
        secret = volume.get("secret")
        for key, value in secrets.get(secret["secretName"] if secret else "", {}).items():
            (local / key).write_text(value)
    fields = {"metadata.namespace": deployment["metadata"]["namespace"], "metadata.name": pod_name}

    def environment(container: dict[str, Any]) -> tuple[dict[str, str], Any]:
        # The container's view: each mount path a link to its volume's directory.
        view = root / "containers" / container["name"]
        mounts = [m["mountPath"] for m in container["volumeMounts"]]
        for mount in container["volumeMounts"]:
            link = view / mount["mountPath"].lstrip("/")
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(root / "volumes" / mount["name"])

        def in_root(value: str) -> str:
            related = any(
                value == path or value.startswith(path + "/") or path.startswith(value + "/")
                for path in mounts
            )
            return str(view) + value if value.startswith("/") and related else value

        env = {"PATH": "/usr/bin:/bin", "HOME": str(root)}
        for source in container.get("envFrom", []):
            env |= secrets[source["secretRef"]["name"]]
        for entry in container.get("env", []):
            source = entry.get("valueFrom")
            if source and "fieldRef" in source:
                env[entry["name"]] = fields[source["fieldRef"]["fieldPath"]]
            elif source:
                ref = source["secretKeyRef"]
                env[entry["name"]] = secrets[ref["name"]][ref["key"]]
            else:
                env[entry["name"]] = in_root(entry.get("value", ""))
        return env, in_root

    processes = []
    sandbox = [c for c in template["containers"] if c["name"] == "sandbox"]
    for container in sandbox:
        env, in_root = environment(container)
        argv = [sys.executable, "-m", *container["command"][2:]]
        argv += [
            f"{arg.split('=')[0]}={in_root(arg.split('=', 1)[1])}" for arg in container["args"]
        ]
        processes.append(ManagedProcess(f"{pod_name}-sandbox", argv, root / "logs", env=env))
        processes[-1].start()
    env, _ = environment(container_of(deployment))
    port = free_port()
    env["AGENTFLEET_METRICS_PORT"] = str(port)
    command = [sys.executable, "-m", "agentfleet", "worker"]
    worker = ManagedProcess(pod_name, command, root / "logs", env=env).start()
    return worker, port, [worker, *processes]


def scrape(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        sample.name + str(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def sample(samples: dict[str, float], name: str, **labels: str) -> float:
    return samples.get(name + str(sorted(labels.items())), 0.0)


async def test_a_default_pool_pod_runs_genesis_and_exports_agent_tokens(
    redis_server: RedisServer,
    fake_github: FakeGitHub,
    fake_anthropic: FakeAnthropic,
    tmp_path: Path,
) -> None:
    namespace = f"pod-{uuid.uuid4().hex[:8]}"
    human = Github(
        base_url=fake_github.base_url,
        auth=Auth.Token(HUMAN_TOKEN),
        seconds_between_requests=None,
        seconds_between_writes=None,
    )
    issue = human.get_repo("acme/shop").create_issue("Greet people", labels=["agentfleet"])
    human.close()

    project = ProjectSpec.model_validate(
        {
            "repository": "acme/shop",
            "githubApiUrl": fake_github.base_url,
            "credentialsSecretRef": {"name": "shop-github"},
        }
    )
    intake = ProjectIntake.from_spec(namespace, "shop", project)
    item = issue_work(
        intake, IssueFacts(number=issue.number, title=issue.title, labels=("agentfleet",))
    )
    assert item is not None

    pool = WorkerPoolSpec.model_validate(
        {
            "stage": "genesis",
            "agent": {"model": MODEL},
            "envFromSecrets": ["anthropic"],
            "env": [
                {"name": "ANTHROPIC_BASE_URL", "value": fake_anthropic.base_url},
                {"name": "AGENTFLEET_GITHUB_PACING", "value": "false"},
            ],
        }
    )
    deployment = build_deployment(
        PoolIdentity(namespace, "genesis", "uid-genesis"),
        pool,
        [ServedProject("shop", project.credentials_secret_ref.name)],
        1,
        WorkerEnvironment(redis_url=redis_server.url),
    )
    process, port, processes = start_pod(
        deployment,
        tmp_path / "pod",
        "genesis-6c9f-x1",
        secrets={
            "shop-github": {"token": BOT_TOKEN},
            "anthropic": {"ANTHROPIC_API_KEY": fake_anthropic.api_key},
            queue_secret_name("genesis"): {QUEUE_URL_KEY: redis_server.url},
        },
    )
    queue = WorkQueue.from_url(redis_server.url)
    try:
        process.wait_until(lambda: bool(scrape(port)), 30, "serving /metrics")
        await queue.enqueue(item)
        record = await async_wait_for(
            lambda: queue.completion(namespace, item.id), 60, f"completion of {item.id}"
        )
        assert record.outcome is CompletionOutcome.SUCCEEDED, (record.error, process.log_tail())
        assert fake_github.issue_titles("acme/shop") == ["Greet people", "[#1] Greeting"]

        def counted() -> dict[str, float] | None:
            samples = scrape(port)
            processed = sample(
                samples,
                "agentfleet_worker_items_processed_total",
                namespace=namespace,
                pool="genesis",
                stage="genesis",
                outcome="succeeded",
            )
            return samples if processed == 1 else None

        samples = wait_for(counted, 10, "the worker to count the item")
        spent = {
            kind: sample(samples, "agentfleet_agent_tokens_total", model=MODEL, kind=kind)
            for kind in ("input", "output")
        }
        assert spent["input"] > 0 and spent["output"] > 0, spent
        assert sample(samples, "agentfleet_agent_model_calls_total", model=MODEL, outcome="ok") >= 2
    finally:
        for running in processes:
            running.stop()
        await queue.close()
