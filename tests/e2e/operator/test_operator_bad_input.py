"""Bad input against the real API server with the operator running.

Specs the schema or CEL rules refuse never get stored, and say why. Specs that are stored
but cannot be served (missing Secret, no matching Project, a stage outside the pipeline,
a Deployment the API server would refuse) set Ready=False with a reason, create no child
at all, and do not stop the operator from serving everything else.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agentfleet.dev.localenv.waiting import wait_for

if TYPE_CHECKING:
    from .conftest import Kubectl, Objects

pytestmark = pytest.mark.e2e

PROJECT_SPEC = {
    "repository": "acme/fuzz",
    "credentialsSecretRef": {"name": "fuzz-github"},
    "pipeline": {"stages": ["genesis", "development"]},
}


def _secret(objects: Objects, name: str, data: dict[str, str]) -> None:
    objects.core.create_namespaced_secret(
        objects.namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data),
    )


def _manifest(kind: str, name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {
            "apiVersion": "agentfleet.dev/v1alpha1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec,
        }
    )


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        (
            "WorkerPool",
            {"stage": "development", "minReplicas": 4, "maxReplicas": 2},
            "minReplicas must be less than or equal to maxReplicas",
        ),
        (
            "WorkerPool",
            {"stage": "development", "autoscaling": {"scaleDown": {"utilizationBelow": 0.9}}},
            "scaleDown.utilizationBelow must be strictly below scaleUp.utilizationAbove",
        ),
        ("WorkerPool", {"stage": "deploy"}, 'Unsupported value: "deploy"'),
        ("WorkerPool", {"stage": "review", "replicas": -1}, "should be greater than or equal to 0"),
        (
            "WorkerPool",
            {"stage": "review", "resources": {"requests": {"cpu": "lots"}}},
            "spec.resources.requests.cpu",
        ),
        (
            "WorkerPool",
            {"stage": "review", "project": "a", "projectSelector": {}},
            "set either project or projectSelector, not both",
        ),
        (
            "Project",
            {**PROJECT_SPEC, "pipeline": {"failureStage": "genesis"}},
            "pipeline.failureStage must not be one of pipeline.stages",
        ),
        (
            "Project",
            {**PROJECT_SPEC, "intake": {"webhook": {"enabled": True}}},
            "webhook.secretRef is required when webhook.enabled is true",
        ),
        ("Project", {"repository": "acme/x"}, "spec.credentialsSecretRef: Required value"),
    ],
)
def test_schema_and_cel_refuse_with_a_readable_message(
    kubectl: Kubectl, op_namespace: str, kind: str, spec: dict[str, Any], message: str
) -> None:
    result = kubectl(
        "apply", "-n", op_namespace, "-f", "-", stdin=_manifest(kind, "bad", spec), check=False
    )
    assert result.returncode != 0
    assert message in result.stderr


def test_pool_names_that_cannot_name_a_service_are_refused(
    kubectl: Kubectl, op_namespace: str
) -> None:
    result = kubectl(
        "apply",
        "-n",
        op_namespace,
        "-f",
        "-",
        stdin=_manifest("WorkerPool", "9-starts-with-a-digit", {"stage": "review"}),
        check=False,
    )
    assert "WorkerPool names must be DNS-1035 labels" in result.stderr


CHILDREN = (
    ("read_namespaced_deployment", "apps"),
    ("read_namespaced_service_account", "core"),
    ("read_namespaced_pod_disruption_budget", "policy"),
)
SERVED = {"read_namespaced_deployment", "read_namespaced_service_account"}
"""The children every served pool has (the metrics Service only from one worker on, the
disruption budget from two)."""


def _children(objects: Objects, pool: str) -> list[str]:
    """Which of the pool's children exist."""
    found = []
    apis = {
        "apps": objects.apps,
        "core": objects.core,
        "policy": client.PolicyV1Api(objects.api_client),
    }
    for method, api in CHILDREN:
        try:
            getattr(apis[api], method)(pool, objects.namespace)
            found.append(method)
        except ApiException as error:
            if error.status != 404:
                raise
    try:
        objects.core.read_namespaced_service(f"{pool}-metrics", objects.namespace)
        found.append("read_namespaced_service")
    except ApiException as error:
        if error.status != 404:
            raise
    return found


