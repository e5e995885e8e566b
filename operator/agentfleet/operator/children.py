"""Pure builders of the objects a WorkerPool owns: ServiceAccount, metrics Service (from
one worker on), PodDisruptionBudget (from two), NetworkPolicy, the queue Secret and the
Deployment.

Each returns the complete manifest the operator server-side-applies in one request, so an
object is either absent or whole; there is no half-built Deployment. The worker pods'
environment is the contract with `agentfleet worker` (see `agentfleet.core.podenv`).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from agentfleet.core.api.base import API_GROUP, API_VERSION, LABEL_POOL, LABEL_STAGE
from agentfleet.core.api.workerpool import METRICS_PORT, EgressRule, LabelSelector, WorkerPoolSpec
from agentfleet.core.podenv import (
    AGENT_ENV_VARS,
    ENV_VARS,
    PRIVATE_DIR,
    PROJECTS_DIR,
    PROJECTS_DIR_ENV,
    SANDBOX_SOCKET,
    SANDBOX_UID,
    WORKSPACE_DIR,
)

Manifest = dict[str, Any]

FIELD_MANAGER = "agentfleet-operator"
WORKER_APP = "agentfleet-worker"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
CONTAINER_NAME = "worker"
SANDBOX_CONTAINER_NAME = "sandbox"
WORKER_UID = 10001
"""The worker container's user and the Pod's group: the sandbox user is in it too."""
COMMAND_HANDLER = "command"
"""The one handler that runs no model-chosen code: its pools get no sandbox container."""
WORKER_RESOURCES_WITH_SANDBOX: dict[str, dict[str, str]] = {
    "requests": {"cpu": "50m", "memory": "256Mi"},
    "limits": {"memory": "1Gi"},
}
"""The worker container's own share when a sandbox container runs the workload (the
pool's `resources` then go to the sandbox)."""
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
    queue_egress: tuple[Manifest, ...] = ()
    """NetworkPolicy egress rules that let workers reach the work queue (derived by the
    operator from the Redis URL: the Redis Service's Pods, or its addresses)."""
    blocked_cidrs: tuple[str, ...] = ()
    """Ranges of the cluster (Pods, Services, nodes) that public HTTPS must not reach,
    beyond the private and link-local ranges always blocked."""
    dns_cidrs: tuple[str, ...] = ()
    """Addresses where cluster DNS answers besides the kube-dns Pods (port 53 only)."""


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


METRICS_SERVICE_FROM_REPLICAS = 1
"""A pool gets its metrics Service once it runs a worker: with none there is nothing to
discover, and every Service makes the endpoints controllers write an Endpoints and an
EndpointSlice object. Once made, it stays (children are applied, never pruned) until the
pool is deleted."""


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


DISRUPTION_BUDGET_FROM_REPLICAS = 2
"""A pool gets its PodDisruptionBudget once it runs this many workers. With one or none,
`maxUnavailable: 1` allows every eviction anyway (the budget changes nothing), and for a
pool at zero the disruption controller posts a `NoPods` Event for it: a fleet of pools
scaled to zero would pay an object, its status updates and Events for each, for nothing.
Once made, the budget stays (children are applied, never pruned) until the pool is
deleted."""


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
    values |= {
        ENV_VARS["pool"]: pool.name,
        ENV_VARS["stage"]: spec.stage.value,
        ENV_VARS["specialties"]: ",".join(spec.specialties),
        ENV_VARS["projects"]: "" if all_projects else ",".join(p.name for p in projects),
        PROJECTS_DIR_ENV: PROJECTS_DIR,
        ENV_VARS["handler"]: spec.handler,
        ENV_VARS["metrics_port"]: str(METRICS_PORT),
        AGENT_ENV_VARS["runtime"]: spec.agent.runtime.value,
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
    if environment.redis_url:
        # From the pool's own Secret: a Redis password is not spelled in the Deployment.
        env.append(
            {
                "name": ENV_VARS["redis_url"],
                "valueFrom": {
                    "secretKeyRef": {"name": queue_secret_name(pool.name), "key": QUEUE_URL_KEY}
                },
            }
        )
    if has_sandbox(spec):
        values[ENV_VARS["sandbox_socket"]] = SANDBOX_SOCKET
        values[ENV_VARS["private_root"]] = PRIVATE_DIR
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


def has_sandbox(spec: WorkerPoolSpec) -> bool:
    """Every pool but the built-in `command` handler's runs model-chosen code."""
    return spec.handler != COMMAND_HANDLER


QUEUE_URL_KEY = "url"


def queue_secret_name(pool: str) -> str:
    return f"{pool}-queue"


def build_queue_secret(pool: PoolIdentity, spec: WorkerPoolSpec, redis_url: str) -> Manifest:
    """The work queue's URL (with its password, if any) for the worker container. `data`,
    not `stringData`: the stored object then compares equal to the desired one."""
    encoded = base64.b64encode(redis_url.encode()).decode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(pool, spec, queue_secret_name(pool.name)),
        "type": "Opaque",
        "data": {QUEUE_URL_KEY: encoded},
    }


