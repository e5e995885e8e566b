"""Pure builders of the objects a WorkerPool owns: ServiceAccount, metrics Service,
PodDisruptionBudget and Deployment.

Each returns the complete manifest the operator server-side-applies in one request, so an
object is either absent or whole; there is no half-built Deployment. The worker pods'
environment is the contract with `agentfleet worker` (see `agentfleet.worker.config`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agentfleet.api.base import API_GROUP, API_VERSION
from agentfleet.api.workerpool import METRICS_PORT, WorkerPoolSpec
from agentfleet.worker.config import AGENT_ENV_VARS, ENV_VARS, PROJECTS_DIR, PROJECTS_DIR_ENV

Manifest = dict[str, Any]

FIELD_MANAGER = "agentfleet-operator"
WORKER_APP = "agentfleet-worker"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_POOL = f"{API_GROUP}/pool"
LABEL_STAGE = f"{API_GROUP}/stage"
CONTAINER_NAME = "worker"
WORKSPACE_DIR = "/workspace"
# Time the worker keeps for itself after draining, before the kubelet's SIGKILL.
DRAIN_MARGIN_SECONDS = 5


@dataclass(frozen=True)
class PoolIdentity:
    """What the children need to know about their WorkerPool."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class ServedProject:
    """A Project a pool serves, as far as its pods are concerned."""

    name: str
    credentials_secret: str


@dataclass(frozen=True)
class WorkerEnvironment:
    """Operator-wide settings handed to every worker pod."""

    redis_url: str | None = None


def selector_labels(pool: str) -> dict[str, str]:
    """The Deployment's selector: never changes for the life of the pool."""
    return {LABEL_NAME: WORKER_APP, LABEL_POOL: pool}


def selector_string(pool: str) -> str:
    """The selector in `kubectl get -l` form, published as status.selector for the scale
    subresource."""
    return ",".join(f"{k}={v}" for k, v in sorted(selector_labels(pool).items()))


def pod_labels(pool: str, spec: WorkerPoolSpec) -> dict[str, str]:
    return {
        **selector_labels(pool),
        LABEL_INSTANCE: pool,
        LABEL_STAGE: spec.stage.value,
    }


def object_labels(pool: str, spec: WorkerPoolSpec) -> dict[str, str]:
    return {
        **pod_labels(pool, spec),
        LABEL_COMPONENT: "worker",
        LABEL_PART_OF: "agentfleet",
        LABEL_MANAGED_BY: FIELD_MANAGER,
    }


def owner_reference(pool: PoolIdentity) -> Manifest:
    """The WorkerPool as controlling owner: garbage collection deletes the child with it."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": "WorkerPool",
        "name": pool.name,
        "uid": pool.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(pool: PoolIdentity, spec: WorkerPoolSpec, name: str) -> Manifest:
    return {
        "name": name,
        "namespace": pool.namespace,
        "labels": object_labels(pool.name, spec),
        "ownerReferences": [owner_reference(pool)],
    }


def metrics_service_name(pool: str) -> str:
    return f"{pool}-metrics"


def build_service_account(pool: PoolIdentity, spec: WorkerPoolSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(pool, spec, pool.name),
    }


def build_metrics_service(pool: PoolIdentity, spec: WorkerPoolSpec) -> Manifest:
    """Headless, so Prometheus service discovery sees every worker pod, not one address."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(pool, spec, metrics_service_name(pool.name)),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(pool.name),
            "ports": [
                {
                    "name": "metrics",
                    "port": METRICS_PORT,
                    "targetPort": "metrics",
                    "protocol": "TCP",
                }
            ],
        },
    }


