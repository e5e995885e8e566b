"""The manifests a WorkerPool owns, built without a cluster."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentfleet.core.api.workerpool import WorkerPoolSpec
from agentfleet.core.podenv import PROJECTS_DIR
from agentfleet.operator.children import (
    WORKER_RESOURCES_WITH_SANDBOX,
    PoolIdentity,
    ServedProject,
    WorkerEnvironment,
    build_children,
    build_deployment,
    build_metrics_service,
    build_network_policy,
    build_pod_disruption_budget,
    build_queue_secret,
    queue_egress_rules,
    selector_labels,
    selector_string,
)

pytestmark = pytest.mark.unit

POOL = PoolIdentity(namespace="team-a", name="dev-tdd", uid="1234-uid")
PROJECTS = [ServedProject("widgets", "widgets-github"), ServedProject("gadgets", "gh")]
ENVIRONMENT = WorkerEnvironment(redis_url="redis://redis.agentfleet:6379/0")


def _spec(**fields: Any) -> WorkerPoolSpec:
    return WorkerPoolSpec.model_validate({"stage": "development", **fields})


def _container(deployment: dict[str, Any], name: str = "worker") -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    (container,) = (c for c in containers if c["name"] == name)
    found: dict[str, Any] = container
    return found


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
    children = build_children(POOL, _spec(), PROJECTS, 2, ENVIRONMENT)
    assert [c["kind"] for c in children] == [
        "ServiceAccount",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "Secret",
        "Deployment",
    ]
    for child in children:
        assert child["metadata"]["ownerReferences"][0]["uid"] == "1234-uid"
        assert child["metadata"]["labels"]["agentfleet.dev/pool"] == "dev-tdd"
        assert child["metadata"]["labels"]["app.kubernetes.io/managed-by"] == (
            "agentfleet-operator"
        )


@pytest.mark.parametrize(
    ("replicas", "kinds"),
    [
        (0, ["ServiceAccount", "NetworkPolicy", "Secret", "Deployment"]),
        (1, ["ServiceAccount", "Service", "NetworkPolicy", "Secret", "Deployment"]),
    ],
)
def test_a_small_pool_has_only_the_children_that_do_something(
    replicas: int, kinds: list[str]
) -> None:
    """No metrics Service without a worker to discover (it would cost an Endpoints and an
    EndpointSlice), and no disruption budget below two: maxUnavailable 1 allows every
    eviction of one Pod, and at zero the disruption controller posts NoPods for it."""
    children = build_children(POOL, _spec(), PROJECTS, replicas, ENVIRONMENT)
    assert [c["kind"] for c in children] == kinds


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
    # From the pool's queue Secret, never spelled in the Deployment.
    assert env["AGENTFLEET_REDIS_URL"] == {"secretKeyRef": {"name": "dev-tdd-queue", "key": "url"}}
    secret = build_queue_secret(POOL, _spec(), "redis://:pw@redis.agentfleet:6379/0")
    assert base64.b64decode(secret["data"]["url"]) == b"redis://:pw@redis.agentfleet:6379/0"
    assert secret["metadata"]["name"] == "dev-tdd-queue"
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
    sandbox = _container(deployment, "sandbox")
    pod = deployment["spec"]["template"]["spec"]
    assert container["image"] == sandbox["image"] == "registry.local/worker:1"
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}]
    # The workload (commands, tests) runs in the sandbox: it gets the pool's resources.
    assert sandbox["resources"] == {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}}
    assert container["resources"] == WORKER_RESOURCES_WITH_SANDBOX
    assert pod["terminationGracePeriodSeconds"] == 90
    assert pod["serviceAccountName"] == "dev-tdd"
    assert pod["automountServiceAccountToken"] is False
    assert pod["nodeSelector"] == {"pool": "agents"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    # The command handler runs only the pool's own command: no sandbox, pool resources.
    plain = build_deployment(POOL, _spec(handler="command"), PROJECTS, 1, ENVIRONMENT)
    (only,) = plain["spec"]["template"]["spec"]["containers"]
    assert only["name"] == "worker" and only["resources"]["requests"] == {
        "cpu": "250m", "memory": "512Mi"
    }  # fmt: skip


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


def test_the_sandbox_container_holds_no_credential_and_no_token() -> None:
    spec = _spec(
        env=[{"name": "ANTHROPIC_API_KEY", "secretKeyRef": {"name": "anthropic", "key": "k"}}],
        envFromSecrets=["shared-env"],
    )
    deployment = build_deployment(POOL, spec, PROJECTS, 1, ENVIRONMENT)
    pod = deployment["spec"]["template"]["spec"]
    sandbox = _container(deployment, "sandbox")
    assert "env" not in sandbox and "envFrom" not in sandbox
    secret_volumes = {v["name"] for v in pod["volumes"] if "secret" in v or "projected" in v}
    assert secret_volumes, "the worker has its credentials"
    assert not {m["name"] for m in sandbox["volumeMounts"]} & secret_volumes
    assert {m["mountPath"] for m in sandbox["volumeMounts"]} == {
        "/workspace", "/tmp", "/run/agentfleet/sandbox"
    }  # fmt: skip
    worker_mounts = {m["mountPath"] for m in _container(deployment)["volumeMounts"]}
    assert "/var/lib/agentfleet/private" in worker_mounts  # git directories: worker only
    assert pod["automountServiceAccountToken"] is False
    worker_user = _container(deployment)["securityContext"]["runAsUser"]
    assert sandbox["securityContext"]["runAsUser"] != worker_user


def test_both_containers_meet_pod_security_restricted() -> None:
    deployment = build_deployment(POOL, _spec(), PROJECTS, 1, ENVIRONMENT)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert context["runAsNonRoot"] is True and context["runAsUser"] >= 10000
        assert context["readOnlyRootFilesystem"] is True
    kinds = {next(k for k in volume if k != "name") for volume in pod["volumes"]}
    assert kinds <= {"emptyDir", "secret"}


def test_the_network_policy_denies_by_default_and_allows_only_the_documented_egress() -> None:
    queue_rule = {
        "to": [{"ipBlock": {"cidr": "10.250.0.1/32"}}],
        "ports": [{"port": 6379, "protocol": "TCP"}],
    }
    spec = _spec(
        egress=[
            {"cidr": "10.20.0.5/32", "ports": [3128]},
            {"namespaceSelector": {"matchLabels": {"team": "infra"}}, "ports": [8080]},
        ]
    )
    policy = build_network_policy(
        POOL,
        spec,
        WorkerEnvironment(
            redis_url="redis://x", queue_egress=(queue_rule,), blocked_cidrs=("100.100.0.0/16",)
        ),
    )
    body = policy["spec"]
    assert body["podSelector"] == {"matchLabels": selector_labels("dev-tdd")}
    assert body["policyTypes"] == ["Ingress", "Egress"]
    assert body["ingress"] == [{"ports": [{"port": 9090, "protocol": "TCP"}]}]
    dns, queue, public, proxy, infra = body["egress"]
    assert dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    assert {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}
    assert queue == queue_rule
    assert public["ports"] == [{"port": 443, "protocol": "TCP"}]
    v4, v6 = (peer["ipBlock"] for peer in public["to"])
    assert v4["cidr"] == "0.0.0.0/0" and v6["cidr"] == "::/0"
    for blocked in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"):
        assert blocked in v4["except"]
    assert "100.100.0.0/16" not in v4["except"], "inside 100.64.0.0/10 already"
    assert "fe80::/10" in v6["except"] and "fc00::/7" in v6["except"]
    assert proxy == {
        "to": [{"ipBlock": {"cidr": "10.20.0.5/32"}}],
        "ports": [{"port": 3128, "protocol": "TCP"}],
    }
    assert infra["to"] == [{"namespaceSelector": {"matchLabels": {"team": "infra"}}}]


def test_a_cluster_range_outside_the_private_ones_is_blocked_too() -> None:
    policy = build_network_policy(
        POOL, _spec(), WorkerEnvironment(blocked_cidrs=("203.0.113.0/24", "2001:db8::/32"))
    )
    public = policy["spec"]["egress"][1]
    v4, v6 = (peer["ipBlock"] for peer in public["to"])
    assert "203.0.113.0/24" in v4["except"] and "2001:db8::/32" in v6["except"]


def test_dns_may_also_go_to_the_addresses_the_operator_is_given() -> None:
    policy = build_network_policy(POOL, _spec(), WorkerEnvironment(dns_cidrs=("169.254.20.10/32",)))
    dns = policy["spec"]["egress"][0]
    assert dns["to"][1:] == [{"ipBlock": {"cidr": "169.254.20.10/32"}}]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    # Only port 53 there: the link-local range stays blocked for everything else.
    public = policy["spec"]["egress"][1]
    assert "169.254.0.0/16" in public["to"][0]["ipBlock"]["except"]


def test_the_queue_is_reached_as_pods_of_its_service_or_as_its_addresses() -> None:
    services = {
        ("agentfleet-system", "agentfleet-redis"): {
            "spec": {
                "selector": {"app.kubernetes.io/name": "agentfleet-redis"},
                "ports": [{"port": 6379, "targetPort": "redis"}],
            }
        }
    }

    def service(namespace: str, name: str) -> dict[str, Any] | None:
        return services.get((namespace, name))

    bundled = queue_egress_rules(
        "redis://:pw@agentfleet-redis.agentfleet-system.svc.cluster.local:6379/0",
        service,
        lambda host: [],
    )
    assert bundled == (
        {
            "to": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "agentfleet-system"}
                    },
                    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "agentfleet-redis"}},
                }
            ],
            "ports": [{"port": "redis", "protocol": "TCP"}],
        },
    )
    literal = queue_egress_rules("redis://10.250.0.1:4242/0", service, lambda host: [])
    assert literal[0]["to"] == [{"ipBlock": {"cidr": "10.250.0.1/32"}}]
    assert literal[0]["ports"] == [{"port": 4242, "protocol": "TCP"}]
    resolved = queue_egress_rules(
        "rediss://queue.example.com/0", service, lambda host: ["192.0.2.7", "2001:db8::7"]
    )
    assert resolved[0]["to"] == [
        {"ipBlock": {"cidr": "192.0.2.7/32"}},
        {"ipBlock": {"cidr": "2001:db8::7/128"}},
    ]
    assert queue_egress_rules("redis://nowhere.invalid/0", service, lambda host: []) == ()