def queue_egress_rules(
    redis_url: str,
    service: Callable[[str, str], Manifest | None],
    resolve: Callable[[str], list[str]],
) -> tuple[Manifest, ...]:
    """NetworkPolicy egress rules that reach the work queue of `redis_url`.

    A Service name (`<svc>.<namespace>.svc[.<domain>]`, how a bundled Redis is named) is
    turned into its Pods (its selector, in its namespace) on the port the Service targets:
    policies see traffic after the Service address is translated. An address, or a name
    resolved to addresses, becomes those addresses. Empty when nothing is known."""
    split = urlsplit(redis_url)
    host, port = split.hostname or "", split.port or 6379
    if not host:
        return ()
    parts = host.split(".")
    if len(parts) >= 3 and parts[2] == "svc":
        found = service(parts[1], parts[0])
        selector = (found or {}).get("spec", {}).get("selector")
        if found is not None and selector:
            target: int | str = port
            for entry in found["spec"].get("ports", []):
                if entry.get("port") == port:
                    target = entry.get("targetPort", port)
            return (
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": parts[1]}
                            },
                            "podSelector": {"matchLabels": dict(selector)},
                        }
                    ],
                    "ports": [{"port": target, "protocol": "TCP"}],
                },
            )
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = [ipaddress.ip_address(a) for a in resolve(host)]
    if not addresses:
        return ()
    return (
        {
            "to": [
                {"ipBlock": {"cidr": f"{a}/{32 if a.version == 4 else 128}"}}
                for a in dict.fromkeys(addresses)
            ],
            "ports": [{"port": port, "protocol": "TCP"}],
        },
    )


# Never reachable with "HTTPS to public addresses": private, shared, loopback, link-local
# (cloud metadata lives at 169.254.169.254), benchmarking, multicast and reserved ranges.
BLOCKED_IPV4 = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4",
    "240.0.0.0/4",
)  # fmt: skip
# IPv4-mapped addresses (::ffff:0:0/96) are left out: the API server reads them as IPv4 and
# rejects them in an IPv6 block, and the traffic they name is IPv4, which the rules above
# already judge.
BLOCKED_IPV6 = ("::1/128", "64:ff9b::/96", "fc00::/7", "fe80::/10", "ff00::/8")
DNS_PEER: Manifest = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}


def _uncovered(extra: Sequence[str], blocked: Sequence[str], version: int) -> list[str]:
    """The networks of `extra` of this IP version that no blocked range already covers."""
    out = []
    for cidr in extra:
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version != version:
            continue
        covered = any(
            net.network_address in b and net.broadcast_address in b
            for b in map(ipaddress.ip_network, blocked)
        )
        if not covered:
            out.append(str(net))
    return out


def public_https_peers(blocked_cidrs: Sequence[str] = ()) -> list[Manifest]:
    """Every address but the blocked ranges (and the cluster's own, `blocked_cidrs`)."""
    v4 = [*BLOCKED_IPV4, *_uncovered(blocked_cidrs, BLOCKED_IPV4, 4)]
    v6 = [*BLOCKED_IPV6, *_uncovered(blocked_cidrs, BLOCKED_IPV6, 6)]
    return [
        {"ipBlock": {"cidr": "0.0.0.0/0", "except": v4}},
        {"ipBlock": {"cidr": "::/0", "except": v6}},
    ]


def _selector(selector: LabelSelector) -> Manifest:
    return selector.model_dump(by_alias=True, exclude_defaults=True)


def _extra_egress(rule: EgressRule) -> Manifest:
    peer: Manifest
    if rule.cidr is not None:
        peer = {"ipBlock": {"cidr": rule.cidr}}
    else:
        peer = {}
        if rule.namespace_selector is not None:
            peer["namespaceSelector"] = _selector(rule.namespace_selector)
        if rule.pod_selector is not None:
            peer["podSelector"] = _selector(rule.pod_selector)
    return {
        "to": [peer],
        "ports": [{"port": port, "protocol": rule.protocol} for port in rule.ports],
    }


