"""The Helm chart's values as pydantic models: the one source of
`charts/agentfleet/values.schema.json` (`make chart-schema`), as the CRD models are of
`crds/`.

Every model forbids unknown keys, so `helm install --set redis.deplyo=true` fails with
"additional properties 'deplyo' not allowed" instead of installing without Redis, and a
wrong type (`--set replicaCount=two`) fails before anything is rendered. The defaults here
are the chart's `values.yaml` (`tests/unit/test_chart_values.py` keeps the two equal and
the committed schema current); the comments a user reads stay in `values.yaml`.

Kubernetes objects passed through verbatim (resources, securityContext, affinity, ...) are
plain objects here: the API server validates them.

`python -m agentfleet.dev.chartvalues [--check]` writes (or checks) the schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_PATH = Path("charts/agentfleet/values.schema.json")

KubeObject = dict[str, Any]
"""A Kubernetes structure the chart copies as it is (validated by the API server)."""


class Values(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def _resources(requests: dict[str, str], limits: dict[str, str]) -> Any:
    return Field(default_factory=lambda: {"requests": dict(requests), "limits": dict(limits)})


def _restricted_container() -> KubeObject:
    """A container securityContext that passes Pod Security `restricted`."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


class Image(Values):
    repository: str = "ghcr.io/agentfleet/agentfleet-operator"
    """The operator image (the queue exporter runs from it too)."""
    tag: str = ""
    """Defaults to the chart's appVersion."""
    pullPolicy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class RedisPersistence(Values):
    enabled: bool = True
    """false: an emptyDir, so the queue is lost with the Pod (for a first try only)."""
    storageClass: str = ""
    size: str = Field(default="1Gi", pattern=r"^[0-9]+(\.[0-9]+)?([EPTGMK]i?|[mk])?$")


