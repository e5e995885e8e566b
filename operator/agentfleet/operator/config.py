"""Operator settings; each comes from a flag of `agentfleet operator` or the environment."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

DEFAULT_PEERING = "agentfleet"


class OperatorConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    redis_url: str | None = None
    """The work queue (AGENTFLEET_REDIS_URL). Worker pods get the same URL. Without it,
    pausing a Project still scales its pools to zero but holds no queued work."""

    prometheus_url: str | None = None
    """Prometheus HTTP API (AGENTFLEET_PROMETHEUS_URL), read by the autoscaler."""

    namespaces: tuple[str, ...] = ()
    """Namespaces to serve; glob patterns such as `team-*` allowed."""

    all_namespaces: bool = False

    kubeconfig: str | None = None
    """None: in-cluster credentials, else $KUBECONFIG or ~/.kube/config."""

    health_port: int = Field(default=8080, ge=0, le=65535)
    """Liveness/readiness endpoint (/healthz); 0 turns it off."""

    metrics_port: int = Field(default=8081, ge=0, le=65535)
    """Prometheus metrics of the operator (/metrics); 0 turns it off."""

    api_port: int = Field(default=0, ge=0, le=65535)
    """The read API (queue lanes, workers' items, throughput, dead letters, alerts, and
    `retry`) that the fleet CLI reaches through the API server's service proxy; 0 turns
    it off (`agentfleet.operator.readapi`)."""

    webhook_port: int = Field(default=0, ge=0, le=65535)
    """GitHub webhook receiver (POST /webhooks/github/<namespace>/<project>); 0 turns it
    off. Needs the work queue."""

    peering: str | None = DEFAULT_PEERING
    """Name of the kopf peering object replicas coordinate through; None: standalone."""

    priority: int | None = None
    """Peering priority: the live replica with the highest one is active."""

    resync_seconds: float = Field(default=300.0, gt=0)
    """Every pool's children are re-applied this often (undoes drift on any kind)."""

    project_status_seconds: float = Field(default=15.0, gt=0)
    """How often Project status (queue counts) is refreshed."""

    blocked_cidrs: tuple[str, ...] = ()
    """The cluster's own ranges (Pods, Services, nodes) outside the private ones: worker
    Pods' public HTTPS may not reach them (the private and link-local ranges are always
    blocked)."""

    dns_cidrs: tuple[str, ...] = ()
    """Where the cluster's DNS answers when it is not a `k8s-app=kube-dns` Pod in
    kube-system (NodeLocal DNSCache at 169.254.20.10, a DNS server on the nodes): worker
    Pods may send DNS (port 53) there too."""

    log_format: Literal["json", "plain", "full"] = "json"
    verbose: bool = False

    @field_validator("blocked_cidrs", "dns_cidrs")
    @classmethod
    def _networks(cls, value: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        flag = "--blocked-cidr" if info.field_name == "blocked_cidrs" else "--dns-cidr"
        for cidr in value:
            try:
                ipaddress.ip_network(cidr)
            except ValueError as exc:
                raise ValueError(f"{flag} {cidr!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_scope(self) -> OperatorConfig:
        if self.all_namespaces == bool(self.namespaces):
            raise ValueError("give either --namespace (one or more) or --all-namespaces")
        return self

    @property
    def has_glob_namespaces(self) -> bool:
        return any(ch in ns for ns in self.namespaces for ch in "*?[")