def build_network_policy(
    pool: PoolIdentity, spec: WorkerPoolSpec, environment: WorkerEnvironment
) -> Manifest:
    """Deny by default. Egress: cluster DNS, the work queue, HTTPS (443) to public
    addresses, and the pool's own `egress` destinations. Ingress: the metrics port (for
    Prometheus). What the sandbox runs shares the Pod's network, so this is its boundary
    too: no Kubernetes API, no other Pods, no private or metadata address."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(pool, spec, pool.name),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(pool.name)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"ports": [{"port": METRICS_PORT, "protocol": "TCP"}]}],
            "egress": [
                {
                    "to": [
                        DNS_PEER,
                        *({"ipBlock": {"cidr": cidr}} for cidr in environment.dns_cidrs),
                    ],
                    "ports": [
                        {"port": 53, "protocol": "UDP"},
                        {"port": 53, "protocol": "TCP"},
                    ],
                },
                *environment.queue_egress,
                {
                    "to": public_https_peers(environment.blocked_cidrs),
                    "ports": [{"port": 443, "protocol": "TCP"}],
                },
                *(_extra_egress(rule) for rule in spec.egress),
            ],
        },
    }


def _restricted(user: int, read_only: bool = True) -> Manifest:
    """A container security context that passes Pod Security `restricted`."""
    return {
        "runAsNonRoot": True,
        "runAsUser": user,
        "runAsGroup": WORKER_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources(requirements: Mapping[str, Mapping[str, object]]) -> Manifest:
    return {kind: dict(values) for kind, values in requirements.items()}


def build_deployment(
    pool: PoolIdentity,
    spec: WorkerPoolSpec,
    projects: Sequence[ServedProject],
    replicas: int,
    environment: WorkerEnvironment,
    all_projects: bool = False,
) -> Manifest:
    """Worker Pods: the worker container (queue, model, GitHub, git push; the
    credentials) and, unless the pool runs the `command` handler, the sandbox container
    that runs what the model chooses and the repository's tests, with no credential, no
    ServiceAccount token and a user of its own. They share the checkout volume and the
    sandbox's socket; the worker's git directories and the credentials are the worker's
    alone."""
    sandboxed = has_sandbox(spec)
    pool_resources = {
        "requests": dict(spec.resources.requests),
        "limits": dict(spec.resources.limits),
    }
    credential_volumes, credential_mounts = _credential_volumes(projects)
    socket_dir = str(PurePosixPath(SANDBOX_SOCKET).parent)
    worker: Manifest = {
        "name": CONTAINER_NAME,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "env": worker_env(pool, spec, projects, environment, all_projects),
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "resources": _resources(WORKER_RESOURCES_WITH_SANDBOX if sandboxed else pool_resources),
        "readinessProbe": {
            "httpGet": {"path": "/metrics", "port": "metrics"},
            "periodSeconds": 10,
        },
        "securityContext": _restricted(WORKER_UID),
        "volumeMounts": [
            {"name": "workspace", "mountPath": WORKSPACE_DIR},
            {"name": "worker-tmp", "mountPath": "/tmp"},
            *credential_mounts,
        ],
    }
    if spec.env_from_secrets:
        worker["envFrom"] = [{"secretRef": {"name": name}} for name in spec.env_from_secrets]
    containers = [worker]
    volumes: list[Manifest] = [
        {"name": "workspace", "emptyDir": {}},
        {"name": "worker-tmp", "emptyDir": {}},
        *credential_volumes,
    ]
    if sandboxed:
        worker["volumeMounts"] += [
            {"name": "private", "mountPath": PRIVATE_DIR},
            {"name": "sandbox-socket", "mountPath": socket_dir},
        ]
        containers.append(
            {
                "name": SANDBOX_CONTAINER_NAME,
                "image": spec.image,
                "imagePullPolicy": spec.image_pull_policy,
                "command": ["tini", "--", "agentfleet", "sandbox"],
                "args": [
                    f"--socket={SANDBOX_SOCKET}",
                    f"--root={WORKSPACE_DIR}",
                    "--home=/tmp",
                ],
                "resources": _resources(pool_resources),
                "securityContext": _restricted(SANDBOX_UID),
                "volumeMounts": [
                    {"name": "workspace", "mountPath": WORKSPACE_DIR},
                    {"name": "sandbox-tmp", "mountPath": "/tmp"},
                    {"name": "sandbox-socket", "mountPath": socket_dir},
                ],
            }
        )
        volumes += [
            {"name": "private", "emptyDir": {}},
            {"name": "sandbox-tmp", "emptyDir": {}},
            {"name": "sandbox-socket", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
        ]
    pod_spec: Manifest = {
        "serviceAccountName": pool.name,
        # Workers never call the Kubernetes API: no token in the Pod at all.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": spec.termination_grace_period_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": WORKER_UID,
            "runAsGroup": WORKER_UID,
            # The shared volumes belong to the Pod's group, so both containers' users can
            # write the checkout.
            "fsGroup": WORKER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": containers,
        "volumes": volumes,
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
    """Everything the pool owns at `replicas` workers, in apply order: the Deployment
    last, so its pods find their ServiceAccount. The metrics Service only from
    `METRICS_SERVICE_FROM_REPLICAS` workers on, the PodDisruptionBudget from
    `DISRUPTION_BUDGET_FROM_REPLICAS`: a fleet of pools at zero pays for neither."""
    queue = [build_queue_secret(pool, spec, environment.redis_url)] if environment.redis_url else []
    service = (
        [build_metrics_service(pool, spec)] if replicas >= METRICS_SERVICE_FROM_REPLICAS else []
    )
    budget = (
        [build_pod_disruption_budget(pool, spec)]
        if replicas >= DISRUPTION_BUDGET_FROM_REPLICAS
        else []
    )
    return [
        build_service_account(pool, spec),
        *service,
        *budget,
        build_network_policy(pool, spec, environment),
        *queue,
        build_deployment(pool, spec, projects, replicas, environment, all_projects),
    ]
