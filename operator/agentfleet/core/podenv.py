"""Worker settings: every one can come from a flag or from the environment.

The operator's Deployment sets the environment variables; people running a worker by
hand use the flags. `ENV_VARS` is the single table of names both paths use, and this
module is the one home of the pod's environment contract: the operator's Deployment
builder (`agentfleet.operator.children`) and the code running in the pod (worker,
agent settings, stage handlers) import the names from here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentfleet.core.api import Stage
from agentfleet.core.queue.models import Name

ENV_VARS: dict[str, str] = {
    "redis_url": "AGENTFLEET_REDIS_URL",
    "namespace": "AGENTFLEET_NAMESPACE",
    "pool": "AGENTFLEET_POOL",
    "stage": "AGENTFLEET_STAGE",
    "specialties": "AGENTFLEET_SPECIALTIES",
    "projects": "AGENTFLEET_PROJECTS",
    "handler": "AGENTFLEET_HANDLER",
    "command": "AGENTFLEET_COMMAND",
    "metrics_port": "AGENTFLEET_METRICS_PORT",
    "pod_name": "POD_NAME",
    "heartbeat_interval": "AGENTFLEET_HEARTBEAT_INTERVAL",
    "heartbeat_timeout": "AGENTFLEET_HEARTBEAT_TIMEOUT",
    "drain_grace_seconds": "AGENTFLEET_DRAIN_GRACE_SECONDS",
    "max_attempts": "AGENTFLEET_MAX_ATTEMPTS",
    "retry_base_delay": "AGENTFLEET_RETRY_BASE_DELAY",
    "workspace_root": "AGENTFLEET_WORKSPACE_ROOT",
    "private_root": "AGENTFLEET_PRIVATE_ROOT",
    "sandbox_socket": "AGENTFLEET_SANDBOX_SOCKET",
}
"""Setting name -> environment variable."""

AGENT_ENV_VARS: dict[str, str] = {
    "model": "AGENTFLEET_MODEL",
    "max_turns": "AGENTFLEET_MAX_TURNS",
    "token_budget": "AGENTFLEET_TOKEN_BUDGET",
}
"""WorkerPool `spec.agent` field -> the variable the operator puts it in; the agent
runtime (`agentfleet.worker.agents.AgentSettings`) reads the same names."""

PROJECTS_DIR = "/var/run/agentfleet/projects"
"""Where a worker pod finds each served Project's credentials Secret, mounted read-only
at `<PROJECTS_DIR>/<project>/` (one file per key: `token`, or `app-id` and
`private-key`)."""

WORKSPACE_DIR = "/workspace"
"""The volume both containers of a worker Pod mount: each item's checkout lives here."""

PRIVATE_DIR = "/var/lib/agentfleet/private"
"""A volume only the worker container mounts: each item's git directory (its config and
hooks decide what git runs with the worker's credentials, so the sandbox must not write
them)."""

SANDBOX_SOCKET = "/run/agentfleet/sandbox/sandbox.sock"
"""The sandbox container's Unix socket, on a volume both containers mount."""

SANDBOX_UID = 10002
"""The sandbox container's user; it shares the worker's group (10001) for the checkout."""

PROJECTS_DIR_ENV = "AGENTFLEET_PROJECTS_DIR"
"""The variable the operator sets to PROJECTS_DIR; the stage handlers read their
credentials from the directory it names."""

_LIST_SETTINGS = ("specialties", "projects")


class WorkerSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: Name
    pool: Name
    """The WorkerPool this worker belongs to (a metric label)."""
    stage: Stage
    specialties: tuple[Name, ...] = ()
    projects: tuple[Name, ...] = ()
    """Empty: every project of the namespace."""
    handler: str = "command"
    """A name in the handler registry, or `module:factory`."""
    command: str | None = None
    """Shell command the `command` handler runs once per item."""
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    """0 turns the metrics endpoint off."""
    pod_name: str = Field(default_factory=socket.gethostname, min_length=1)
    heartbeat_interval: float = Field(default=30.0, gt=0)
    heartbeat_timeout: float = Field(default=300.0, gt=0)
    """An item whose worker has not heartbeated for this long is taken over by another."""
    drain_grace_seconds: float = Field(default=25.0, ge=0)
    """On SIGTERM the current item may finish within this long; then it is released."""
    max_attempts: int = Field(default=3, ge=1)
    retry_base_delay: float = Field(default=5.0, ge=0)
    workspace_root: Path | None = None
    """Where per-item workspaces are created (the system temp dir when unset)."""
    private_root: Path | None = None
    """Where per-item private directories are created (git directories): a volume the
    sandbox cannot reach (the system temp dir when unset)."""
    sandbox_socket: Path | None = None
    """The sandbox container's socket: commands chosen by the model and the repository's
    tests run there. Unset: in this process's own tree (a worker run by hand)."""

    @model_validator(mode="after")
    def _heartbeats_fit_in_timeout(self) -> WorkerSettings:
        if self.heartbeat_interval >= self.heartbeat_timeout:
            raise ValueError("heartbeat_interval must be shorter than heartbeat_timeout")
        return self


def settings_from(
    environ: Mapping[str, str], overrides: Mapping[str, object | None]
) -> WorkerSettings:
    """Flags (non-None `overrides`) win over the environment, which wins over defaults."""
    values: dict[str, object] = {}
    for field, variable in ENV_VARS.items():
        raw = environ.get(variable)
        if raw is None or raw == "":
            continue
        values[field] = _split(raw) if field in _LIST_SETTINGS else raw
    for field, value in overrides.items():
        if value is not None:
            values[field] = (
                _split(value) if isinstance(value, str) and field in _LIST_SETTINGS else value
            )
    return WorkerSettings.model_validate(values)


def _split(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def current_settings(overrides: Mapping[str, object | None] | None = None) -> WorkerSettings:
    return settings_from(os.environ, overrides or {})
