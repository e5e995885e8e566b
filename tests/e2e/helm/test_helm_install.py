"""The product as a user runs it: installed with Helm, operator, queue exporter, Redis and
workers all in containers on the local node, scheduled by the real scheduler, started
and stopped by the real kubelet and containerd.

- Two operator replicas run and exactly one decides; Prometheus discovers and scrapes the
  operator, the exporter and the workers through the API server; the GitHub and Anthropic
  test servers answer from inside a worker Pod through the real SDKs.
- A burst scales a pool to its maximum, the queue drains, and the pool scales back to its
  minimum removing idle Pods first; the busy worker left drains on SIGTERM: it finishes
  its item, then its Pod goes, within terminationGracePeriodSeconds.
- A worker container SIGKILLed mid-item loses the item to a reclaim; deleting the active
  operator Pod hands over to the standby, which goes on scaling.
- Every item completes exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml
from kubernetes import client

from agentfleet.core.api.workerpool import DEFAULT_WORKER_IMAGE
from agentfleet.ctl.views import AlertRow, Listing, QueuesOutput, WorkerRow
from agentfleet.dev.localenv.controlplane import write_token_kubeconfig
from agentfleet.dev.localenv.waiting import wait_for
from agentfleet.dev.testing import FakeAnthropic, FakeGitHub, scripted

if TYPE_CHECKING:
    from .conftest import Installation

pytestmark = pytest.mark.e2e

OPERATOR_METRICS_PORT = 8081  # the chart's operator.metricsPort
RELEASE_FULLNAME = "af-agentfleet"  # the chart's fullname for the release `af`
API_SERVICE = f"{RELEASE_FULLNAME}-api"
DECISIONS = "agentfleet_scaling_decisions_total"
# Slack for a shared two-core machine: Pods start in ~1-2 s, polls are 2 s apart.
SLACK = 30


HEARTBEAT_TIMEOUT = 10  # the pools' and the exporter's (conftest)


def workers(inst: Installation, namespace: str, pool: str) -> list[dict[str, Any]]:
    return inst.pods(namespace, f"agentfleet.dev/pool={pool}")


def ready_workers(inst: Installation, namespace: str, pool: str) -> list[dict[str, Any]]:
    return [p for p in workers(inst, namespace, pool) if inst.ready(p)]


def decisions_by_operator(inst: Installation, namespace: str, pool: str) -> dict[str, float]:
    return {
        pod["metadata"]["name"]: inst.pod_metric(
            pod, OPERATOR_METRICS_PORT, DECISIONS, namespace=namespace, pool=pool
        )
        for pod in inst.operator_pods()
        if inst.ready(pod)
    }


def deciding_operator(inst: Installation, namespace: str, pool: str) -> str:
    """The operator Pod whose decisions for the pool keep increasing (the active peer)."""
    before = decisions_by_operator(inst, namespace, pool)
    after = wait_for(
        lambda: (
            (now := decisions_by_operator(inst, namespace, pool))
            and sum(now.get(name, 0) > count for name, count in before.items()) >= 1
            and now
        ),
        20,
        "an operator deciding for the pool",
    )
    moving = [name for name, count in before.items() if after.get(name, 0) > count]
    assert len(moving) == 1, f"exactly one replica may decide, these did: {moving}"
    return moving[0]


def test_two_operators_one_active_every_pod_scraped_and_the_fakes_reachable(
    report_on_failure: Installation, tmp_path: Any
) -> None:
    inst = report_on_failure
    operators = inst.operator_pods()
    assert len(operators) == 2 and all(inst.ready(p) for p in operators)
    assert {p["spec"]["nodeName"] for p in operators} == {"agentfleet-node"}
    namespace = inst.take_team()
    # The external services' stand-ins, on a private address of the host: the pool's
    # NetworkPolicy lets workers reach them only because its spec.egress says so.
    network = inst.cluster.network
    assert network is not None
    github = FakeGitHub(tmp_path / "github").listen_on(network.host_ip).start()
    model = FakeAnthropic().listen_on(network.host_ip).start()
    egress = [{"cidr": f"{network.host_ip}/32", "ports": [github.port, model.port]}]
    inst.apply_pool(namespace, "scraped", 1, 2, egress=egress)
    wait_for(lambda: ready_workers(inst, namespace, "scraped"), 60, "a worker Pod Ready")
    deciding_operator(inst, namespace, "scraped")

    # Prometheus found every Pod through the API server and scrapes it by Pod IP.
    def scraped(component_pods: list[dict[str, Any]]) -> bool:
        names = {p["metadata"]["name"] for p in component_pods}
        up = inst.prometheus.query('up{job="kubernetes-pods"} == 1')
        return names <= {r["metric"].get("pod") for r in up}

    exporter = inst.pods(inst.system, "app.kubernetes.io/component=queue-exporter")
    assert len(exporter) == 1
    wait_for(
        lambda: scraped(operators + exporter + workers(inst, namespace, "scraped")),
        30,
        "operator, exporter and worker Pods scraped",
    )
    busy = inst.prometheus.query(f'agentfleet_worker_busy{{namespace="{namespace}"}}')
    assert busy and busy[0]["metric"]["pool"] == "scraped"

    # The external services' stand-ins answer a worker Pod, through the real SDKs.
    model.add_script("ping", scripted())
    try:
        github.add_token("ghp_" + "pod" * 12, "agentfleet-bot")
        github.create_repo("acme", "web")
        pod = workers(inst, namespace, "scraped")[0]["metadata"]["name"]
        token = "ghp_" + "pod" * 12
        script = (
            "import anthropic, github\n"
            f"auth = github.Auth.Token({token!r})\n"
            f"gh = github.Github(base_url={github.base_url!r}, auth=auth)\n"
            "print('repo', gh.get_repo('acme/web').full_name)\n"
            f"client = anthropic.Anthropic(base_url={model.base_url!r}, "
            f"api_key={model.api_key!r}, max_retries=0)\n"
            "reply = client.messages.create(model='claude-sonnet-4-6', max_tokens=16, "
            "messages=[{'role': 'user', 'content': 'ping'}])\n"
            "print('model', reply.stop_reason)\n"
        )
        out = inst.kubectl(
            "exec", "-n", namespace, pod, "-c", "worker", "--", "python3", "-c", script
        )
        assert "repo acme/web" in out and "model end_turn" in out, out
    finally:
        model.stop()
        github.stop()


def test_a_burst_scales_up_then_down_idle_first_and_the_busy_worker_drains(
    report_on_failure: Installation,
) -> None:
    inst = report_on_failure
    namespace = inst.take_team()
    pool = "developers"
    inst.apply_pool(namespace, pool, 1, 4)
    wait_for(lambda: ready_workers(inst, namespace, pool), 60, "the first worker Pod Ready")

    # One item runs until it is released: its worker stays busy while the pool grows and
    # shrinks around it. Then a burst: 30 items of 3 s, so the queue is still deep when
    # the fourth Pod is Ready.
    held = inst.item(namespace, "held", "until [ -e /tmp/release ]; do sleep 0.1; done")
    inst.enqueue(held)
    wait_for(lambda: inst.in_flight(namespace, "web") == 1, 30, "a worker holding the item")
    burst = [inst.item(namespace, f"burst-{n}", "sleep 3") for n in range(30)]
    inst.enqueue(*burst)
    wait_for(lambda: inst.deployment_replicas(namespace, pool) == 4, SLACK, "the Deployment at max")
    wait_for(
        lambda: len(ready_workers(inst, namespace, pool)) == 4,
        SLACK,
        "four worker Pods Ready on the node",
    )
    wait_for(
        lambda: sum(inst.completions(namespace)[0].values()) >= len(burst), 120, "the burst done"
    )
    wait_for(
        lambda: inst.deployment_replicas(namespace, pool) == 1, 60, "the Deployment back at min"
    )
    survivors = wait_for(
        lambda: (live := workers(inst, namespace, pool)) and len(live) == 1 and live,
        60,
        "the idle Pods gone",
    )
    (survivor,) = survivors
    name = survivor["metadata"]["name"]
    assert survivor["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"] == "1"
    events = inst.kubectl("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}")
    assert "ScaledDown" in events.split()

    # SIGTERM while the item runs: the worker keeps it, finishes it, then exits.
    deleted_at = time.monotonic()
    inst.kubectl("delete", "pod", "-n", namespace, name, "--wait=false")
    wait_for(
        lambda: (
            "draining: " + held.id in inst.kubectl("logs", "-n", namespace, name, "-c", "worker")
        ),
        15,
        "the worker draining (SIGTERM received) with the item still running",
    )
    inst.kubectl("exec", "-n", namespace, name, "-c", "worker", "--", "touch", "/tmp/release")
    counts, entries = wait_for(
        lambda: (done := inst.completions(namespace)) and held.id in done[0] and done,
        30,
        "the held item completed by the draining worker",
    )
    assert entries[held.id]["worker"] == name
    wait_for(
        lambda: (
            name
            not in {
                p["metadata"]["name"] for p in inst.pods(namespace, f"agentfleet.dev/pool={pool}")
            }
            and not inst.kubectl(
                "get",
                "pods",
                "-n",
                namespace,
                "--field-selector",
                f"metadata.name={name}",
                "-o",
                "name",
            )
        ),
        30,
        "the drained Pod gone",
    )
    assert time.monotonic() - deleted_at < 30  # terminationGracePeriodSeconds
    assert counts == Counter({i.id: 1 for i in [*burst, held]})


def test_a_killed_worker_is_reclaimed_and_a_deleted_operator_hands_over(
    report_on_failure: Installation,
) -> None:
    inst = report_on_failure
    namespace = inst.take_team()
    pool = "survivors"
    inst.apply_pool(namespace, pool, 1, 3)
    (pod,) = wait_for(
        lambda: (ready := ready_workers(inst, namespace, pool)) and len(ready) == 1 and ready,
        60,
        "one worker Pod Ready",
    )

    # SIGKILL the worker container mid-item; kubelet restarts it, the item is reclaimed
    # once its heartbeat is older than the timeout, and done once.
    victim = inst.item(namespace, "victim", "sleep 4")
    inst.enqueue(victim)
    wait_for(lambda: inst.in_flight(namespace, "web") == 1, 30, "the worker holding the item")
    container = pod["status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    killed_at = time.monotonic()
    inst.cluster.node.crictl("stop", "--timeout", "0", container)
    counts, _ = wait_for(
        lambda: (done := inst.completions(namespace)) and victim.id in done[0] and done,
        HEARTBEAT_TIMEOUT + 4 + SLACK,
        "the killed worker's item reclaimed and completed",
    )
    # Not before its heartbeat had gone stale: it was taken over, not finished by the dead.
    assert time.monotonic() - killed_at >= HEARTBEAT_TIMEOUT
    assert counts[victim.id] == 1
    name = pod["metadata"]["name"]
    (restarted,) = (p for p in workers(inst, namespace, pool) if p["metadata"]["name"] == name)
    assert restarted["status"]["containerStatuses"][0]["restartCount"] >= 1

    # The active operator goes; the standby takes over and keeps scaling the pool.
    active = deciding_operator(inst, namespace, pool)
    inst.kubectl("delete", "pod", "-n", inst.system, active, "--wait=false")
    wait_for(
        lambda: (now := deciding_operator(inst, namespace, pool)) != active and now,
        60,
        "the standby operator deciding",
    )
    burst = [inst.item(namespace, f"after-failover-{n}") for n in range(20)]
    inst.enqueue(*burst)
    wait_for(lambda: inst.deployment_replicas(namespace, pool) == 3, SLACK, "the pool scaled up")
    counts, _ = wait_for(
        lambda: (done := inst.completions(namespace)) and sum(done[0].values()) >= 21 and done,
        120,
        "every item done",
    )
    assert counts == Counter({i.id: 1 for i in [victim, *burst]})


def _probe_pod(name: str, labels: dict[str, str], ip: str) -> dict[str, Any]:
    """A restricted Pod that tries a TCP connection to Redis and exits 0 if it connects."""
    script = (
        "import socket, sys\n"
        "try:\n"
        f"    socket.create_connection(({ip!r}, 6379), timeout=4).close()\n"
        "except OSError as exc:\n"
        "    sys.exit(f'refused: {exc}')\n"
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "probe",
                    "image": DEFAULT_WORKER_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python3", "-c", script],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def test_every_pod_is_restricted_and_ready_and_redis_admits_only_its_clients(
    report_on_failure: Installation,
) -> None:
    """The release's namespace and the teams' enforce Pod Security `restricted`: the
    operator, exporter, Redis and worker Pods were all admitted and are Ready, hardened
    beyond what the profile demands; Redis' NetworkPolicy lets worker Pods in, not others."""
    inst = report_on_failure
    namespace = inst.take_team()
    inst.apply_pool(namespace, "hardened", 1, 1)
    wait_for(lambda: ready_workers(inst, namespace, "hardened"), 60, "a worker Pod Ready")
    for ns in (inst.system, namespace):
        labels = json.loads(inst.kubectl("get", "namespace", ns, "-o", "json"))["metadata"]
        assert labels["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"

    release = inst.pods(inst.system, "")
    by_component = Counter(
        p["metadata"]["labels"].get("app.kubernetes.io/component")
        or p["metadata"]["labels"]["app.kubernetes.io/name"]
        for p in release
    )
    assert by_component == {"operator": 2, "queue-exporter": 1, "agentfleet-redis": 1}
    for pod in [*release, *workers(inst, namespace, "hardened")]:
        name = pod["metadata"]["name"]
        spec = pod["spec"]
        assert inst.ready(pod), name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        is_operator = pod["metadata"]["labels"].get("app.kubernetes.io/component") == "operator"
        # A token only where the Kubernetes API is called.
        assert spec.get("automountServiceAccountToken") is is_operator, name
        for container in spec["containers"]:
            context = container["securityContext"]
            user = context.get("runAsUser", spec["securityContext"].get("runAsUser"))
            assert user is not None and user >= 10000, (name, container["name"])
            assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert context["capabilities"] == {"drop": ["ALL"]}, (name, container["name"])
            assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert container["resources"]["requests"], (name, container["name"])
            if "livenessProbe" in container:
                assert container["livenessProbe"] != container["readinessProbe"], name

    # Enforced, not only labelled: a privileged Pod is refused.
    privileged = _probe_pod("privileged", {}, "127.0.0.1")
    privileged["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    with pytest.raises(AssertionError, match="violates PodSecurity"):
        inst.kubectl(
            "-n", inst.system, "create", "--dry-run=server", "-f", "-",
            stdin=yaml.safe_dump(privileged),
        )  # fmt: skip

    # Redis: a worker Pod (by its label) connects; any other Pod of the cluster does not.
    ip = inst.kubectl(
        "get", "service", "agentfleet-redis", "-n", inst.system, "-o", "jsonpath={.spec.clusterIP}"
    )
    worker_like = _probe_pod("as-worker", {"app.kubernetes.io/name": "agentfleet-worker"}, ip)
    stranger = _probe_pod("stranger", {"app.kubernetes.io/name": "stranger"}, ip)
    for pod in (worker_like, stranger):
        inst.kubectl("-n", namespace, "apply", "-f", "-", stdin=yaml.safe_dump(pod))

    def phase(name: str) -> str:
        return str(
            inst.kubectl("-n", namespace, "get", "pod", name, "-o", "jsonpath={.status.phase}")
        )

    def finished(name: str) -> str | None:
        now = phase(name)
        return now if now in ("Succeeded", "Failed") else None

    assert wait_for(lambda: finished("as-worker"), 60, "the worker-like probe done") == "Succeeded"
    assert wait_for(lambda: finished("stranger"), 60, "the stranger probe done") == "Failed"
    log = inst.kubectl("-n", namespace, "logs", "stranger")
    assert "refused: timed out" in log, log


def test_the_cli_reads_the_queue_through_the_charts_read_api(
    report_on_failure: Installation, tmp_path: Path
) -> None:
    """`agentfleet workers`, `queues` and `alerts` with only the admin kubeconfig: through
    the API server's service proxy to the chart's `<release>-api` Service, the operator
    Pods' read API port, admitted by the chart's NetworkPolicy, reading the bundled Redis
    and the Prometheus of the release."""
    inst = report_on_failure
    namespace = inst.take_team()
    pool = "readers"
    inst.apply_pool(namespace, pool, 1, 1)
    held = inst.item(namespace, "held", "until [ -e /tmp/release ]; do sleep 0.1; done")
    inst.enqueue(held, inst.item(namespace, "waiting"))
    service = f"{inst.system}/{API_SERVICE}:api"

    def cli(*args: str) -> dict[str, Any]:
        result = subprocess.run(
            [sys.executable, "-m", "agentfleet", *args, "-n", namespace, "-o", "json",
             "--kubeconfig", str(inst.cluster.kubeconfig), "--operator-service", service],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        out: dict[str, Any] = json.loads(result.stdout)
        return out

    def holding() -> dict[str, Any] | None:
        listing = cli("workers", pool)
        Listing[WorkerRow].model_validate(listing)
        busy = [w for w in listing["items"] if w["items"] == [held.id]]
        return busy[0] if busy else None

    worker = wait_for(holding, 90, "a worker Pod holding the item, seen through the read API")
    assert worker["heartbeatAgeSeconds"] < HEARTBEAT_TIMEOUT
    queues = cli("queues")
    QueuesOutput.model_validate(queues)
    (development,) = [s for s in queues["stages"] if s["stage"] == "development"]
    assert (development["inFlight"], development["pending"]) == (1, 1)
    alerts = cli("alerts")
    Listing[AlertRow].model_validate(alerts)
    assert alerts["items"] == []  # the release's Prometheus has no rule that fires
    name = worker["name"]
    inst.kubectl("exec", "-n", namespace, name, "-c", "worker", "--", "touch", "/tmp/release")

    # The chart's Roles for people, by the names the proxy's RBAC check sees
    # ("<service>:<port>"): the reader reads the queue but may not send an action; the
    # api-user may send one, which the operator then refuses from its own RBAC check.
    core = client.CoreV1Api(inst.api)
    rbac = client.RbacAuthorizationV1Api(inst.api)
    users = {}
    for role in ("api-reader", "api-user"):
        core.create_namespaced_service_account(namespace, {"metadata": {"name": role}})
        rbac.create_namespaced_role_binding(
            inst.system,
            {
                "metadata": {"name": f"{namespace}-{role}"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "Role",
                    "name": f"{RELEASE_FULLNAME}-{role}",
                },
                "subjects": [{"kind": "ServiceAccount", "name": role, "namespace": namespace}],
            },
        )
        token = core.create_namespaced_service_account_token(
            role, namespace, {"spec": {"audiences": [], "expirationSeconds": 3600}}
        ).status.token
        users[role] = write_token_kubeconfig(
            tmp_path / f"{role}.kubeconfig", inst.cluster.server,
            inst.cluster.controlplane.pki.ca.cert, token, role,
        )  # fmt: skip

    def as_user(role: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentfleet", *args, "-n", namespace,
             "--kubeconfig", str(users[role]), "--operator-service", service],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def readable() -> bool:
        return as_user("api-reader", "queues", "-o", "json").returncode == 0

    wait_for(readable, 30, "the api-reader Role in effect")  # RBAC caches catch up
    refused = as_user("api-reader", "retry", "web")
    assert refused.returncode == 1, refused.stdout
    assert refused.stderr.startswith(
        f"error: forbidden: cannot create services/proxy '{API_SERVICE}'"
    ), refused.stderr
    refused = as_user("api-user", "retry", "web")
    assert refused.returncode == 1, refused.stdout
    assert refused.stderr.strip() == (
        f'error: operator: user "system:serviceaccount:{namespace}:api-user" may not patch '
        f'projects.agentfleet.dev "web" in namespace {namespace} (no RBAC rule allows it)'
    ), refused.stderr
