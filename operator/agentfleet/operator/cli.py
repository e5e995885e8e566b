"""`agentfleet operator`: run the kopf operator that reconciles Projects and WorkerPools."""

from __future__ import annotations

from typing import Literal

import typer
from pydantic import ValidationError

from agentfleet.operator.config import DEFAULT_PEERING, OperatorConfig


def operator(
    namespace: list[str] = typer.Option(
        [],
        "--namespace",
        "-n",
        help="Namespace to serve (repeatable; globs like 'team-*' allowed with --standalone).",
    ),
    all_namespaces: bool = typer.Option(
        False, "--all-namespaces", "-A", help="Serve every namespace."
    ),
    redis_url: str | None = typer.Option(
        None, envvar="AGENTFLEET_REDIS_URL", help="Work queue URL, also handed to workers."
    ),
    prometheus_url: str | None = typer.Option(
        None, envvar="AGENTFLEET_PROMETHEUS_URL", help="Prometheus HTTP API (autoscaler)."
    ),
    kubeconfig: str | None = typer.Option(
        None, envvar="KUBECONFIG", help="Kubeconfig file; in-cluster credentials when unset."
    ),
    health_port: int = typer.Option(
        8080, envvar="AGENTFLEET_HEALTH_PORT", help="Port of /healthz (0: off)."
    ),
    metrics_port: int = typer.Option(
        8081, envvar="AGENTFLEET_OPERATOR_METRICS_PORT", help="Port of /metrics (0: off)."
    ),
    api_port: int = typer.Option(
        0,
        envvar="AGENTFLEET_API_PORT",
        help="Port of the read API the fleet CLI reaches through the API server's service "
        "proxy, /v1/... (0: off).",
    ),
    webhook_port: int = typer.Option(
        0,
        envvar="AGENTFLEET_WEBHOOK_PORT",
        help="Port of the GitHub webhook receiver, /webhooks/github/<ns>/<project> (0: off).",
    ),
    peering: str = typer.Option(
        DEFAULT_PEERING, help="Peering object replicas coordinate through (one is active)."
    ),
    standalone: bool = typer.Option(
        False, "--standalone", help="No peering: for a single replica or a developer run."
    ),
    priority: int | None = typer.Option(
        None, help="Peering priority (the highest live replica is active); random if unset."
    ),
    resync_seconds: float = typer.Option(
        300.0, envvar="AGENTFLEET_RESYNC_SECONDS", help="Re-apply every pool's children this often."
    ),
    project_status_seconds: float = typer.Option(
        15.0, envvar="AGENTFLEET_PROJECT_STATUS_SECONDS", help="Refresh Project status this often."
    ),
    blocked_cidr: list[str] = typer.Option(
        [],
        "--blocked-cidr",
        envvar="AGENTFLEET_BLOCKED_CIDRS",
        help="A range of the cluster outside the private ones, never reachable by workers "
        "(repeatable; private and link-local ranges are always blocked).",
    ),
    dns_cidr: list[str] = typer.Option(
        [],
        "--dns-cidr",
        envvar="AGENTFLEET_DNS_CIDRS",
        help="Where cluster DNS answers besides kube-dns Pods (e.g. NodeLocal DNSCache's "
        "169.254.20.10/32); workers may send port 53 there (repeatable).",
    ),
    log_format: str = typer.Option("json", help="json, plain or full."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
) -> None:
    """Run the operator: WorkerPools become Deployments of agent workers, Projects are
    validated and paused/resumed, status and Events explain what happened."""
    from agentfleet.operator.handlers import run
    from agentfleet.operator.readapi import install_read_api

    try:
        config = OperatorConfig(
            namespaces=tuple(namespace),
            all_namespaces=all_namespaces,
            redis_url=redis_url or None,
            prometheus_url=prometheus_url or None,
            kubeconfig=kubeconfig or None,
            health_port=health_port,
            metrics_port=metrics_port,
            api_port=api_port,
            webhook_port=webhook_port,
            peering=None if standalone else peering,
            priority=priority,
            resync_seconds=resync_seconds,
            project_status_seconds=project_status_seconds,
            blocked_cidrs=tuple(blocked_cidr),
            dns_cidrs=tuple(dns_cidr),
            log_format=_log_format(log_format),
            verbose=verbose,
        )
    except ValidationError as error:
        raise typer.BadParameter(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in error.errors())
        ) from error
    if config.has_glob_namespaces and config.peering is not None:
        raise typer.BadParameter(
            "namespace patterns need --standalone: peering objects cannot be created in "
            "namespaces that do not exist yet"
        )
    # The read API is an operator extension: it serves from startup to cleanup.
    run(config, extensions=[install_read_api] if config.api_port else [])


def _log_format(value: str) -> Literal["json", "plain", "full"]:
    if value == "json":
        return "json"
    if value == "plain":
        return "plain"
    if value == "full":
        return "full"
    raise typer.BadParameter(f"--log-format must be json, plain or full, not {value!r}")
