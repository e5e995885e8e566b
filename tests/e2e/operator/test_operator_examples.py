"""examples/ applied with kubectl against the real control plane, with the operator running:
Deployments appear owned and complete, `kubectl scale` and spec changes roll through, hand
edits are undone, and deleting the Project takes its dedicated pools with it."""

from __future__ import annotations

import base64
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agentfleet.dev.localenv.waiting import wait_for

if TYPE_CHECKING:
    from .conftest import Kubectl, Objects, RunningOperator

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
DEDICATED = ("widgets-genesis", "widgets-dev-tdd", "widgets-content")
POOLS = (*DEDICATED, "platform-review")


def _apply_examples(kubectl: Kubectl, namespace: str) -> None:
    for name in ("secrets.yaml", "project.yaml", "workerpools.yaml"):
        kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / name))


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def _all_deployments(objects: Objects) -> dict[str, dict[str, Any]]:
    return wait_for(
        lambda: (found := objects.deployments()) and set(found) == set(POOLS) and found,
        30,
        f"Deployments {POOLS}",
    )


@pytest.fixture
def examples(kubectl: Kubectl, objects: Objects) -> dict[str, dict[str, Any]]:
    _apply_examples(kubectl, objects.namespace)
    return _all_deployments(objects)


def test_examples_become_owned_deployments(
    examples: dict[str, dict[str, Any]], objects: Objects, kubectl: Kubectl
) -> None:
    for name in POOLS:
        pool = objects.wait_condition("workerpools", name, "Ready", "True", "Reconciled")
        deployment = examples[name]
        (owner,) = deployment["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"], owner["uid"]) == (
            "WorkerPool",
            name,
            pool["metadata"]["uid"],
        )
        assert owner["controller"] is True
        template = deployment["spec"]["template"]
        assert template["metadata"]["labels"]["agentfleet.dev/pool"] == name
        assert template["metadata"]["labels"]["agentfleet.dev/stage"] == pool["spec"]["stage"]
        assert template["spec"]["serviceAccountName"] == name
        env = _env(deployment)
        assert env["AGENTFLEET_POOL"] == name
        assert env["AGENTFLEET_STAGE"] == pool["spec"]["stage"]
        assert env["AGENTFLEET_PROJECTS"] == "widgets"
        # The queue URL (it may carry a password) comes from the pool's own Secret.
        assert env["AGENTFLEET_REDIS_URL"] == {
            "secretKeyRef": {"name": f"{name}-queue", "key": "url"}
        }
        encoded = kubectl(
            "get", "-n", objects.namespace, "secret", f"{name}-queue",
            "-o", "jsonpath={.data.url}",
        ).stdout  # fmt: skip
        assert base64.b64decode(encoded).decode().startswith("redis://127.0.0.1:")
        kubectl("get", "-n", objects.namespace, "networkpolicy", name)
        assert pool["status"]["selector"] == (
            f"agentfleet.dev/pool={name},app.kubernetes.io/name=agentfleet-worker"
        )
        kubectl("get", "-n", objects.namespace, "serviceaccount", name)
        # A disruption budget only from two workers on (children.py says why).
        budget = kubectl("get", "-n", objects.namespace, "poddisruptionbudget", name, check=False)
        assert (budget.returncode == 0) == (deployment["spec"]["replicas"] >= 2), budget.stderr
        # A metrics Service from one worker on.
        service = kubectl(
            "get", "-n", objects.namespace, "service", f"{name}-metrics", check=False
        )  # fmt: skip
        assert (service.returncode == 0) == (deployment["spec"]["replicas"] >= 1), service.stderr

    tdd = examples["widgets-dev-tdd"]
    assert _env(tdd)["AGENTFLEET_SPECIALTIES"] == "tdd"
    assert tdd["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 600
    assert tdd["spec"]["replicas"] == 1
    assert examples["widgets-content"]["spec"]["replicas"] == 0

    # Dedicated pools belong to their Project; the selector pool does not.
    project = objects.project("widgets")
    assert project is not None
    for name in DEDICATED:
        dedicated = objects.pool(name)
        assert dedicated is not None
        assert {
            "kind": "Project",
            "name": "widgets",
            "uid": project["metadata"]["uid"],
        }.items() <= (dedicated["metadata"]["ownerReferences"][0].items())
    assert not (objects.pool("platform-review") or {})["metadata"].get("ownerReferences")

    project = wait_for(
        lambda: (
            (p := objects.project("widgets"))
            and (p.get("status") or {}).get("phase") == "Active"
            and p
        ),
        30,
        "Project widgets Active",
    )
    assert project["status"]["pools"] == sorted(POOLS)
    # kopf keeps its records of a pool in the operator's memory (operator/persistence.py),
    # a Project's in its annotations.
    kopf_records = {"agentfleet.dev/last-handled-configuration", "agentfleet.dev/kopf-managed"}
    for name in POOLS:
        annotations = (objects.pool(name) or {})["metadata"].get("annotations") or {}
        assert not kopf_records & set(annotations), (name, annotations)
    assert kopf_records <= set(project["metadata"]["annotations"])
    assert objects.condition(project, "Ready")["reason"] == "Valid"  # type: ignore[index]
    objects.wait_event("widgets-dev-tdd", "Created")


def test_kubectl_get_and_explain(
    examples: dict[str, Any], objects: Objects, kubectl: Kubectl
) -> None:
    objects.wait_condition("workerpools", "widgets-dev-tdd", "Ready", "True")
    table = kubectl("get", "workerpools", "-n", objects.namespace).stdout
    header = table.splitlines()[0].split()
    assert header == ["NAME", "STAGE", "DESIRED", "READY", "QUEUE", "AGE"]
    row = next(line.split() for line in table.splitlines() if line.startswith("widgets-dev-tdd"))
    assert row[1:3] == ["development", "1"]
    projects = kubectl("get", "proj", "-n", objects.namespace).stdout.splitlines()
    assert projects[0].split() == ["NAME", "REPO", "PHASE", "QUEUED", "AGE"]
    explained = kubectl("explain", "workerpool.spec").stdout
    assert "Pipeline stage the workers serve" in explained
    assert "autoscaling" in explained
    autoscaling = kubectl("explain", "workerpool.spec.autoscaling.scaleUp").stdout
    assert "Scale up when more than this many items wait" in autoscaling


def test_kubectl_scale_changes_the_deployment(
    examples: dict[str, Any], objects: Objects, kubectl: Kubectl
) -> None:
    ns = objects.namespace
    kubectl("scale", "-n", ns, "workerpool/platform-review", "--replicas=2")
    wait_for(
        lambda: (objects.deployment("platform-review") or {})["spec"]["replicas"] == 2,
        20,
        "Deployment platform-review at 2 replicas",
    )
    pool = wait_for(
        lambda: (
            (p := objects.pool("platform-review")) and p["status"].get("desiredReplicas") == 2 and p
        ),
        20,
        "status.desiredReplicas 2",
    )
    assert pool["status"]["lastScaleReason"] == "spec.replicas=2"
    scale = kubectl(
        "get",
        "-n",
        ns,
        "workerpool/platform-review",
        "--subresource=scale",
        "-o",
        "jsonpath={.spec.replicas} {.status.selector}",
    ).stdout
    assert scale.split()[0] == "2"
    assert "agentfleet.dev/pool=platform-review" in scale
    # At two workers the pool gets its disruption budget (one eviction at a time).
    wait_for(
        lambda: kubectl(
            "get", "-n", ns, "poddisruptionbudget", "platform-review", check=False
        ).returncode == 0,
        20,
        "the PodDisruptionBudget of platform-review at 2 replicas",
    )  # fmt: skip

    # Beyond maxReplicas (2) the operator clamps and says so.
    kubectl("scale", "-n", ns, "workerpool/platform-review", "--replicas=7")

    def clamped() -> dict[str, Any] | None:
        pool = objects.pool("platform-review")
        ready = objects.condition(pool, "Ready")
        return pool if ready and "spec.replicas=7 clamped to [0, 2]" in ready["message"] else None

    pool = wait_for(clamped, 20, "clamping explained in the Ready condition")
    assert pool["status"]["desiredReplicas"] == 2
    assert (objects.deployment("platform-review") or {})["spec"]["replicas"] == 2
    objects.wait_event("platform-review", "Scaled")


def test_hand_edits_to_the_deployment_are_reverted(
    examples: dict[str, Any], objects: Objects, kubectl: Kubectl
) -> None:
    ns = objects.namespace
    objects.wait_condition("workerpools", "widgets-genesis", "Ready", "True")
    kubectl(
        "patch",
        "-n",
        ns,
        "deployment/widgets-genesis",
        "--type=json",
        "-p",
        '[{"op": "replace", "path": "/spec/replicas", "value": 3},'
        ' {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil:1"}]',
    )

    def restored() -> bool:
        deployment = objects.deployment("widgets-genesis") or {}
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        return bool(
            deployment["spec"]["replicas"] == 1
            and container["image"] == "ghcr.io/agentfleet/agentfleet-worker:0.1.0"
        )

    wait_for(restored, 20, "replicas and image restored")
    objects.wait_event("widgets-genesis", "DriftCorrected")

    uid = (objects.deployment("widgets-genesis") or {})["metadata"]["uid"]
    kubectl("delete", "-n", ns, "deployment/widgets-genesis", "--wait=false")
    wait_for(
        lambda: (d := objects.deployment("widgets-genesis")) and d["metadata"]["uid"] != uid,
        20,
        "the deleted Deployment recreated",
    )


def test_spec_changes_roll_out(examples: dict[str, Any], objects: Objects) -> None:
    objects.patch(
        "workerpools",
        "widgets-content",
        {"spec": {"image": "registry.local/worker:2", "agent": {"maxTurns": 7}}},
    )

    def rolled() -> bool:
        deployment = objects.deployment("widgets-content") or {}
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        return bool(
            container["image"] == "registry.local/worker:2"
            and _env(deployment)["AGENTFLEET_MAX_TURNS"] == "7"
        )

    wait_for(rolled, 20, "the new image and settings in the pod template")
    objects.wait_reconciled("workerpools", "widgets-content")
    objects.wait_event("widgets-content", "RollingOut")


def test_operator_exposes_health_and_metrics(operator: RunningOperator, examples: Any) -> None:
    assert operator.get("/healthz", operator.health_port) is not None
    metrics = operator.get("/metrics", operator.metrics_port)
    assert 'agentfleet_operator_reconciles_total{kind="WorkerPool",result="ok"}' in metrics


def test_deleting_the_project_removes_its_dedicated_pools(
    examples: dict[str, Any], objects: Objects, kubectl: Kubectl, garbage_collector_knows_crds: None
) -> None:
    def owner_references(name: str) -> Any:
        return (objects.pool(name) or {})["metadata"].get("ownerReferences")

    for name in DEDICATED:
        wait_for(
            partial(owner_references, name),
            20,
            f"{name} owned by its Project",
        )
    kubectl("delete", "-n", objects.namespace, "project/widgets", "--wait=false")

    def collected() -> bool:
        deployments = sorted(set(objects.deployments()) - {"platform-review"})
        pools = [name for name in DEDICATED if objects.pool(name)]
        if deployments or pools:
            raise AssertionError(f"left: Deployments {deployments}, WorkerPools {pools}")
        return True

    # The cascade is kube-controller-manager's garbage collector at work, not ours; on the
    # loaded two-core CI machine it shares the collector with the namespaces earlier tests
    # deleted (45 s was once not enough), so the deadline is the probe fixture's.
    wait_for(
        collected,
        120,
        "dedicated pools and their Deployments garbage-collected",
    )
    # The shared pool stays, and says why it has nothing to serve now.
    pool = objects.wait_condition(
        "workerpools", "platform-review", "Ready", "False", "NoMatchingProjects"
    )
    assert "matches none" in objects.condition(pool, "Ready")["message"]  # type: ignore[index]