SEMANTIC_ERRORS: dict[str, tuple[dict[str, Any], str]] = {
    "missing-secret": ({"stage": "development", "envFromSecrets": ["absent"]}, "SecretNotFound"),
    "missing-key": (
        {
            "stage": "development",
            "env": [{"name": "K", "secretKeyRef": {"name": "fuzz-secret", "key": "absent"}}],
        },
        "SecretKeyNotFound",
    ),
    "no-project": ({"stage": "development", "project": "absent"}, "ProjectNotFound"),
    "no-match": (
        {"stage": "development", "projectSelector": {"matchLabels": {"team": "nobody"}}},
        "NoMatchingProjects",
    ),
    "wrong-stage": ({"stage": "content"}, "StageNotInPipeline"),
    # The schema refuses requests above limits; an extended resource without a limit is
    # only refused by the Deployment's own validation (the operator's dry run).
    "refused-deployment": (
        {"stage": "genesis", "resources": {"requests": {"example.com/gpu": "1"}}},
        "ApplyFailed",
    ),
    # At zero replicas the new Deployment is applied first, for real, as its own dry run.
    "refused-deployment-at-zero": (
        {
            "stage": "genesis",
            "minReplicas": 0,
            "resources": {"requests": {"example.com/gpu": "1"}},
        },
        "ApplyFailed",
    ),
}


def test_semantic_errors_set_ready_false_and_build_nothing(
    objects: Objects, kubectl: Kubectl
) -> None:
    _secret(objects, "fuzz-github", {"token": "t"})
    _secret(objects, "fuzz-secret", {"present": "x"})
    objects.create("projects", "fuzz", PROJECT_SPEC, labels={"team": "fuzz"})
    for name, (spec, _) in SEMANTIC_ERRORS.items():
        objects.create("workerpools", name, spec)
    objects.create("workerpools", "good", {"stage": "development"})

    for name, (_, reason) in SEMANTIC_ERRORS.items():
        pool = objects.wait_condition("workerpools", name, "Ready", "False", reason)
        assert objects.condition(pool, "Ready")["message"]  # type: ignore[index]
        objects.wait_event(name, reason)
        assert _children(objects, name) == [], f"{name} left children behind"
    # Everything else is still served.
    objects.wait_reconciled("workerpools", "good")
    assert set(_children(objects, "good")) >= SERVED

    # Fixing the cause heals the pool without touching it (the periodic resync notices).
    _secret(objects, "absent", {"ANTHROPIC_API_KEY": "k"})
    objects.wait_reconciled("workerpools", "missing-secret")
    assert set(_children(objects, "missing-secret")) >= SERVED


def test_project_without_credentials_fails_visibly(objects: Objects) -> None:
    objects.create("projects", "orphan", PROJECT_SPEC)
    project = objects.wait_condition("projects", "orphan", "Ready", "False", "CredentialsNotFound")
    assert project["status"]["phase"] == "Failed"
    _secret(objects, "fuzz-github", {"app-id": "1"})
    objects.wait_condition("projects", "orphan", "Ready", "False", "CredentialsIncomplete")


# --------------------------------------------------------------- fuzzing

