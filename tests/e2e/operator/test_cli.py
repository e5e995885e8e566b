"""The fleet commands (`agentfleet status`, `queues`, `pools`, `workers`, `metrics`,
`alerts`, `pause`, `resume`, `scale`, `retry`) against the real cluster, Redis, Prometheus
and operator, holding nothing but a kubeconfig: an admin's, a read-only user's whose
acting commands are refused in one line, and ServiceAccount tokens for the actions the
operator's read API authorises itself (`retry`).

The session's operator runs on this host with `--api-port`; each test's namespace gets a
selectorless Service in front of it (`expose`), which the CLI reaches through the API
server's service proxy exactly as it reaches the chart's Service in a cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from github import Auth, Github
from kubernetes import client
from pydantic import BaseModel

from agentfleet.core.api import Stage
from agentfleet.core.queue import Lane, Subscription, WorkItem, WorkQueue
from agentfleet.ctl.views import (
    AlertRow,
    Bottleneck,
    DeadLetterRow,
    DispatchRow,
    FleetStatus,
    Listing,
    PoolRow,
    QueuesOutput,
    StageMetricsRow,
    WorkerRow,
)
from agentfleet.dev.localenv import PrometheusServer, RedisServer, find_binary
from agentfleet.dev.localenv.cluster import LocalCluster
from agentfleet.dev.localenv.controlplane import write_token_kubeconfig
from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.dev.testing import FakeGitHub

from .conftest import role_kubeconfig

if TYPE_CHECKING:
    from .conftest import ExposeReadApi, Kubectl, Objects

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


HUMAN_TOKEN = "ghp_" + "acmeperson" * 4


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
    "queues": QueuesOutput,
    "bottlenecks": Listing[Bottleneck],
    "pools": Listing[PoolRow],
    "workers": Listing[WorkerRow],
    "metrics": Listing[StageMetricsRow],
    "alerts": Listing[AlertRow],
    "retry": Listing[DeadLetterRow],  # retry --list
    "dispatch": Listing[DispatchRow],
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
def viewer(local_cluster: LocalCluster, kubectl: Kubectl, fleet: str, tmp_path: Path) -> Path:
    """A kubeconfig for a user who may read agentfleet's resources and Pods, not change
    them."""
    rules = [
        {
            "apiGroups": ["agentfleet.dev"],
            "resources": ["projects", "workerpools"],
            "verbs": ["get", "list", "watch"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        # Reading the queue through the operator's read API.
        {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get"]},
    ]
    user = f"viewer-{uuid.uuid4().hex[:6]}"
    return role_kubeconfig(
        local_cluster, kubectl, fleet, user, rules, tmp_path / "viewer.kubeconfig"
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
    content = [r for r in stages["stages"] if r["stage"] == "content"]
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


# ------------------------------------------------------------- the operator's read API


def service_account_kubeconfig(
    api_client: client.ApiClient,
    local_cluster: LocalCluster,
    namespace: str,
    name: str,
    rules: list[dict[str, Any]],
    path: Path,
) -> Path:
    """A kubeconfig holding a token of a new ServiceAccount bound to `rules` in the
    namespace: a user whose bearer token the operator can have the API server review."""
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": name}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": rules})
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    )
    token = core.create_namespaced_service_account_token(
        name, namespace, {"spec": {"audiences": [], "expirationSeconds": 3600}}
    ).status.token
    return write_token_kubeconfig(
        path, local_cluster.server, local_cluster.controlplane.pki.ca.cert, token, name
    )


READ_API_PROXY = {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get", "create"]}
READ_FLEET = {
    "apiGroups": ["agentfleet.dev"],
    "resources": ["projects", "workerpools"],
    "verbs": ["get", "list"],
}


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


async def test_queues_workers_and_metrics_come_live_from_the_read_api(
    fleet: str, kubeconfig: Path, viewer: Path, queue: WorkQueue, api_client: client.ApiClient
) -> None:
    items = [
        WorkItem(id=f"issue-{n}", namespace=fleet, project="widgets", stage=Stage.CONTENT)
        for n in range(4)
    ]
    await queue.enqueue(*items)
    workers = wait_for(
        lambda: (
            (w := as_json(kubeconfig, "workers", "widgets-dev-tdd", "-n", fleet))["items"] and w
        ),
        60,
        "a worker Pod of widgets-dev-tdd",
    )
    pod = workers["items"][0]["name"]
    # Play the workers of the content stage (its pool has no replicas): one item held in
    # the name of a real worker Pod, one finished, one failed for good.
    held = await queue.claim(Subscription(namespace=fleet, stage=Stage.CONTENT, consumer=pod))
    done = await queue.claim(Subscription(namespace=fleet, stage=Stage.CONTENT, consumer="t"))
    dead = await queue.claim(Subscription(namespace=fleet, stage=Stage.CONTENT, consumer="t"))
    assert held is not None and done is not None and dead is not None
    await queue.complete(done, follow_ups=[])
    await queue.fail(dead, "the docs build broke", retryable=False)

    queues = as_json(kubeconfig, "queues", "-n", fleet)
    assert queues["kind"] == "Queues"
    (content,) = [s for s in queues["stages"] if s["stage"] == "content"]
    assert (content["pending"], content["inFlight"], content["completed"]) == (1, 1, 1)
    assert content["deadLettered"] == 1
    lanes = [
        lane
        for lane in queues["lanes"]
        if (lane["project"], lane["stage"], lane["lane"]) == ("widgets", "content", "normal")
    ]
    assert [(lane["specialty"], lane["waiting"], lane["inFlight"]) for lane in lanes] == [
        ("general", 1, 1)
    ]
    assert lanes[0]["oldestWaitSeconds"] is not None and lanes[0]["oldestWaitSeconds"] >= 0
    table = ok(kubeconfig, "queues", "-n", fleet)
    assert "Lanes" in table and "SPECIALTY" in table and "general" in table

    listing = as_json(kubeconfig, "workers", "widgets-dev-tdd", "-n", fleet)
    (row,) = [w for w in listing["items"] if w["name"] == pod]
    assert row["items"] == [held.item.id]
    assert 0 <= row["heartbeatAgeSeconds"] < 120
    assert held.item.id in ok(kubeconfig, "workers", "widgets-dev-tdd", "-n", fleet)

    metrics = as_json(kubeconfig, "metrics", "-n", fleet, "--window", "10m")
    (stage,) = [m for m in metrics["items"] if m["stage"] == "content"]
    assert (stage["finished"], stage["succeeded"], stage["deadLettered"]) == (2, 1, 1)
    assert stage["successRate"] == 0.5 and stage["windowSeconds"] == 600
    assert stage["perHour"] == 12.0
    # The success's time in the stage and since its work entered the pipeline (the same
    # here: content was its first stage), next to the seeds' goal for content.
    assert stage["stageSeconds"] is not None and stage["stageSeconds"] >= 0
    assert stage["pipelineSeconds"] == stage["stageSeconds"]
    assert (stage["targetPerHour"], stage["targetPerWorker"]) == (5.0, False)
    table = ok(kubeconfig, "metrics", "-n", fleet)
    assert "PER HOUR" in table and "PIPELINE" in table and ">=5/h" in table

    # status and bottlenecks show the last hour too; this operator has no Prometheus,
    # which status says in its own words rather than failing.
    status = as_json(kubeconfig, "status", "-n", fleet)
    (hour,) = [r for r in status["throughput"] if r["stage"] == "content"]
    assert (hour["finished"], hour["successRate"]) == (2, 0.5)
    assert status["alerts"] == []
    assert status["liveError"].startswith("alerts: the operator has no Prometheus")
    assert "Last hour" in ok(kubeconfig, "status", "-n", fleet)
    found = as_json(kubeconfig, "bottlenecks", "-n", fleet)["items"]
    (waiting,) = [b for b in found if (b["project"], b["stage"]) == ("widgets", "content")]
    assert waiting["perHour"] == 2.0

    # -A: every namespace with a Project that the operator serves; a Project in a
    # namespace it does not serve (no queue it knows) is left out, not an error.
    elsewhere = f"unserved-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api(api_client)
    core.create_namespace({"metadata": {"name": elsewhere}})
    try:
        client.CustomObjectsApi(api_client).create_namespaced_custom_object(
            "agentfleet.dev", "v1alpha1", elsewhere, "projects",
            {"apiVersion": "agentfleet.dev/v1alpha1", "kind": "Project",
             "metadata": {"name": "stray"},
             "spec": {"repository": "acme/stray", "credentialsSecretRef": {"name": "none"}}},
        )  # fmt: skip
        everywhere = as_json(kubeconfig, "queues", "-A")
        assert {s["namespace"] for s in everywhere["stages"]} >= {fleet}
        assert elsewhere not in {s["namespace"] for s in everywhere["stages"]}
    finally:
        core.delete_namespace(elsewhere)

    # A read-only user reads the queue too: `get` on services/proxy is all it takes.
    assert as_json(viewer, "queues", "-n", fleet)["stages"] == queues["stages"]


async def test_retry_is_authorised_by_the_operator_from_the_callers_identity(
    fleet: str,
    kubeconfig: Path,
    viewer: Path,
    api_client: client.ApiClient,
    local_cluster: LocalCluster,
    objects: Objects,
    queue: WorkQueue,
    tmp_path: Path,
) -> None:
    await queue.enqueue(
        WorkItem(id="issue-9", namespace=fleet, project="widgets", stage=Stage.CONTENT)
    )
    claim = await queue.claim(Subscription(namespace=fleet, stage=Stage.CONTENT, consumer="t"))
    assert claim is not None
    await queue.fail(claim, "no such file", retryable=False)
    assert list(await queue.dead_letters(fleet, "widgets")) == ["issue-9"]
    # Listing them is a read: the read-only user may.
    (dead,) = as_json(viewer, "retry", "widgets", "--list", "-n", fleet)["items"]
    assert (dead["itemId"], dead["stage"], dead["attempts"]) == ("issue-9", "content", 1)
    assert dead["error"] == "no such file"

    # May reach the read API and send it actions, but not patch the Project: the
    # operator's SubjectAccessReview refuses it.
    reader = service_account_kubeconfig(
        api_client, local_cluster, fleet, "fleet-reader", [READ_FLEET, READ_API_PROXY],
        tmp_path / "reader.kubeconfig",
    )  # fmt: skip
    line = one_line_error(cli(reader, "retry", "widgets", "-n", fleet))
    assert line == (
        f'error: operator: user "system:serviceaccount:{fleet}:fleet-reader" may not patch '
        f'projects.agentfleet.dev "widgets" in namespace {fleet} (no RBAC rule allows it)'
    ), line
    # A client certificate proves nothing to the operator: refused before anything is sent.
    line = one_line_error(cli(viewer, "retry", "widgets", "-n", fleet))
    assert line.startswith("error: this action is authorised by the operator from your"), line
    assert list(await queue.dead_letters(fleet, "widgets")) == ["issue-9"]

    actor = service_account_kubeconfig(
        api_client, local_cluster, fleet, "fleet-actor",
        [READ_API_PROXY,
         {"apiGroups": ["agentfleet.dev"], "resources": ["projects"], "verbs": ["patch"]}],
        tmp_path / "actor.kubeconfig",
    )  # fmt: skip
    out = ok(actor, "retry", "widgets", "-n", fleet)
    assert out.strip() == (
        f"project {fleet}/widgets: 1 dead-lettered item(s) queued again (issue-9)"
    )
    assert await queue.dead_letters(fleet, "widgets") == {}
    again = await queue.get(fleet, "issue-9")
    assert again is not None and again.attempts == 0
    objects.wait_event("widgets", "DeadLettersRetried")
    assert ok(actor, "retry", "widgets", "-n", fleet).strip() == (
        f"project {fleet}/widgets: no dead-lettered item to retry"
    )
    line = one_line_error(cli(actor, "retry", "nope", "-n", fleet))
    assert line == f"error: operator: project {fleet}/nope not found", line


def test_alerts_come_from_the_operators_prometheus(
    fleet: str,
    kubeconfig: Path,
    expose: ExposeReadApi,
    operator_factory: Any,
    tmp_path: Path,
) -> None:
    # The session's operator has no Prometheus: one line says so.
    line = one_line_error(cli(kubeconfig, "alerts", "-n", fleet))
    assert line.startswith("error: the operator has no Prometheus"), line

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump(
            {
                "groups": [
                    {
                        "name": "test",
                        "rules": [
                            {
                                "alert": "AgentfleetQueueBacklog",
                                "expr": "vector(1)",
                                "labels": {"severity": "warning", "namespace": fleet},
                                "annotations": {"summary": "work waits in the queue"},
                            },
                            {
                                "alert": "AgentfleetElsewhere",
                                "expr": "vector(1)",
                                "labels": {"severity": "critical", "namespace": "other-team"},
                            },
                        ],
                    }
                ]
            }
        )
    )
    prometheus = PrometheusServer(scrape_interval="1s", rule_files=[rules]).start()
    try:
        # A second operator, with that Prometheus, serving a namespace of its own.
        running = operator_factory(
            "operator-alerts", "--namespace", f"{fleet}-none", "--standalone",
            "--prometheus-url", prometheus.url,
        )  # fmt: skip
        service = expose(fleet, "agentfleet-api-alerts", running.api_port)

        def firing() -> dict[str, Any] | None:
            out = as_json(kubeconfig, "alerts", "-n", fleet, "--operator-service", service)
            return out if out["items"] else None

        found = wait_for(firing, 60, "the alert firing through the operator")
        assert [(a["name"], a["state"], a["severity"], a["namespace"]) for a in found["items"]] == [
            ("AgentfleetQueueBacklog", "firing", "warning", fleet)
        ]
        assert found["items"][0]["summary"] == "work waits in the queue"
        everywhere = as_json(kubeconfig, "alerts", "-A", "--operator-service", service)
        assert {a["name"] for a in everywhere["items"]} == {
            "AgentfleetQueueBacklog",
            "AgentfleetElsewhere",
        }
        assert "AgentfleetQueueBacklog" in ok(
            kubeconfig, "alerts", "-n", fleet, "--operator-service", service
        )
        # status shows the same alerts (-A: this operator serves no Project's namespace,
        # so there is no throughput to read, and nothing is missing).
        status = as_json(kubeconfig, "status", "-A", "--operator-service", service)
        assert {a["name"] for a in status["alerts"]} >= {"AgentfleetQueueBacklog"}
        assert status["liveError"] is None
        assert "FIRING AgentfleetQueueBacklog" in ok(
            kubeconfig, "status", "-A", "--operator-service", service
        )
    finally:
        prometheus.stop()


def test_an_unreachable_read_api_is_one_line(
    fleet: str, kubeconfig: Path, api_client: client.ApiClient
) -> None:
    line = one_line_error(
        cli(kubeconfig, "queues", "-n", fleet, "--operator-service", f"{fleet}/absent")
    )
    assert line.startswith("error: the operator's read API (service ") and "not found" in line
    assert "is not installed" in line, line
    # A Service with no operator behind it.
    client.CoreV1Api(api_client).create_namespaced_service(
        fleet,
        {
            "metadata": {"name": "idle"},
            "spec": {"selector": {"app": "nothing"}, "ports": [{"name": "api", "port": 80}]},
        },
    )
    line = one_line_error(
        cli(kubeconfig, "workers", "-n", fleet, "--operator-service", f"{fleet}/idle:api")
    )
    assert "is unreachable" in line and "--api-port" in line, line
    # status still shows the resources, and says in one line what it could not read.
    shown = ok(kubeconfig, "status", "-n", fleet, "--operator-service", f"{fleet}/absent")
    assert "widgets" in shown and "Throughput and alerts not shown: the operator's" in shown
    line = one_line_error(cli(kubeconfig, "metrics", "-n", fleet, "--window", "soon"))
    assert line.startswith("error: --window: 'soon' is not a positive duration"), line


async def test_dispatch_starts_issues_and_requirements_once(
    fleet: str,
    kubeconfig: Path,
    api_client: client.ApiClient,
    local_cluster: LocalCluster,
    objects: Objects,
    queue: WorkQueue,
    tmp_path: Path,
) -> None:
    """`dispatch` through the operator: an existing issue by number, new issues from text
    and from a batch file (opened with the intake label), each once, whoever may patch
    the Project; a closed issue and a missing one are reported, not queued."""
    with FakeGitHub(tmp_path / "github") as github:
        github.create_repo("acme", "widgets")
        github.add_token("replace-with-a-github-token", "agentfleet-bot")
        github.add_token(HUMAN_TOKEN, "acme")
        human = Github(base_url=github.base_url, auth=Auth.Token(HUMAN_TOKEN))
        repo = human.get_repo("acme/widgets")
        existing = repo.create_issue("Export to CSV", body="As a file")
        closed = repo.create_issue("Old idea")
        closed.edit(state="closed")
        objects.custom.patch_namespaced_custom_object(
            "agentfleet.dev", "v1alpha1", fleet, "projects", "widgets",
            {"spec": {"githubApiUrl": github.base_url, "intake": {"pollIntervalSeconds": 86400}}},
            _content_type="application/merge-patch+json",
        )  # fmt: skip
        actor = service_account_kubeconfig(
            api_client, local_cluster, fleet, "dispatcher",
            [READ_API_PROXY,
             {"apiGroups": ["agentfleet.dev"], "resources": ["projects"], "verbs": ["patch"]}],
            tmp_path / "dispatcher.kubeconfig",
        )  # fmt: skip
        batch = tmp_path / "requirements.yaml"
        batch.write_text(yaml.safe_dump([{"title": "Dark mode", "body": "Toggle"}, "Search"]))
        args = [
            "dispatch", "widgets", "-n", fleet, "--issue", str(existing.number),
            "--issue", str(closed.number), "--issue", "999",
            "--text", "Add a cart\n\nUsers keep what they pick.", "--file", str(batch),
        ]  # fmt: skip
        first = as_json(actor, *args)["items"]
        by_title = {row["title"]: row for row in first}
        assert by_title["Export to CSV"]["new"] and not by_title["Export to CSV"]["created"]
        assert by_title["Old idea"]["error"] == "the issue is closed"
        assert by_title[""]["error"] == "no such issue" and by_title[""]["issue"] == 999
        for title in ("Add a cart", "Dark mode", "Search"):
            row = by_title[title]
            assert row["created"] and row["new"], row
            opened = repo.get_issue(row["issue"])
            assert [label.name for label in opened.labels] == ["agentfleet"]
            assert row["itemId"] == f"{fleet}/widgets/issue-{row['issue']}/genesis"
            item = await queue.get(fleet, row["itemId"])
            assert item is not None and item.payload["title"] == title
        assert repo.get_issue(by_title["Add a cart"]["issue"]).body.startswith(
            "Users keep what they pick."
        )
        # The same dispatch again opens nothing and queues nothing new.
        again = as_json(actor, *args)["items"]
        assert [(r["issue"], r["created"], r["new"]) for r in again if not r["error"]] == [
            (r["issue"], False, False) for r in first if not r["error"]
        ]
        assert len(github.issue_titles("acme/widgets")) == 5
        objects.wait_event("widgets", "WorkDispatched")
        line = one_line_error(cli(actor, "dispatch", "widgets", "-n", fleet))
        assert line == "error: nothing to dispatch: give --issue, --text or --file", line
        human.close()


def test_watch_shows_the_pools_again_every_interval(fleet: str, kubeconfig: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    arguments = [
        "pools", "-n", fleet, "--watch", "--interval", "0.5", "-o", "yaml",
        "--kubeconfig", str(kubeconfig),
    ]  # fmt: skip
    # Ctrl-C as a terminal delivers it: a run started in the background by a shell without
    # job control inherits SIGINT ignored, and Python then installs no KeyboardInterrupt.
    command = [
        sys.executable, "-c",
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler);"
        f" sys.argv = ['agentfleet', *{arguments!r}]; runpy.run_module('agentfleet',"
        " run_name='__main__')",
    ]  # fmt: skip
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        assert process.stdout is not None
        separators = 0
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while separators < 3 and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            separators += line.strip() == "---"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    documents = [d for d in yaml.safe_load_all("".join(lines)) if d]
    assert len(documents) >= 3, lines
    for document in documents:
        pools = Listing[PoolRow].model_validate(document)
        assert {"widgets-dev-tdd", "widgets-content"} <= {row.name for row in pools.items}