def build_pod_disruption_budget(pool: PoolIdentity, spec: WorkerPoolSpec) -> Manifest:
    """Node drains evict one worker at a time, each with its drain grace period."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(pool, spec, pool.name),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(pool.name)},
        },
    }


def _field_env(name: str, path: str) -> Manifest:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def worker_env(
    pool: PoolIdentity,
    spec: WorkerPoolSpec,
    projects: Sequence[ServedProject],
    environment: WorkerEnvironment,
    all_projects: bool,
) -> list[Manifest]:
    """The env contract of worker pods; the pool's own `env` entries override it by name
    (one entry per name: server-side apply refuses duplicates)."""
    values: dict[str, str] = {}
    if environment.redis_url:
        values[ENV_VARS["redis_url"]] = environment.redis_url
    values |= {
        ENV_VARS["pool"]: pool.name,
        ENV_VARS["stage"]: spec.stage.value,
        ENV_VARS["specialties"]: ",".join(spec.specialties),
        ENV_VARS["projects"]: "" if all_projects else ",".join(p.name for p in projects),
        PROJECTS_DIR_ENV: PROJECTS_DIR,
        ENV_VARS["handler"]: spec.handler,
        ENV_VARS["metrics_port"]: str(METRICS_PORT),
        AGENT_ENV_VARS["model"]: spec.agent.model,
        AGENT_ENV_VARS["max_turns"]: str(spec.agent.max_turns),
        AGENT_ENV_VARS["token_budget"]: str(spec.agent.token_budget),
        ENV_VARS["drain_grace_seconds"]: str(
            max(0, spec.termination_grace_period_seconds - DRAIN_MARGIN_SECONDS)
        ),
        ENV_VARS["workspace_root"]: WORKSPACE_DIR,
    }
    overridden = {var.name for var in spec.env}
    env: list[Manifest] = [
        _field_env(ENV_VARS["namespace"], "metadata.namespace"),
        _field_env(ENV_VARS["pod_name"], "metadata.name"),
    ]
    env += [_literal_env(k, v) for k, v in values.items()]
    env = [e for e in env if e["name"] not in overridden]
    for var in spec.env:
        if var.secret_key_ref is not None:
            ref = var.secret_key_ref
            env.append(
                {
                    "name": var.name,
                    "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}},
                }
            )
        else:
            env.append(_literal_env(var.name, var.value or ""))
    return env


def _literal_env(name: str, value: str) -> Manifest:
    # The API server stores an empty value as no value at all; writing it the same way
    # keeps the stored Deployment equal to the desired one.
    return {"name": name, "value": value} if value else {"name": name}


def _credential_volumes(projects: Sequence[ServedProject]) -> tuple[list[Manifest], list[Manifest]]:
    """Each served project's GitHub credentials Secret, read-only at
    PROJECTS_DIR/<project>/. `optional` keeps one project's missing Secret from stopping
    the pods of a pool that serves others (the Project reports it as not Ready)."""
    volumes: list[Manifest] = []
    mounts: list[Manifest] = []
    for index, project in enumerate(sorted(projects, key=lambda p: p.name)):
        volume = f"project-{index}"
        volumes.append(
            {
                "name": volume,
                "secret": {"secretName": project.credentials_secret, "optional": True},
            }
        )
        mounts.append(
            {"name": volume, "mountPath": f"{PROJECTS_DIR}/{project.name}", "readOnly": True}
        )
    return volumes, mounts


def build_deployment(
    pool: PoolIdentity,
    spec: WorkerPoolSpec,
    projects: Sequence[ServedProject],
    replicas: int,
    environment: WorkerEnvironment,
    all_projects: bool = False,
) -> Manifest:
    credential_volumes, credential_mounts = _credential_volumes(projects)
    container: Manifest = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "env": worker_env(pool, spec, projects, environment, all_projects),
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "resources": {
            "requests": dict(spec.resources.requests),
            "limits": dict(spec.resources.limits),
        },
        "readinessProbe": {
            "httpGet": {"path": "/metrics", "port": "metrics"},
            "periodSeconds": 10,
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "workspace", "mountPath": WORKSPACE_DIR},
            *credential_mounts,
        ],
    }
    if spec.env_from_secrets:
        container["envFrom"] = [{"secretRef": {"name": name}} for name in spec.env_from_secrets]
    pod_spec: Manifest = {
        "serviceAccountName": pool.name,
        "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "workspace", "emptyDir": {}}, *credential_volumes],
    }
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(pool, spec, pool.name),
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector_labels(pool.name)},
            # Workers drain on SIGTERM, so a rollout may stop old pods freely; new ones come
            # up first so the pool never drops below its size.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {
                    "labels": pod_labels(pool.name, spec),
                    "annotations": {
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(METRICS_PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def build_children(
    pool: PoolIdentity,
    spec: WorkerPoolSpec,
    projects: Sequence[ServedProject],
    replicas: int,
    environment: WorkerEnvironment,
    all_projects: bool = False,
) -> list[Manifest]:
    """Everything the pool owns, in apply order: the Deployment last, so its pods find
    their ServiceAccount."""
    return [
        build_service_account(pool, spec),
        build_metrics_service(pool, spec),
        build_pod_disruption_budget(pool, spec),
        build_deployment(pool, spec, projects, replicas, environment, all_projects),
    ]