BASE_POOL: dict[str, Any] = {"stage": "development", "minReplicas": 0, "maxReplicas": 2}
FIELD_PATHS = [
    ("stage",),
    ("minReplicas",),
    ("maxReplicas",),
    ("replicas",),
    ("image",),
    ("imagePullPolicy",),
    ("handler",),
    ("specialties",),
    ("env",),
    ("envFromSecrets",),
    ("project",),
    ("projectSelector",),
    ("projectSelector", "matchExpressions"),
    ("resources", "requests"),
    ("resources", "limits", "cpu"),
    ("agent", "maxTurns"),
    ("agent", "model"),
    ("autoscaling", "scaleUp", "queueDepthAbove"),
    ("autoscaling", "scaleDown", "utilizationBelow"),
    ("autoscaling", "fallback", "replicas"),
    ("terminationGracePeriodSeconds",),
    ("nodeSelector",),
    ("notAField",),
]
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(
        st.sampled_from(["name", "key", "cpu", "a b", "value"]), st.integers(), max_size=2
    ),
)
SEMANTIC_PATCHES = st.sampled_from([spec for spec, _ in SEMANTIC_ERRORS.values()])


def _set(spec: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    mutated = copy.deepcopy(spec)
    node = mutated
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value
    return mutated


MUTATIONS = st.one_of(
    st.tuples(st.sampled_from(FIELD_PATHS), JUNK).map(lambda pv: ("set", pv)),
    SEMANTIC_PATCHES.map(lambda patch: ("merge", patch)),
)


@st.composite
def malformed_pools(draw: st.DrawFn) -> dict[str, Any]:
    spec = copy.deepcopy(BASE_POOL)
    for action, argument in draw(st.lists(MUTATIONS, min_size=1, max_size=3)):
        if action == "set":
            path, value = argument
            spec = _set(spec, path, value)
        else:
            spec = {**spec, **copy.deepcopy(argument)}
    return spec


def test_malformed_specs_never_crash_the_operator_or_half_build(objects: Objects) -> None:
    _secret(objects, "fuzz-github", {"token": "t"})
    _secret(objects, "fuzz-secret", {"present": "x"})
    objects.create("projects", "fuzz", PROJECT_SPEC, labels={"team": "fuzz"})
    thrown: list[dict[str, Any]] = []
    accepted: list[str] = []

    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(spec=malformed_pools())
    def throw(spec: dict[str, Any]) -> None:
        name = f"fuzz-{len(thrown)}"
        thrown.append(spec)
        try:
            objects.create("workerpools", name, spec)
        except ApiException as error:
            assert error.status in (400, 422), error
            assert json.loads(error.body)["message"], "a refusal must say why"
            return
        accepted.append(name)

    throw()
    assert len(thrown) >= 50
    assert accepted, "some malformed specs must get past the schema to test the operator"
    assert len(accepted) < len(thrown), "some malformed specs must be refused by the schema"

    def settled() -> dict[str, dict[str, Any]] | None:
        pools = objects.custom.list_namespaced_custom_object(
            "agentfleet.dev", "v1alpha1", objects.namespace, "workerpools"
        )["items"]
        by_name = {p["metadata"]["name"]: p for p in pools}
        for name in accepted:
            pool = by_name[name]
            status = pool.get("status") or {}
            if status.get("observedGeneration") != pool["metadata"]["generation"]:
                return None
            if objects.condition(pool, "Ready") is None:
                return None
        return by_name

    pools = wait_for(settled, 60, "every accepted pool reconciled", interval=0.5)
    deployments = objects.deployments()
    ready = set()
    for name in accepted:
        condition = objects.condition(pools[name], "Ready")
        assert condition is not None
        if condition["status"] == "True":
            ready.add(name)
            deployment = deployments[name]
            owner = deployment["metadata"]["ownerReferences"][0]
            assert owner["uid"] == pools[name]["metadata"]["uid"]
            container = deployment["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["AGENTFLEET_POOL"] == name
            children = set(_children(objects, name))
            assert children >= SERVED
            if deployment["spec"]["replicas"] >= 1:
                assert "read_namespaced_service" in children
            if deployment["spec"]["replicas"] >= 2:
                assert "read_namespaced_pod_disruption_budget" in children
        else:
            assert condition["reason"] and condition["message"]
            assert name not in deployments, f"{name} is not Ready but has a Deployment"
    assert set(deployments) == ready
    # The run covers both outcomes: pools served despite odd values, and pools refused.
    assert ready
    assert len(ready) < len(accepted)
