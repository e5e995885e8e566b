"""The fleet commands (`agentfleet status`, `queues`, `pools`, `workers`, `pause`,
`resume`, `scale`) against the real cluster and operator, holding nothing but a
kubeconfig: an admin's, and a read-only user's whose acting commands are refused in one
line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from pydantic import BaseModel

from agentfleet.core.api import Stage
from agentfleet.core.queue import Lane, WorkItem, WorkQueue
from agentfleet.ctl.views import (
    Bottleneck,
    FleetStatus,
    Listing,
    PoolRow,
    StageRow,
    WorkerRow,
)
from agentfleet.dev.localenv import RedisServer, find_binary
from agentfleet.dev.localenv.cluster import LocalCluster
from agentfleet.dev.localenv.controlplane import write_kubeconfig
from agentfleet.dev.localenv.waiting import wait_for

if TYPE_CHECKING:
    from .conftest import Kubectl, Objects

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def cli(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "agentfleet", *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**env, "COLUMNS": "200"},
    )


def ok(kubeconfig: Path, *args: str) -> str:
    result = cli(kubeconfig, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


SCHEMAS: dict[str, type[BaseModel]] = {
    "status": FleetStatus,
    "queues": Listing[StageRow],
    "bottlenecks": Listing[Bottleneck],
    "pools": Listing[PoolRow],
    "workers": Listing[WorkerRow],
}


def as_json(kubeconfig: Path, *args: str) -> dict[str, Any]:
    """The command's -o json output, checked against its published models (strict: an
    unknown or missing key fails)."""
    out: dict[str, Any] = json.loads(ok(kubeconfig, *args, "-o", "json"))
    SCHEMAS[args[0]].model_validate(out)
    return out


@pytest.fixture
async def queue(redis_server: RedisServer) -> AsyncIterator[WorkQueue]:
    work_queue = WorkQueue.from_url(redis_server.url)
    yield work_queue
    await work_queue.close()


@pytest.fixture
def fleet(objects: Objects, kubectl: Kubectl) -> str:
    ns = objects.namespace
    for name in ("secrets.yaml", "project.yaml", "workerpools.yaml"):
        kubectl("apply", "-n", ns, "-f", str(EXAMPLES / name))
    # The first test of the session also waits for kopf to find the pattern-matched
    # namespace (--namespace afop-*), which has taken over 30 s on a loaded machine.
    objects.wait_condition("workerpools", "widgets-dev-tdd", "Ready", "True", timeout=90)
    return ns


@pytest.fixture
def viewer(local_cluster: LocalCluster, kubectl: Kubectl, fleet: str, tmp_path: Path) -> Path:
    """A kubeconfig for a user who may read agentfleet's resources and Pods, not change
    them."""
    user = f"viewer-{uuid.uuid4().hex[:6]}"
    pki = local_cluster.controlplane.pki
    pair = pki.client(user, user)
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": user, "namespace": fleet},
        "rules": [
            {
                "apiGroups": ["agentfleet.dev"],
                "resources": ["projects", "workerpools"],
                "verbs": ["get", "list", "watch"],
            },
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": user, "namespace": fleet},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all([role, binding]))
    return write_kubeconfig(
        tmp_path / "viewer.kubeconfig",
        local_cluster.server,
        pki.ca.cert,
        pair.cert,
        pair.key,
        user,
    )


async def test_status_queues_pools_and_workers_read_the_fleet(
    fleet: str, kubeconfig: Path, objects: Objects, queue: WorkQueue
) -> None:
    items = [
        WorkItem(id=f"issue-{n}", namespace=fleet, project="widgets", stage=Stage.CONTENT)
        for n in range(3)
    ]
    await queue.enqueue(*items)
    wait_for(
        lambda: (objects.project("widgets") or {}).get("status", {}).get("queued") == 3,
        30,
        "3 queued items in the Project status",
    )

    status = as_json(kubeconfig, "status", "-n", fleet)
    assert status["kind"] == "FleetStatus"
    assert status["queued"] == 3
    (widgets,) = status["projects"]
    assert (widgets["name"], widgets["repository"], widgets["queued"]) == (
        "widgets",
        "acme/widgets",
        3,
    )
    assert {p["name"] for p in status["pools"]} >= {"widgets-dev-tdd", "widgets-genesis"}

    stages = as_json(kubeconfig, "queues", "-n", fleet)
    content = [r for r in stages["items"] if r["stage"] == "content"]
    assert content and content[0]["pending"] == 3

    found = as_json(kubeconfig, "bottlenecks", "-n", fleet)["items"]
    content_stage = [b for b in found if (b["project"], b["stage"]) == ("widgets", "content")]
    assert content_stage, found
    assert content_stage[0]["waiting"] == 3
    assert content_stage[0]["pools"] == ["widgets-content"]
    assert content_stage[0]["cause"] and content_stage[0]["suggestion"]

    table = ok(kubeconfig, "status", "-n", fleet)
    assert "widgets" in table and "widgets-dev-tdd" in table

    pools = as_json(kubeconfig, "pools", "-A")
    mine = {p["name"]: p for p in pools["items"] if p["namespace"] == fleet}
    assert mine["widgets-dev-tdd"]["mode"] == "auto"
    assert mine["widgets-dev-tdd"]["stage"] == "development"

    workers = wait_for(
        lambda: (
            (w := as_json(kubeconfig, "workers", "widgets-dev-tdd", "-n", fleet))["items"] and w
        ),
        60,
        "a worker Pod of widgets-dev-tdd",
    )
    assert {w["pool"] for w in workers["items"]} == {"widgets-dev-tdd"}
    assert all(w["name"].startswith("widgets-dev-tdd-") for w in workers["items"])


def test_pause_resume_and_scale_change_the_resources(
    fleet: str, kubeconfig: Path, objects: Objects
) -> None:
    out = ok(kubeconfig, "pause", "widgets", "-n", fleet)
    assert f"project {fleet}/widgets paused" in out
    assert (objects.project("widgets") or {})["spec"]["paused"] is True
    wait_for(
        lambda: (objects.project("widgets") or {}).get("status", {}).get("phase") == "Paused",
        20,
        "the Project Paused",
    )
    ok(kubeconfig, "resume", "widgets", "-n", fleet)
    assert (objects.project("widgets") or {})["spec"]["paused"] is False

    ok(kubeconfig, "scale", "widgets-dev-tdd", "2", "-n", fleet)
    pool = objects.pool("widgets-dev-tdd") or {}
    assert (pool["spec"]["replicas"], pool["spec"]["autoscaling"]["enabled"]) == (2, False)
    wait_for(
        lambda: (
            ((objects.deployment("widgets-dev-tdd") or {}).get("spec") or {}).get("replicas") == 2
        ),
        30,
        "the pinned pool's Deployment at 2 replicas",
    )
    pools = as_json(kubeconfig, "pools", "-n", fleet)
    assert {p["name"]: p["mode"] for p in pools["items"]}["widgets-dev-tdd"] == "pinned"

    ok(kubeconfig, "scale", "widgets-dev-tdd", "--auto", "-n", fleet)
    pool = objects.pool("widgets-dev-tdd") or {}
    assert pool["spec"]["autoscaling"]["enabled"] is True
    assert "replicas" not in pool["spec"]


def test_a_read_only_user_reads_but_cannot_act(fleet: str, viewer: Path) -> None:
    assert as_json(viewer, "pools", "-n", fleet)["items"]
    refused = cli(viewer, "pause", "widgets", "-n", fleet)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert lines[0].startswith("error: forbidden: cannot patch project 'widgets'"), lines[0]
    assert "Traceback" not in refused.stderr


def test_mistakes_are_one_readable_line(fleet: str, kubeconfig: Path, tmp_path: Path) -> None:
    cases = {
        ("pause", "nope", "-n", fleet): "error: not found: cannot patch project 'nope'",
        ("scale", "widgets-dev-tdd", "-n", fleet): "error: give either a number of replicas",
        ("workers", "widgets-dev-tdd", "-A"): "error: naming one object acts in one namespace",
        ("workers", "nope", "-n", fleet): "error: not found: cannot get workerpool 'nope'",
    }
    for args, start in cases.items():
        result = cli(kubeconfig, *args)
        assert result.returncode == 1, (args, result.stdout)
        assert result.stderr.startswith(start), (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    missing = cli(tmp_path / "absent.kubeconfig", "status")
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: cannot load the kubeconfig"), missing.stderr


def test_kubectl_runs_it_as_a_plugin(fleet: str, kubeconfig: Path) -> None:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [str(find_binary("kubectl")), "agentfleet", "pools", "-n", fleet, "-o", "json",
         "--kubeconfig", str(kubeconfig)],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    names = {p["name"] for p in json.loads(result.stdout)["items"]}
    assert "widgets-dev-tdd" in names


def test_restart_deletes_a_worker_pod_and_the_pool_replaces_it(
    fleet: str, kubeconfig: Path, kubectl: Kubectl
) -> None:
    def worker_names() -> set[str]:
        listing = as_json(kubeconfig, "workers", "widgets-dev-tdd", "-n", fleet)
        return {w["name"] for w in listing["items"] if not w["deleting"]}

    (first,) = wait_for(worker_names, 60, "one worker of widgets-dev-tdd")
    out = ok(kubeconfig, "restart", first, "-n", fleet)
    assert f"worker {fleet}/{first} of pool widgets-dev-tdd restarting" in out
    replaced = wait_for(
        lambda: (names := worker_names()) and first not in names and names,
        60,
        "a new worker in place of the restarted one",
    )
    assert len(replaced) == 1
    kubectl("-n", fleet, "run", "bystander", "--image=registry.local/none:1", "--restart=Never")
    refused = cli(kubeconfig, "restart", "bystander", "-n", fleet)
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"error: pod {fleet}/bystander is not an agentfleet worker")


async def test_priority_moves_the_queued_work_up(
    fleet: str, kubeconfig: Path, objects: Objects, queue: WorkQueue
) -> None:
    await queue.enqueue(
        *(
            WorkItem(id=f"issue-{n}", namespace=fleet, project="widgets", stage=Stage.CONTENT)
            for n in range(4)
        )
    )
    out = ok(kubeconfig, "priority", "widgets", "urgent", "-n", fleet)
    assert f"project {fleet}/widgets now in the urgent lane" in out
    assert (objects.project("widgets") or {})["spec"]["priority"] == "urgent"

    def moved() -> str | None:
        for event in objects.events("widgets"):
            if event["reason"] == "PriorityChanged":
                return str(event["message"])
        return None

    message = wait_for(moved, 20, "the PriorityChanged Event")
    assert message == "priority normal -> urgent: 4 queued item(s) moved up to the urgent lane"
    snapshot = await queue.snapshot(fleet)
    waiting = {
        lane.lane: lane.waiting
        for lane in snapshot.lanes
        if (lane.project, lane.stage) == ("widgets", Stage.CONTENT) and lane.waiting
    }
    assert waiting == {Lane.URGENT: 4}
    refused = cli(kubeconfig, "priority", "widgets", "sky-high", "-n", fleet)
    assert refused.returncode == 2
    assert "sky-high" in refused.stderr
