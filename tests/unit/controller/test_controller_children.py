"""The manifests a WorkerPool owns, built without a cluster."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.api.workerpool import WorkerPoolSpec
from agentfleet.controller.children import (
    PROJECTS_DIR,
    PoolIdentity,
    ServedProject,
    WorkerEnvironment,
    build_children,
    build_deployment,
    build_metrics_service,
    build_pod_disruption_budget,
    selector_labels,
    selector_string,
)

pytestmark = pytest.mark.unit

POOL = PoolIdentity(namespace="team-a", name="dev-tdd", uid="1234-uid")
PROJECTS = [ServedProject("widgets", "widgets-github"), ServedProject("gadgets", "gh")]
ENVIRONMENT = WorkerEnvironment(redis_url="redis://redis.agentfleet:6379/0")


def _spec(**fields: Any) -> WorkerPoolSpec:
    return WorkerPoolSpec.model_validate({"stage": "development", **fields})


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    entries = _container(deployment)["env"]
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    # An entry without value is the empty string, as the API server stores it.
    return {e["name"]: e["valueFrom"] if "valueFrom" in e else e.get("value", "") for e in entries}


def test_deployment_is_controlled_by_its_pool() -> None:
    deployment = build_deployment(POOL, _spec(), PROJECTS, 2, ENVIRONMENT)
    assert deployment["metadata"]["name"] == "dev-tdd"
    assert deployment["metadata"]["namespace"] == "team-a"
    (owner,) = deployment["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "agentfleet.dev/v1alpha1",
        "kind": "WorkerPool",
        "name": "dev-tdd",
        "uid": "1234-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert deployment["spec"]["replicas"] == 2


def test_every_child_is_owned_and_labelled() -> None:
    children = build_children(POOL, _spec(), PROJECTS, 1, ENVIRONMENT)
    assert [c["kind"] for c in children] == [
        "ServiceAccount",
        "Service",
        "PodDisruptionBudget",
        "Deployment",
    ]
    for child in children:
        assert child["metadata"]["ownerReferences"][0]["uid"] == "1234-uid"
        assert child["metadata"]["labels"]["agentfleet.dev/pool"] == "dev-tdd"
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == (
            "agentfleet-operator"
        )


def test_pod_template_carries_the_contract_labels_and_scrape_annotations() -> None:
    deployment = build_deployment(POOL, _spec(stage="content"), PROJECTS, 1, ENVIRONMENT)
    template = deployment["spec"]["template"]
    assert template["metadata"]["labels"] == {
        "app.kubernetes.io/name": "agentfleet-worker",
        "app.kubernetes.io/instance": "dev-tdd",
        "agentfleet.dev/pool": "dev-tdd",
        "agentfleet.dev/stage": "content",
    }
    assert template["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert template["metadata"]["annotations"]["prometheus.io/port"] == "9090"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= template["metadata"]["labels"].items()
    # The selector must not contain the stage: a Deployment's selector is immutable.
    assert "agentfleet.dev/stage" not in selector


def test_worker_env_contract() -> None:
    spec = _spec(
        specialties=["tdd", "ai-ml"],
        handler="command",
        agent={"model": "claude-opus-4-1", "maxTurns": 12, "tokenBudget": 50000},
        terminationGracePeriodSeconds=120,
    )
    env = _env(build_deployment(POOL, spec, PROJECTS, 1, ENVIRONMENT))
    assert env["AGENTFLEET_REDIS_URL"] == "redis://redis.agentfleet:6379/0"
    assert env["AGENTFLEET_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["AGENTFLEET_POOL"] == "dev-tdd"
    assert env["AGENTFLEET_STAGE"] == "development"
    assert env["AGENTFLEET_SPECIALTIES"] == "tdd,ai-ml"
    assert env["AGENTFLEET_PROJECTS"] == "widgets,gadgets"
    assert env["AGENTFLEET_HANDLER"] == "command"
    assert env["AGENTFLEET_METRICS_PORT"] == "9090"
    assert env["AGENTFLEET_MODEL"] == "claude-opus-4-1"
    assert env["AGENTFLEET_MAX_TURNS"] == "12"
    assert env["AGENTFLEET_TOKEN_BUDGET"] == "50000"
    # The worker must finish draining before the kubelet's SIGKILL.
    assert int(env["AGENTFLEET_DRAIN_GRACE_SECONDS"]) < 120


def test_pool_serving_every_project_gets_an_empty_project_list() -> None:
    env = _env(build_deployment(POOL, _spec(), PROJECTS, 1, ENVIRONMENT, all_projects=True))
    assert env["AGENTFLEET_PROJECTS"] == ""


def test_operator_without_redis_sets_no_redis_url() -> None:
    env = _env(build_deployment(POOL, _spec(), PROJECTS, 1, WorkerEnvironment()))
    assert "AGENTFLEET_REDIS_URL" not in env


def test_pool_env_overrides_the_contract_by_name_and_reads_secrets() -> None:
    spec = _spec(
        env=[
            {"name": "AGENTFLEET_HANDLER", "value": "echo"},
            {"name": "AGENTFLEET_COMMAND", "value": "true"},
            {"name": "ANTHROPIC_API_KEY", "secretKeyRef": {"name": "anthropic", "key": "key"}},
        ],
        envFromSecrets=["shared-env"],
    )
    deployment = build_deployment(POOL, spec, PROJECTS, 1, ENVIRONMENT)
    env = _env(deployment)
    assert env["AGENTFLEET_HANDLER"] == "echo"
    assert env["AGENTFLEET_COMMAND"] == "true"
    assert env["ANTHROPIC_API_KEY"] == {"secretKeyRef": {"name": "anthropic", "key": "key"}}
    assert _container(deployment)["envFrom"] == [{"secretRef": {"name": "shared-env"}}]


def test_container_shape() -> None:
    spec = _spec(
        image="registry.local/worker:1",
        resources={"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
        terminationGracePeriodSeconds=90,
        nodeSelector={"pool": "agents"},
    )
    deployment = build_deployment(POOL, spec, PROJECTS, 1, ENVIRONMENT)
    container = _container(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert container["image"] == "registry.local/worker:1"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    assert container["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}
    assert pod["terminationGracePeriodSeconds"] == 90
    assert pod["serviceAccountName"] == "dev-tdd"
    assert pod["nodeSelector"] == {"pool": "agents"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_each_served_project_credentials_are_mounted_read_only() -> None:
    deployment = build_deployment(POOL, _spec(), PROJECTS, 1, ENVIRONMENT)
    pod = deployment["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["mountPath"]: m for m in _container(deployment)["volumeMounts"]}
    for project in PROJECTS:
        mount = mounts[f"{PROJECTS_DIR}/{project.name}"]
        assert mount["readOnly"] is True
        assert secrets[mount["name"]] == {
            "secretName": project.credentials_secret,
            "optional": True,
        }


def test_metrics_service_and_disruption_budget() -> None:
    service = build_metrics_service(POOL, _spec())
    assert service["metadata"]["name"] == "dev-tdd-metrics"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == selector_labels("dev-tdd")
    assert service["spec"]["ports"][0]["port"] == 9090
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    pdb = build_pod_disruption_budget(POOL, _spec())
    assert pdb["spec"] == {
        "maxUnavailable": 1,
        "selector": {"matchLabels": selector_labels("dev-tdd")},
    }


def test_selector_string_is_the_label_selector() -> None:
    assert selector_string("dev-tdd") == (
        "agentfleet.dev/pool=dev-tdd,app.kubernetes.io/name=agentfleet-worker"
    )


_env_names = st.sampled_from(
    ["AGENTFLEET_POOL", "AGENTFLEET_STAGE", "POD_NAME", "AGENTFLEET_REDIS_URL", "A", "B_2"]
)


@given(
    overrides=st.dictionaries(
        _env_names,
        # Any text an env value may hold: no control character but tab and line breaks,
        # and no lone surrogate (not text at all).
        st.text(
            st.characters(exclude_categories=["Cc", "Cs"]) | st.sampled_from("\t\n\r"), max_size=5
        ),
        max_size=6,
    ),
    specialties=st.lists(st.sampled_from(["tdd", "ai-ml", "docs"]), unique=True),
    replicas=st.integers(min_value=0, max_value=50),
)
def test_env_names_stay_unique_and_overrides_win(
    overrides: dict[str, str], specialties: list[str], replicas: int
) -> None:
    spec = _spec(
        env=[{"name": k, "value": v} for k, v in overrides.items()], specialties=specialties
    )
    deployment = build_deployment(POOL, spec, PROJECTS, replicas, ENVIRONMENT)
    env = _env(deployment)
    for name, value in overrides.items():
        assert env[name] == value
    assert deployment["spec"]["replicas"] == replicas
