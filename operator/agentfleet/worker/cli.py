"""`agentfleet worker`: the process every agent pod runs."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer
from pydantic import ValidationError
from redis.exceptions import RedisError

from agentfleet.core.podenv import ENV_VARS, current_settings
from agentfleet.core.redaction import display_url
from agentfleet.worker.handlers import UnknownHandlerError, build_handler
from agentfleet.worker.runtime import serve


def _env(setting: str, text: str) -> str:
    return f"{text} [env: {ENV_VARS[setting]}]"


def worker(
    pool: str | None = typer.Option(None, help=_env("pool", "WorkerPool name.")),
    namespace: str | None = typer.Option(None, help=_env("namespace", "Kubernetes namespace.")),
    stage: str | None = typer.Option(None, help=_env("stage", "Pipeline stage served.")),
    specialties: str | None = typer.Option(
        None, help=_env("specialties", "Comma-separated specialties, read before general.")
    ),
    projects: str | None = typer.Option(
        None, help=_env("projects", "Comma-separated projects (default: all).")
    ),
    redis_url: str | None = typer.Option(None, help=_env("redis_url", "Redis URL.")),
    handler: str | None = typer.Option(
        None, help=_env("handler", "Handler name or module:factory (default: command).")
    ),
    command: str | None = typer.Option(
        None, help=_env("command", "Shell command per item (command handler).")
    ),
    metrics_port: int | None = typer.Option(
        None, help=_env("metrics_port", "Prometheus port; 0 disables (default 9090).")
    ),
    pod_name: str | None = typer.Option(
        None, help=_env("pod_name", "Worker id (default: hostname).")
    ),
    heartbeat_interval: float | None = typer.Option(
        None, help=_env("heartbeat_interval", "Seconds between heartbeats (default 30).")
    ),
    heartbeat_timeout: float | None = typer.Option(
        None, help=_env("heartbeat_timeout", "Seconds before silent work is reclaimed (300).")
    ),
    drain_grace_seconds: float | None = typer.Option(
        None, help=_env("drain_grace_seconds", "On SIGTERM, time to finish the item (25).")
    ),
    max_attempts: int | None = typer.Option(
        None, help=_env("max_attempts", "Attempts before dead-letter to review (3).")
    ),
    retry_base_delay: float | None = typer.Option(
        None, help=_env("retry_base_delay", "First retry backoff in seconds (5).")
    ),
    workspace_root: Path | None = typer.Option(
        None, help=_env("workspace_root", "Where item workspaces go (default: temp dir).")
    ),
    log_level: str = typer.Option("INFO", help="Python log level."),
) -> None:
    """Pull the pool's lanes and run the handler on each item; drain on SIGTERM."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides = {
        name: value for name, value in locals().items() if name in ENV_VARS and value is not None
    }
    try:
        settings = current_settings(overrides)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc
    try:
        handler_object = build_handler(settings.handler, settings)
    except (UnknownHandlerError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        asyncio.run(serve(settings, handler_object))
    except RedisError as exc:
        # Unreachable, refusing or misconfigured queue: one line, and a non-zero exit so
        # the kubelet restarts the worker with back-off.
        where = display_url(settings.redis_url)
        typer.echo(f"error: the work queue at {where} failed: {exc}", err=True)
        raise typer.Exit(1) from None