class Redis(Values):
    url: str = Field(default="", pattern=r"^(rediss?://.*)?$")
    """Your Redis (7+, AOF recommended, with a password): redis:// or rediss://."""
    existingSecret: str = ""
    """A Secret in the release namespace whose key existingSecretKey holds the queue's URL."""
    existingSecretKey: str = "url"
    deploy: bool = False
    """A bundled single-node Redis StatefulSet with AOF and a generated password."""
    image: str = "redis:7.2"
    podSecurityContext: KubeObject = Field(
        default_factory=lambda: {
            "runAsNonRoot": True,
            "runAsUser": 10003,
            "runAsGroup": 10003,
            "fsGroup": 10003,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    )
    securityContext: KubeObject = Field(default_factory=_restricted_container)
    resources: KubeObject = _resources(
        {"cpu": "50m", "memory": "64Mi", "ephemeral-storage": "16Mi"},
        {"memory": "512Mi", "ephemeral-storage": "64Mi"},
    )
    persistence: RedisPersistence = Field(default_factory=RedisPersistence)


class QueueExporter(Values):
    port: int = Field(default=9100, ge=1, le=65535)
    heartbeatTimeoutSeconds: int = Field(default=300, ge=1)
    """Must match the workers': an item whose worker is silent this long counts as waiting."""
    resources: KubeObject = _resources(
        {"cpu": "20m", "memory": "64Mi", "ephemeral-storage": "16Mi"},
        {"memory": "192Mi", "ephemeral-storage": "64Mi"},
    )


class Prometheus(Values):
    url: str = "http://prometheus-operated.monitoring:9090"
    """The Prometheus HTTP API the autoscaler queries (empty disables autoscaling)."""


class PodDisruptionBudget(Values):
    enabled: bool = True
    """A PodDisruptionBudget for the operator (rendered only with replicaCount > 1)."""
    maxUnavailable: int = Field(default=1, ge=1)


class Operator(Values):
    logFormat: Literal["json", "plain"] = "json"
    healthPort: int = Field(default=8080, ge=1, le=65535)
    metricsPort: int = Field(default=8081, ge=1, le=65535)
    apiPort: int = Field(default=8083, ge=0, le=65535)
    """The read API's port (the fleet CLI, through the Service <fullname>-api); 0: off."""
    webhookPort: int = Field(default=8082, ge=0, le=65535)
    """The GitHub webhook receiver's port; 0 turns it off."""
    resources: KubeObject = _resources(
        {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "16Mi"},
        {"memory": "384Mi", "ephemeral-storage": "64Mi"},
    )
    podDisruptionBudget: PodDisruptionBudget = Field(default_factory=PodDisruptionBudget)


class OperatorPolicy(Values):
    apiFrom: list[KubeObject] = Field(default_factory=list)
    """NetworkPolicyPeer objects that may reach the read API (the API servers); empty: any."""
    extraIngress: list[KubeObject] = Field(default_factory=list)
    """NetworkPolicyIngressRule objects added to the operator's policy."""
    extraEgress: list[KubeObject] = Field(default_factory=list)
    """NetworkPolicyEgressRule objects added to the operator's policy."""


class RedisPolicy(Values):
    extraIngress: list[KubeObject] = Field(default_factory=list)
    """NetworkPolicyIngressRule objects: who else may reach the bundled Redis."""


class NetworkPolicy(Values):
    enabled: bool = True
    """NetworkPolicies for the operator, the queue exporter and the bundled Redis."""
    kubeApiPorts: list[int] = Field(default_factory=lambda: [443, 6443])
    """The API servers' own ports (after the `kubernetes` Service's translation)."""
    operator: OperatorPolicy = Field(default_factory=OperatorPolicy)
    redis: RedisPolicy = Field(default_factory=RedisPolicy)


class WorkerNetworkPolicy(Values):
    blockedCidrs: list[str] = Field(default_factory=list)
    """The cluster's own ranges outside the private ones: never reachable by workers' HTTPS."""
    dnsCidrs: list[str] = Field(default_factory=list)
    """Where cluster DNS answers besides kube-dns Pods in kube-system."""


class WebhookService(Values):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: int = Field(default=80, ge=1, le=65535)


class Monitor(Values):
    enabled: bool = False
    interval: str = Field(default="15s", pattern=r"^([0-9]+(ms|s|m|h))+$")


class PrometheusRule(Values):
    enabled: bool = False
    labels: dict[str, str] = Field(default_factory=dict)


class GrafanaDashboard(Values):
    enabled: bool = False
    labels: dict[str, str] = Field(default_factory=lambda: {"grafana_dashboard": "1"})


class Crds(Values):
    enabled: bool = True
    """Render the CRDs (templates, so they upgrade with the chart)."""
    keep: bool = True
    """helm.sh/resource-policy: keep, so uninstalling leaves the CRDs and their objects."""


class ChartValues(Values):
    """Values of the agentfleet chart (docs/install.md)."""

    crds: Crds = Field(default_factory=Crds)
    image: Image = Field(default_factory=Image)
    replicaCount: int = Field(default=2, ge=0)
    """Operator replicas; one is active (kopf peering), the others take over (0: stopped)."""
    watchNamespaces: list[str] = Field(default_factory=list)
    """Namespaces the operator serves; empty = every namespace."""
    redis: Redis = Field(default_factory=Redis)
    clusterDomain: str = "cluster.local"
    queueExporter: QueueExporter = Field(default_factory=QueueExporter)
    prometheus: Prometheus = Field(default_factory=Prometheus)
    operator: Operator = Field(default_factory=Operator)
    workerNetworkPolicy: WorkerNetworkPolicy = Field(default_factory=WorkerNetworkPolicy)
    webhookService: WebhookService = Field(default_factory=WebhookService)
    serviceMonitor: Monitor = Field(default_factory=Monitor)
    podMonitor: Monitor = Field(default_factory=Monitor)
    """Scrapes the worker Pods."""
    prometheusRule: PrometheusRule = Field(default_factory=PrometheusRule)
    grafanaDashboard: GrafanaDashboard = Field(default_factory=GrafanaDashboard)
    networkPolicy: NetworkPolicy = Field(default_factory=NetworkPolicy)
    podSecurityContext: KubeObject = Field(
        default_factory=lambda: {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    )
    securityContext: KubeObject = Field(default_factory=_restricted_container)
    nodeSelector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[KubeObject] = Field(default_factory=list)
    affinity: KubeObject = Field(default_factory=dict)


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """Replace every $ref by its definition: one self-contained tree reads like values.yaml."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
        rest = {k: _inline(v, defs) for k, v in node.items() if k != "$ref"}
        return {**target, **rest}
    return {k: _inline(v, defs) for k, v in node.items() if k not in ("title", "default")}


def values_schema() -> dict[str, Any]:
    """The JSON schema Helm checks the merged values against (draft 2020-12)."""
    schema = ChartValues.model_json_schema()
    defs = schema.pop("$defs", {})
    inlined: dict[str, Any] = _inline(schema, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **inlined}


def schema_text() -> str:
    return json.dumps(values_schema(), indent=2, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--root", type=Path, default=REPO_ROOT, help="repository root")
    parser.add_argument("--check", action="store_true", help="exit 1 if the schema is stale")
    args = parser.parse_args(argv)
    path = args.root / SCHEMA_PATH
    text = schema_text()
    if path.exists() and path.read_text() == text:
        return 0
    if args.check:
        print(f"stale {SCHEMA_PATH}: run `make chart-schema`")
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
